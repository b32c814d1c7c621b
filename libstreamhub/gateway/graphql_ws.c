/* libstreamhub/gateway/graphql_ws.c: the graphql-transport-ws protocol
 * (the graphql-ws project's PROTOCOL.md) on the /graphql WebSocket.
 *
 *   client                           server
 *   connection_init {payload}  ->    (within ws.auth-timeout-ms, else 4408)
 *                              <-    connection_ack    (bad token: 4403)
 *   ping / pong                <->   pong / nothing
 *   subscribe {id, payload}    ->    query, mutation: next, complete
 *                                    subscription: next... until complete
 *                              <-    error {id, payload:[GraphQLError]}
 *   complete {id}              ->    stops it
 *
 * Close codes: 4400 a message of the wrong shape, 4401 subscribe before
 * the ack, 4403 a refused or expired token, 4408 no connection_init in
 * time, 4409 a duplicate id, 4429 a second connection_init, 4500 an
 * internal failure.
 *
 * Identity: connection_init's payload {token} or {Authorization:
 * "Bearer <jwt>"}, checked with sh_auth_verify(); without one the
 * connection is anonymous (refused with 4403 where allow-anonymous is
 * off).  The connection is closed with 4403 when the token expires, so
 * that clients reconnect with fresh connectionParams and resume by offset.
 *
 * Resumption (chatMessages' sinceOffset and sinceEpoch): the operation
 * joins the fan-out with that position; when the bus answers that it
 * cannot deliver every event after it (another epoch, or a history that
 * no longer reaches it), the operation ends with an `error` message whose
 * extensions.code is HISTORY_LOST, before any `next`.
 *
 * Operations.  Everything that may wait on the store runs on a worker:
 * the start of an operation (sh_graphql_execute() for a query or a
 * mutation; sh__gql_sub_prepare() and the channel position for a
 * subscription) and the formatting of each bus event into its `next`
 * payload (sh__gql_sub_format()).  A subscription joins the gateway's
 * fan-out on its channel; its events queue on the loop and one job at a
 * time formats them in order, so `next` messages leave in offset order.
 *
 * Lifetime (invariants):
 *  1. An operation (struct op) is in its connection's list from subscribe
 *     until complete, error or the end of the connection; then it is
 *     `gone` and leaves the fan-out at once.
 *  2. A worker job holds the op (busy) and a reference to the connection;
 *     a gone op is freed by whoever releases it last: its job's done, or
 *     the removal when no job runs.
 *  3. sh__gqlws_free() may run twice (ws_conn.c calls it on close and on
 *     free): the second finds no state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/graphql.h"
#include "graphql/engine_int.h"
#include "graphql/graphql_int.h"
#include "gw.h"

/* The subscription half of the engine may land after this file: until it
 * does, subscriptions are refused with an error message, not a link
 * failure. */
#pragma weak sh__gql_sub_prepare
#pragma weak sh__gql_sub_channel
#pragma weak sh__gql_sub_since
#pragma weak sh__gql_sub_since_epoch
#pragma weak sh__gql_sub_format
#pragma weak sh__gql_sub_free

#define MAX_OPS_PER_CONN 256
#define MAX_QUEUED_EVENTS 4096
#define MAX_BATCH 256
#define MAX_ID_BYTES 128

struct qev {
    struct qev *next;
    sh_event_t *ev;                 /* a reference */
};

struct op {
    struct op *next;
    struct gqlws *g;                /* NULL once the connection went */
    char *id;
    bool subscription;
    bool started;                   /* the start job finished */
    bool busy;                      /* a worker job holds it (inv. 2) */
    bool gone;                      /* out of the list (inv. 1) */
    struct sh__gql_sub *sub;        /* owned, subscriptions */
    struct sh__member *member;      /* fan-out membership, or NULL */
    bool has_since;                 /* it asked to recover */
    struct qev *qhead, *qtail;      /* events waiting to be formatted */
    size_t qlen;
};

struct gqlws {
    struct sh__conn *c;
    bool init_seen, acked;
    struct op *ops;
    size_t nops;
    struct event *init_timer;
    /* The upgrade request's traceparent, or "" (otel_int.h). */
    char traceparent[SH__TRACEPARENT_LEN + 1];
};

static void op_release(struct op *o);
static void pump(struct op *o);

/* ---- sending ------------------------------------------------------- */

static void send_type(struct sh__conn *c, const char *type, const char *id,
                      json_object *payload)
{
    json_object *m = json_object_new_object();

    if (id != NULL)
        json_object_object_add(m, "id", json_object_new_string(id));
    json_object_object_add(m, "type", json_object_new_string(type));
    if (payload != NULL)
        json_object_object_add(m, "payload", payload);
    sh__ws_send_json(c, m);
}

/* An `error` message: @resp's errors (a GraphQL response), consumed. */
static void send_error_resp(struct sh__conn *c, const char *id,
                            json_object *resp)
{
    json_object *errs = NULL;

    if (resp == NULL || !json_object_object_get_ex(resp, "errors", &errs)) {
        json_object_put(resp);
        resp = sh__gql_error_response("internal error", "INTERNAL");
        json_object_object_get_ex(resp, "errors", &errs);
    }
    errs = json_object_get(errs);
    json_object_put(resp);
    send_type(c, "error", id, errs);
}

static void send_error_msg(struct sh__conn *c, const char *id,
                           const char *msg, const char *code)
{
    send_error_resp(c, id, sh__gql_error_response(msg, code));
}

static bool alive(const struct sh__conn *c)
{
    return c->state == SH__CONN_WS && c->ws != NULL && !c->ws->close_sent;
}

/* ---- operations ---------------------------------------------------- */

static void queue_clear(struct op *o)
{
    while (o->qhead != NULL) {
        struct qev *q = o->qhead;
        o->qhead = q->next;
        sh_event_free(q->ev);
        free(q);
    }
    o->qtail = NULL;
    o->qlen = 0;
}

static void op_destroy(struct op *o)
{
    queue_clear(o);
    if (o->sub != NULL && sh__gql_sub_free != NULL)
        sh__gql_sub_free(o->sub);
    free(o->id);
    free(o);
}

/* Take @o out of its connection (invariant 1); freed now or by its job. */
static void op_remove(struct op *o)
{
    struct gqlws *g = o->g;

    if (o->gone)
        return;
    if (g != NULL) {
        for (struct op **pp = &g->ops; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == o) {
                *pp = o->next;
                g->nops--;
                break;
            }
        }
    }
    o->gone = true;
    o->g = NULL;
    sh__fanout_leave(o->member);
    o->member = NULL;
    queue_clear(o);
    if (!o->busy)
        op_destroy(o);
}

/* A job finished with @o: free it if it is gone (invariant 2). */
static void op_release(struct op *o)
{
    o->busy = false;
    if (o->gone)
        op_destroy(o);
}

static struct op *op_find(struct gqlws *g, const char *id)
{
    for (struct op *o = g->ops; o != NULL; o = o->next) {
        if (strcmp(o->id, id) == 0)
            return o;
    }
    return NULL;
}

/* ---- event delivery ------------------------------------------------ */

struct fmt_job {
    struct op *op;
    struct sh__conn *c;            /* a reference */
    struct qev *evs;               /* the batch, owned */
    json_object *out;              /* array of message texts */
    bool internal;                 /* formatting failed: close 4500 */
};

static void fmt_work(void *arg)
{
    struct fmt_job *j = arg;

    j->out = json_object_new_array();
    if (j->out == NULL) {
        j->internal = true;
        return;
    }
    for (struct qev *q = j->evs; q != NULL; q = q->next) {
        size_t len = 0;
        const char *text = sh_event_data(q->ev, &len);
        json_object *data = text != NULL ? json_tokener_parse(text) : NULL;
        json_object *payload = NULL, *m;
        sh_err_t rc;

        rc = sh__gql_sub_format(j->op->sub, sh_event_type(q->ev), data,
                                sh_event_epoch(q->ev),
                                (int64_t)sh_event_offset(q->ev), &payload);
        json_object_put(data);
        if (rc == SH_ENOTFOUND)
            continue;
        if (rc != SH_OK || payload == NULL) {
            json_object_put(payload);
            j->internal = true;
            return;
        }
        m = json_object_new_object();
        json_object_object_add(m, "id", json_object_new_string(j->op->id));
        json_object_object_add(m, "type", json_object_new_string("next"));
        json_object_object_add(m, "payload", payload);
        json_object_array_add(j->out, m);
    }
}

static void fmt_done(void *arg, bool canceled)
{
    struct fmt_job *j = arg;
    struct op *o = j->op;
    struct sh__conn *c = j->c;

    while (j->evs != NULL) {
        struct qev *q = j->evs;
        j->evs = q->next;
        sh_event_free(q->ev);
        free(q);
    }
    if (!canceled && !o->gone && alive(c)) {
        if (j->internal) {
            json_object_put(j->out);
            j->out = NULL;
            op_release(o);
            sh__ws_close(c, 4500, "Internal server error");
            sh__conn_unref(c);
            free(j);
            return;
        }
        for (size_t i = 0; i < json_object_array_length(j->out); i++)
            sh__ws_send_json(c, json_object_get(
                                    json_object_array_get_idx(j->out, i)));
    }
    json_object_put(j->out);
    if (o->gone) {
        op_release(o);              /* frees it */
    } else {
        op_release(o);
        if (!canceled)
            pump(o);
    }
    sh__conn_unref(c);
    free(j);
}

/* Start a formatting job for the queued events of @o, if none runs. */
static void pump(struct op *o)
{
    struct fmt_job *j;
    struct qev **tailp;
    size_t n = 0;
    struct sh__conn *c;

    if (o->busy || o->gone || o->qhead == NULL || o->g == NULL)
        return;
    c = o->g->c;
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        sh__ws_close(c, 4500, "Internal server error");
        return;
    }
    /* Take up to MAX_BATCH events off the queue, in order. */
    j->evs = o->qhead;
    tailp = &j->evs;
    while (*tailp != NULL && n < MAX_BATCH) {
        tailp = &(*tailp)->next;
        n++;
    }
    o->qhead = *tailp;
    *tailp = NULL;
    if (o->qhead == NULL)
        o->qtail = NULL;
    o->qlen -= n;
    j->op = o;
    j->c = c;
    o->busy = true;
    sh__conn_ref(c);
    if (sh__workers_submit(c->loop->workers, fmt_work, fmt_done, j) !=
        SH_OK) {
        while (j->evs != NULL) {
            struct qev *q = j->evs;
            j->evs = q->next;
            sh_event_free(q->ev);
            free(q);
        }
        o->busy = false;
        sh__conn_unref(c);
        free(j);
        sh__ws_close(c, 4500, "Internal server error");
    }
}

/* The fan-out's delivery (loop thread). */
static void deliver(void *arg, const struct sh_event *ev)
{
    struct op *o = arg;
    struct qev *q;
    struct sh__conn *c;

    if (ev == NULL) {
        o->member = NULL;          /* the hub is closing */
        return;
    }
    if (o->gone || o->g == NULL)
        return;
    c = o->g->c;
    /* The send buffer bounds subscribers here as on /ws (fan-out). */
    if (o->qlen >= MAX_QUEUED_EVENTS || sh__conn_out_over(c)) {
        sh__series_add(c->gw->s_slow_dropped, 1);
        sh__ws_close(c, 4500, "Subscriber too slow");
        return;
    }
    q = calloc(1, sizeof *q);
    if (q == NULL) {
        sh__ws_close(c, 4500, "Internal server error");
        return;
    }
    q->ev = sh_event_dup(ev);
    if (o->qtail != NULL)
        o->qtail->next = q;
    else
        o->qhead = q;
    o->qtail = q;
    o->qlen++;
    pump(o);
}

/* ---- starting an operation ------------------------------------------ */

struct start_job {
    struct op *op;
    struct sh__conn *c;            /* a reference */
    sh_hub_t *hub;
    char *query;
    size_t qlen;
    char *vars;
    size_t vars_len;
    char *op_name;
    char user_id[64];
    unsigned roles;
    char client_key[64];
    char traceparent[SH__TRACEPARENT_LEN + 1];  /* or "": a new trace */
    /* results */
    int kind;
    sh_err_t rc;
    char *resp;                    /* query, mutation */
    size_t resp_len;
    int status;
    json_object *err_resp;         /* subscription refused */
    struct sh__gql_sub *sub;
    sh_position_t since;
    bool has_since;
    bool lost;                     /* sinceEpoch cannot be recovered */
};

static void start_job_free(struct start_job *j)
{
    free(j->query);
    free(j->vars);
    free(j->op_name);
    sh_graphql_free(j->resp);
    json_object_put(j->err_resp);
    if (j->sub != NULL)
        sh__gql_sub_free(j->sub);
    free(j);
}

static void start_work_traced(struct start_job *j);

/* The operation's start is a server span (the connection's upgrade was
 * the request; each operation is one of its own), named as over HTTP:
 * "<type> <name>" (graphql_http.c). */
static void start_work(void *arg)
{
    static const char *const kinds[] = { "query", "mutation",
                                         "subscription" };
    struct start_job *j = arg;
    char name[SH__SPAN_NAME_MAX];
    const char *kind;
    struct sh__span sp;

    sh__span_start_server(j->hub->otel, &sp, "graphql", j->traceparent);
    sh__span_enter(&sp);
    start_work_traced(j);
    if (!sh__span_on(&sp))
        return;
    kind = j->kind >= 0 && j->kind < 3 ? kinds[j->kind] : "graphql";
    if (j->op_name != NULL) {
        snprintf(name, sizeof name, "%s %s", kind, j->op_name);
        sh__span_attr_str(&sp, "graphql.operation.name", j->op_name);
    } else {
        snprintf(name, sizeof name, "%s", kind);
    }
    sh__span_set_name(&sp, name);
    if (j->kind >= 0)
        sh__span_attr_str(&sp, "graphql.operation.type", kind);
    if (j->rc != SH_OK || j->err_resp != NULL || j->status == 400)
        sh__span_fail(&sp);
    sh__span_end(&sp);
}

static void start_work_traced(struct start_job *j)
{
    sh_graphql_request_t *r = NULL;

    j->kind = sh__gql_op_kind(j->hub, j->query, j->qlen, j->op_name);
    if (j->kind == SH__GQL_SUBSCRIPTION) {
        if (sh__gql_sub_prepare == NULL) {
            j->err_resp = sh__gql_error_response(
                "subscriptions are not available", "INTERNAL");
            return;
        }
        j->rc = sh__gql_sub_prepare(
            j->hub, j->query, j->qlen, j->vars, j->vars_len, j->op_name,
            j->user_id[0] != '\0' ? j->user_id : NULL, j->roles, &j->sub,
            &j->err_resp);
        if (j->rc != SH_OK || j->sub == NULL)
            return;
        if (sh__gql_sub_since(j->sub) >= 0) {
            const char *epoch = sh__gql_sub_since_epoch(j->sub);

            if (epoch == NULL) {
                /* Without sinceEpoch, sinceOffset is in the channel's
                 * current epoch. */
                j->rc = sh_channel_position(j->hub,
                                            sh__gql_sub_channel(j->sub),
                                            &j->since, NULL, 0);
                if (j->rc != SH_OK)
                    return;
            } else if (epoch[0] == '\0' ||
                       strlen(epoch) >= sizeof j->since.epoch) {
                j->lost = true;     /* no channel has such an epoch */
                return;
            } else {
                /* The bus compares it with the channel's epoch when the
                 * subscription joins (start_subscription()). */
                memcpy(j->since.epoch, epoch, strlen(epoch) + 1);
            }
            j->since.offset = (uint64_t)sh__gql_sub_since(j->sub);
            j->has_since = true;
        }
        return;
    }
    /* A query, a mutation, or a document the executor will refuse (it
     * says why). */
    j->rc = sh_graphql_request_new(&r);
    if (j->rc == SH_OK)
        j->rc = sh_graphql_request_set_query(r, j->query, j->qlen);
    if (j->rc == SH_OK && j->vars != NULL)
        j->rc = sh_graphql_request_set_variables(r, j->vars, j->vars_len);
    if (j->rc == SH_OK && j->op_name != NULL)
        j->rc = sh_graphql_request_set_operation_name(r, j->op_name);
    if (j->rc == SH_OK && j->user_id[0] != '\0')
        j->rc = sh_graphql_request_set_identity(r, j->user_id, j->roles);
    if (j->rc == SH_OK && j->client_key[0] != '\0')
        j->rc = sh_graphql_request_set_client_key(r, j->client_key);
    if (j->rc == SH_OK)
        j->rc = sh_graphql_execute(j->hub, r, &j->resp, &j->resp_len,
                                   &j->status, NULL, 0);
    sh_graphql_request_free(r);
}

/* End @o with HISTORY_LOST (PROTOCOL.md, "Over GraphQL"): the events
 * after sinceOffset cannot all be delivered. */
static void send_history_lost(struct sh__conn *c, struct op *o)
{
    send_error_msg(c, o->id, "The chat history no longer covers "
                   "sinceOffset (or sinceEpoch is not the channel's "
                   "epoch); reload with chatHistory and subscribe again.",
                   "HISTORY_LOST");
    op_remove(o);
}

/* The answer of a join (now, or later on a remote bus). */
static void joined(void *arg, sh_err_t rc, const sh_subscribe_result_t *res,
                   const char *err)
{
    struct op *o = arg;
    struct sh__conn *c = o->g->c;

    if (rc != SH_OK) {
        o->member = NULL;           /* gone with the failed join */
        send_error_msg(c, o->id,
                       rc == SH_EINVAL ? err : sh_strerror(rc),
                       rc == SH_EINVAL ? "BAD_USER_INPUT" : "INTERNAL");
        op_remove(o);
    } else if (o->has_since && !res->recovered) {
        /* The bus answered under the channel's lock: another epoch, or
         * a history that no longer reaches sinceOffset.  It replayed
         * nothing, so no `next` precedes the error. */
        send_history_lost(c, o);
    }
}

static void start_subscription(struct sh__conn *c, struct start_job *j)
{
    struct op *o = j->op;
    sh_subscribe_result_t res;
    char err[SH_ERRBUF_SIZE];
    bool later;
    sh_err_t rc;

    o->sub = j->sub;
    j->sub = NULL;
    if (j->lost) {
        send_history_lost(c, o);
        return;
    }
    memset(&res, 0, sizeof res);
    o->has_since = j->has_since;
    rc = sh__fanout_join(c->loop->fanout, c, sh__gql_sub_channel(o->sub),
                         j->has_since ? &j->since : NULL, deliver, o,
                         joined, o, &o->member, &res, &later, err,
                         sizeof err);
    if (rc != SH_OK) {
        o->member = NULL;
        joined(o, rc, NULL, err);
    } else if (!later) {
        joined(o, rc, &res, NULL);
    }
}

static void start_done(void *arg, bool canceled)
{
    struct start_job *j = arg;
    struct op *o = j->op;
    struct sh__conn *c = j->c;

    o->busy = false;
    o->started = true;
    if (canceled || o->gone || !alive(c)) {
        if (o->gone)
            op_destroy(o);
        goto out;
    }
    if (j->kind == SH__GQL_SUBSCRIPTION && j->sub != NULL &&
        j->rc == SH_OK) {
        start_subscription(c, j);
    } else if (j->kind == SH__GQL_SUBSCRIPTION) {
        if (j->err_resp != NULL) {
            json_object *r = j->err_resp;
            j->err_resp = NULL;
            send_error_resp(c, o->id, r);
        } else {
            send_error_msg(c, o->id, "internal error", "INTERNAL");
        }
        op_remove(o);
    } else if (j->rc == SH_ECANCELED) {
        sh__ws_close(c, 1001, "Going away");
    } else if (j->rc != SH_OK || j->resp == NULL) {
        sh__ws_close(c, 4500, "Internal server error");
    } else {
        json_object *r = json_tokener_parse(j->resp);
        if (r == NULL) {
            sh__ws_close(c, 4500, "Internal server error");
        } else if (j->status == 400 ||
                   !json_object_object_get_ex(r, "data", NULL)) {
            /* A request error: nothing was executed. */
            send_error_resp(c, o->id, r);
            op_remove(o);
        } else {
            send_type(c, "next", o->id, r);
            send_type(c, "complete", o->id, NULL);
            op_remove(o);
        }
    }
out:
    start_job_free(j);
    sh__conn_unref(c);
}

/* ---- messages ------------------------------------------------------ */

static const char *str_member(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* An operation's parent: its payload's extensions.traceparent when it
 * has one of the right length, else the upgrade request's, else "". */
static void op_traceparent(const struct gqlws *g, json_object *payload,
                           char *out)
{
    json_object *ext, *tp;

    if (json_object_object_get_ex(payload, "extensions", &ext) &&
        json_object_is_type(ext, json_type_object) &&
        json_object_object_get_ex(ext, "traceparent", &tp) &&
        json_object_is_type(tp, json_type_string) &&
        json_object_get_string_len(tp) == SH__TRACEPARENT_LEN)
        memcpy(out, json_object_get_string(tp), SH__TRACEPARENT_LEN + 1);
    else
        memcpy(out, g->traceparent, SH__TRACEPARENT_LEN + 1);
}

static void on_subscribe(struct sh__conn *c, struct gqlws *g,
                         json_object *msg)
{
    struct sh__ws *ws = c->ws;
    const char *id = str_member(msg, "id");
    json_object *payload, *q, *v = NULL, *on = NULL;
    struct start_job *j;
    struct op *o;
    char reason[MAX_ID_BYTES + 40];
    sh_err_t rc;

    if (!json_object_object_get_ex(msg, "payload", &payload) ||
        !json_object_is_type(payload, json_type_object) || id == NULL ||
        id[0] == '\0' || strlen(id) > MAX_ID_BYTES ||
        !json_object_object_get_ex(payload, "query", &q) ||
        !json_object_is_type(q, json_type_string)) {
        sh__ws_close(c, 4400, "Invalid message received");
        return;
    }
    if (json_object_object_get_ex(payload, "variables", &v) && v != NULL &&
        !json_object_is_type(v, json_type_object)) {
        sh__ws_close(c, 4400, "Invalid message received");
        return;
    }
    if (json_object_object_get_ex(payload, "operationName", &on) &&
        on != NULL && !json_object_is_type(on, json_type_string)) {
        sh__ws_close(c, 4400, "Invalid message received");
        return;
    }
    if (!g->acked) {
        sh__ws_close(c, 4401, "Unauthorized");
        return;
    }
    if (op_find(g, id) != NULL) {
        snprintf(reason, sizeof reason, "Subscriber for %s already exists",
                 id);
        sh__ws_close(c, 4409, reason);
        return;
    }
    if (g->nops >= MAX_OPS_PER_CONN) {
        send_error_msg(c, id, "too many operations on this connection",
                       "BAD_USER_INPUT");
        return;
    }
    o = calloc(1, sizeof *o);
    j = calloc(1, sizeof *j);
    if (o == NULL || j == NULL || (o->id = strdup(id)) == NULL)
        goto oom;
    j->qlen = (size_t)json_object_get_string_len(q);
    j->query = malloc(j->qlen + 1);
    if (j->query == NULL)
        goto oom;
    memcpy(j->query, json_object_get_string(q), j->qlen);
    j->query[j->qlen] = '\0';
    if (v != NULL) {
        size_t vl = 0;
        const char *vt = json_object_to_json_string_length(
            v, JSON_C_TO_STRING_PLAIN, &vl);
        if (vt == NULL || (j->vars = strdup(vt)) == NULL)
            goto oom;
        j->vars_len = vl;
    }
    if (on != NULL && (j->op_name = strdup(json_object_get_string(on))) ==
                          NULL)
        goto oom;
    if (ws->authed) {
        snprintf(j->user_id, sizeof j->user_id, "%s", ws->user_id);
        j->roles = ws->roles;
    }
    snprintf(j->client_key, sizeof j->client_key, "%s", c->ip_key);
    if (c->gw->hub->otel != NULL)
        op_traceparent(g, payload, j->traceparent);
    j->hub = c->gw->hub;
    j->op = o;
    j->c = c;
    j->kind = -1;
    o->g = g;
    o->busy = true;
    o->next = g->ops;
    g->ops = o;
    g->nops++;
    sh__conn_ref(c);
    rc = sh__conn_offload(c, start_work, start_done, j);
    if (rc != SH_OK) {
        json_object *resp = sh__gql_error_response(
            rc == SH_EBUSY ? "too many operations in flight" : "server busy",
            rc == SH_EBUSY ? "RATE_LIMITED" : "INTERNAL");
        json_object *errs, *ext;
        sh__conn_unref(c);
        o->busy = false;
        op_remove(o);
        start_job_free(j);
        if (rc == SH_EBUSY && json_object_object_get_ex(resp, "errors",
                                                        &errs) &&
            json_object_object_get_ex(json_object_array_get_idx(errs, 0),
                                      "extensions", &ext))
            json_object_object_add(ext, "retryAfter",
                                   json_object_new_int(1));
        send_error_resp(c, id, resp);
    }
    return;
oom:
    if (o != NULL)
        free(o->id);
    free(o);
    if (j != NULL)
        start_job_free(j);
    sh__ws_close(c, 4500, "Internal server error");
}

/* The connection count of an authenticated init is known
 * (sh__ws_count_user): acknowledge, or refuse with 4429. */
static void init_counted(struct sh__conn *c, bool ok, void *arg)
{
    struct sh__ws *ws = c->ws;
    struct gqlws *g = ws->gql;

    (void)arg;
    if (!ok) {
        ws->user_id[0] = '\0';
        sh__series_add(c->gw->s_rate_limited, 1);
        sh__ws_close(c, 4429, "Too many connections for this user");
        return;
    }
    ws->authed = true;
    /* No grace: the client reconnects with a fresh token and resumes by
     * offset. */
    sh__ws_arm_expiry(c, ws->exp_s, 0, 4403);
    g->acked = true;
    send_type(c, "connection_ack", NULL, NULL);
}

static void on_init(struct sh__conn *c, struct gqlws *g, json_object *msg)
{
    struct sh__ws *ws = c->ws;
    json_object *payload = NULL;
    const char *token = NULL;
    sh_principal_t *p = NULL;
    enum sh__count_res cr;

    if (g->init_seen) {
        sh__ws_close(c, 4429, "Too many initialisation requests");
        return;
    }
    g->init_seen = true;
    if (g->init_timer != NULL)
        evtimer_del(g->init_timer);
    if (json_object_object_get_ex(msg, "payload", &payload) &&
        payload != NULL) {
        if (!json_object_is_type(payload, json_type_object)) {
            sh__ws_close(c, 4400, "Invalid message received");
            return;
        }
        json_object *tv;
        /* A token of the wrong type is a refused token, never a silent
         * fall back to anonymous. */
        if ((json_object_object_get_ex(payload, "token", &tv) &&
             tv != NULL && !json_object_is_type(tv, json_type_string)) ||
            (json_object_object_get_ex(payload, "Authorization", &tv) &&
             tv != NULL && !json_object_is_type(tv, json_type_string))) {
            sh__ws_close(c, 4403, "Forbidden");
            return;
        }
        token = str_member(payload, "token");
        if (token == NULL) {
            const char *h = str_member(payload, "Authorization");
            if (h == NULL)
                h = str_member(payload, "authorization");
            if (h != NULL) {
                if (strncasecmp(h, "Bearer ", 7) != 0) {
                    sh__ws_close(c, 4403, "Forbidden");
                    return;
                }
                token = h + 7;
                while (*token == ' ')
                    token++;
            }
        }
    }
    if (token == NULL) {
        if (!c->gw->allow_anonymous) {
            sh__ws_close(c, 4403, "Forbidden");
            return;
        }
    } else {
        if (sh_auth_verify(c->gw->hub, token, strlen(token), &p) != SH_OK) {
            sh__ws_close(c, 4403, "Forbidden");
            return;
        }
        snprintf(ws->user_id, sizeof ws->user_id, "%s",
                 sh_principal_user_id(p));
        snprintf(ws->username, sizeof ws->username, "%s",
                 sh_principal_username(p));
        ws->roles = sh_principal_roles(p);
        ws->exp_s = sh_principal_exp(p);
        sh_principal_free(p);
        cr = sh__ws_count_user(c, init_counted, NULL, NULL);
        if (cr != SH__COUNT_PENDING)
            init_counted(c, cr == SH__COUNT_OK, NULL);
        return;
    }
    g->acked = true;
    send_type(c, "connection_ack", NULL, NULL);
}

static void init_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__conn *c = arg;

    (void)fd;
    (void)what;
    sh__ws_close(c, 4408, "Connection initialisation timeout");
}

void sh__gqlws_open(struct sh__conn *c, const char *traceparent)
{
    struct gqlws *g = calloc(1, sizeof *g);
    int ms = c->gw->ws_auth_timeout_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (g == NULL) {
        sh__ws_close(c, 4500, "Internal server error");
        return;
    }
    g->c = c;
    snprintf(g->traceparent, sizeof g->traceparent, "%s", traceparent);
    c->ws->gql = g;
    g->init_timer = evtimer_new(c->loop->base, init_timeout_cb, c);
    if (g->init_timer == NULL) {
        sh__ws_close(c, 4500, "Internal server error");
        return;
    }
    evtimer_add(g->init_timer, &tv);
}

void sh__gqlws_on_text(struct sh__conn *c, const char *text, size_t len)
{
    struct gqlws *g = c->ws != NULL ? c->ws->gql : NULL;
    struct json_tokener *tok;
    json_object *msg = NULL;
    const char *type, *id;

    if (g == NULL)
        return;
    tok = json_tokener_new();
    if (tok != NULL) {
        msg = json_tokener_parse_ex(tok, text, (int)len);
        if (msg != NULL && json_tokener_get_parse_end(tok) != len) {
            json_object_put(msg);
            msg = NULL;
        }
        json_tokener_free(tok);
    }
    if (msg == NULL || !json_object_is_type(msg, json_type_object) ||
        (type = str_member(msg, "type")) == NULL) {
        json_object_put(msg);
        sh__ws_close(c, 4400, "Invalid message received");
        return;
    }
    if (strcmp(type, "connection_init") == 0) {
        on_init(c, g, msg);
    } else if (strcmp(type, "ping") == 0) {
        send_type(c, "pong", NULL, NULL);
    } else if (strcmp(type, "pong") == 0) {
        /* nothing to do */
    } else if (strcmp(type, "subscribe") == 0) {
        on_subscribe(c, g, msg);
    } else if (strcmp(type, "complete") == 0) {
        id = str_member(msg, "id");
        if (id == NULL) {
            sh__ws_close(c, 4400, "Invalid message received");
        } else if (!g->acked) {
            sh__ws_close(c, 4401, "Unauthorized");
        } else {
            struct op *o = op_find(g, id);
            if (o != NULL)
                op_remove(o);
        }
    } else {
        sh__ws_close(c, 4400, "Invalid message received");
    }
    json_object_put(msg);
}

void sh__gqlws_free(struct sh__conn *c)
{
    struct gqlws *g = c->ws != NULL ? c->ws->gql : NULL;

    if (g == NULL)
        return;
    c->ws->gql = NULL;
    while (g->ops != NULL)
        op_remove(g->ops);
    if (g->init_timer != NULL)
        event_free(g->init_timer);
    free(g);
}
