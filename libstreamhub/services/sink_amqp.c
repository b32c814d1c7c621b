/* libstreamhub/services/sink_amqp.c: the RabbitMQ sink of the outbox
 * (events-amqp), over rabbitmq-c (librabbitmq 0.11).
 *
 * What the broker gets: on the durable topic exchange `streamhub.events`,
 * one persistent message per event, routing key = the event type, body
 * {"id","type","channel","createdAt","data"} (data: the event's JSON),
 * properties message-id = the event id (stable across repeats), type,
 * timestamp, content-type application/json, headers channel and, when
 * known, traceparent.  Each batch is published with `mandatory` on a
 * channel in confirm mode and a row counts as delivered only when the
 * broker acknowledged it:
 *  - basic.nack, or no ack by the deadline: not confirmed (delivered
 *    again later, the relay says in which order);
 *  - basic.return (no queue took it): published again, mandatory, to the
 *    dead-letter exchange `streamhub.events.dlx` (fanout) whose durable
 *    queue `streamhub.events.dead` we declare, and confirmed only once
 *    that publish is acknowledged: an event nobody took is seen there,
 *    never silently confirmed as delivered.
 *
 * Never blocking the rest of StreamHub: every call here runs on the sink's
 * relay thread, and every socket operation has a deadline: the connect
 * (amqp_socket_open_noblock), the login and declarations (handshake and
 * RPC timeouts), the wait for confirms (amqp_simple_wait_frame_noblock).
 * The one librabbitmq call without a timeout, basic.publish, writes into
 * the socket's buffer, which the broker drains unless it blocks
 * publishers; then connection.blocked arrives, the wait for confirms ends
 * at its deadline, the connection is dropped and retried with the relay's
 * backoff, and at close interrupt() shuts the socket down under any write.
 *
 * A broker whose exchange or queue exists with other arguments (or that
 * refuses our user) answers the declaration with a channel or connection
 * close: that is logged by the relay as the sink's error, kept for
 * /readyz (health() fails until a connect succeeds), and retried at the
 * relay's backoff (up to outbox.retry-max-ms): no crash, no hot loop.  A
 * broker that is merely down does not fail readiness: the events wait in
 * the outbox, and streamhub_outbox_rows says so.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "outbox_int.h"
#include "services_int.h"

#define EXCHANGE "streamhub.events"
#define DLX "streamhub.events.dlx"
#define DEAD_QUEUE "streamhub.events.dead"
#define CHANNEL 1

/* @locks mu guards fd (for interrupt) and health. */
struct amqp_sink {
    struct sh__sink base;
    sh_hub_t *hub;                   /* borrowed */
    char *url;                       /* owned: info points into it */
    struct amqp_connection_info info;
    amqp_connection_state_t conn;    /* NULL: not connected */
    uint64_t next_tag;               /* the next publish's delivery tag */
    bool blocked;                    /* connection.blocked seen */
    pthread_mutex_t mu;
    int fd;                          /* conn's socket, -1 */
    bool refused;                    /* the broker refused our setup */
    char health[SH_ERRBUF_SIZE];     /* why, while refused */
    struct sh__series *m_dead;       /* returned, dead-lettered */
    struct sh__series *m_blocked;
};

/* What happened to one published row. */
enum { PENDING = 0, ACKED, NACKED };

static struct timeval tv_left(int64_t deadline_ms)
{
    int64_t left = deadline_ms - sh__mono_ms();
    struct timeval tv;

    if (left < 1)
        left = 1;
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (suseconds_t)((left % 1000) * 1000);
    return tv;
}

static void set_refused(struct amqp_sink *a, bool refused, const char *why)
{
    pthread_mutex_lock(&a->mu);
    a->refused = refused;
    snprintf(a->health, sizeof a->health, "%s", refused ? why : "");
    pthread_mutex_unlock(&a->mu);
}

static void disconnect(struct amqp_sink *a)
{
    if (a->conn == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->fd = -1;
    pthread_mutex_unlock(&a->mu);
    /* No connection.close handshake: it would wait on a broker that may
     * not answer.  Destroying closes the socket. */
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
    a->blocked = false;
    sh__series_set(a->m_blocked, 0);
}

/* The reason of a failed RPC into @err; *@refused when the broker refused
 * what we asked for (other arguments, access): an operator's business. */
static void rpc_why(amqp_rpc_reply_t r, const char *what, char *err,
                    size_t err_len, bool *refused)
{
    uint16_t code = 0;
    amqp_bytes_t text = { 0, NULL };

    *refused = false;
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        sh__errbuf(err, err_len, "%s: ok", what);
        return;
    case AMQP_RESPONSE_NONE:
        sh__errbuf(err, err_len, "%s: no reply", what);
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        sh__errbuf(err, err_len, "%s: %s", what,
                   amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;

            code = m->reply_code;
            text = m->reply_text;
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;

            code = m->reply_code;
            text = m->reply_text;
        }
        /* 403 ACCESS_REFUSED, 406 PRECONDITION_FAILED (exists with other
         * arguments), 530 NOT_ALLOWED (vhost): retrying will not help
         * until someone changes the broker or the configuration. */
        *refused = code == 403 || code == 406 || code == 530;
        sh__errbuf(err, err_len, "%s: the broker refused (%u %.*s)", what,
                   (unsigned)code, (int)(text.len < 200 ? text.len : 200),
                   text.bytes != NULL ? (const char *)text.bytes : "");
        return;
    }
}

static bool rpc_ok(struct amqp_sink *a, const char *what, char *err,
                   size_t err_len, bool *refused)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(a->conn);

    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    rpc_why(r, what, err, err_len, refused);
    return false;
}

static sh_err_t connect_broker(struct amqp_sink *a, int64_t deadline,
                               char *err, size_t err_len)
{
    struct amqp_connection_info *in = &a->info;
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;
    amqp_table_entry_t caps[2], props[2];
    amqp_table_t caps_t, props_t;
    struct timeval tv;
    bool refused = false;
    int st;

    a->conn = amqp_new_connection();
    if (a->conn == NULL) {
        sh__errbuf(err, err_len, "out of memory");
        return SH_ENOMEM;
    }
    sock = amqp_tcp_socket_new(a->conn);
    if (sock == NULL) {
        disconnect(a);
        sh__errbuf(err, err_len, "out of memory");
        return SH_ENOMEM;
    }
    tv = tv_left(deadline);
    st = amqp_socket_open_noblock(sock, in->host, in->port, &tv);
    if (st != AMQP_STATUS_OK) {
        sh__errbuf(err, err_len, "cannot connect to %s:%d: %s", in->host,
                   in->port, amqp_error_string2(st));
        disconnect(a);
        return SH_EIO;
    }
    pthread_mutex_lock(&a->mu);
    a->fd = amqp_get_sockfd(a->conn);
    pthread_mutex_unlock(&a->mu);
    tv = tv_left(deadline);
    amqp_set_handshake_timeout(a->conn, &tv);
    amqp_set_rpc_timeout(a->conn, &tv);
    /* Ask for connection.blocked: a resource alarm is then named in the
     * log instead of looking like a broker that stopped answering. */
    caps[0].key = amqp_cstring_bytes("connection.blocked");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("publisher_confirms");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    caps_t.num_entries = 2;
    caps_t.entries = caps;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = caps_t;
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes("streamhub outbox");
    props_t.num_entries = 2;
    props_t.entries = props;
    r = amqp_login_with_properties(a->conn, in->vhost, 0, 131072, 0,
                                   &props_t, AMQP_SASL_METHOD_PLAIN,
                                   in->user, in->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rpc_why(r, "login", err, err_len, &refused);
        goto fail;
    }
    amqp_channel_open(a->conn, CHANNEL);
    if (!rpc_ok(a, "channel.open", err, err_len, &refused))
        goto fail;
    amqp_exchange_declare(a->conn, CHANNEL, amqp_cstring_bytes(DLX),
                          amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (!rpc_ok(a, "declaring exchange " DLX, err, err_len, &refused))
        goto fail;
    amqp_queue_declare(a->conn, CHANNEL, amqp_cstring_bytes(DEAD_QUEUE), 0,
                       1, 0, 0, amqp_empty_table);
    if (!rpc_ok(a, "declaring queue " DEAD_QUEUE, err, err_len, &refused))
        goto fail;
    amqp_queue_bind(a->conn, CHANNEL, amqp_cstring_bytes(DEAD_QUEUE),
                    amqp_cstring_bytes(DLX), amqp_cstring_bytes(""),
                    amqp_empty_table);
    if (!rpc_ok(a, "binding queue " DEAD_QUEUE, err, err_len, &refused))
        goto fail;
    amqp_exchange_declare(a->conn, CHANNEL, amqp_cstring_bytes(EXCHANGE),
                          amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (!rpc_ok(a, "declaring exchange " EXCHANGE, err, err_len, &refused))
        goto fail;
    amqp_confirm_select(a->conn, CHANNEL);
    if (!rpc_ok(a, "confirm.select", err, err_len, &refused))
        goto fail;
    a->next_tag = 1;
    a->blocked = false;
    set_refused(a, false, NULL);
    return SH_OK;
fail:
    if (refused)
        set_refused(a, true, err);
    disconnect(a);
    return SH_EIO;
}

/* The message body: the event's envelope.  malloc'd, NULL on ENOMEM. */
static char *envelope(const struct sh__outbox_row *row, size_t *len)
{
    char ts[SH__TS_LEN + 1];
    size_t cap = row->payload_len + strlen(row->id) + strlen(row->type) +
                 strlen(row->channel) + 128;
    char *b = malloc(cap);
    int k;

    if (b == NULL)
        return NULL;
    sh__ts_format(row->created_ms, ts);
    /* id, type and channel are ours (a UUID, a type name, a channel of a
     * UUID): nothing in them needs escaping. */
    k = snprintf(b, cap, "{\"id\":\"%s\",\"type\":\"%s\",\"channel\":\"%s\","
                 "\"createdAt\":\"%s\",\"data\":%.*s}", row->id, row->type,
                 row->channel, ts, (int)row->payload_len, row->payload);
    if (k < 0 || (size_t)k >= cap) {
        free(b);
        return NULL;
    }
    *len = (size_t)k;
    return b;
}

/* Publish @row on @exchange (mandatory, persistent); its tag is the
 * returned value of a->next_tag before the call. */
static sh_err_t publish(struct amqp_sink *a, const char *exchange,
                        const struct sh__outbox_row *row, const char *why,
                        char *err, size_t err_len)
{
    amqp_basic_properties_t p;
    amqp_table_entry_t h[3];
    amqp_bytes_t body;
    size_t len = 0;
    char *text = envelope(row, &len);
    int st, nh = 0;

    if (text == NULL) {
        sh__errbuf(err, err_len, "out of memory");
        return SH_ENOMEM;
    }
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG |
               AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG |
               AMQP_BASIC_HEADERS_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    p.message_id = amqp_cstring_bytes(row->id);
    p.type = amqp_cstring_bytes(row->type);
    p.timestamp = (uint64_t)(row->created_ms / 1000);
    p.app_id = amqp_cstring_bytes("streamhub");
    h[nh].key = amqp_cstring_bytes("channel");
    h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
    h[nh++].value.value.bytes = amqp_cstring_bytes(row->channel);
    if (row->traceparent != NULL) {
        h[nh].key = amqp_cstring_bytes("traceparent");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = amqp_cstring_bytes(row->traceparent);
    }
    if (why != NULL) {
        h[nh].key = amqp_cstring_bytes("x-streamhub-returned");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = amqp_cstring_bytes(why);
    }
    p.headers.num_entries = nh;
    p.headers.entries = h;
    body.len = len;
    body.bytes = text;
    st = amqp_basic_publish(a->conn, CHANNEL, amqp_cstring_bytes(exchange),
                            amqp_cstring_bytes(row->type), 1, 0, &p, body);
    free(text);
    if (st != AMQP_STATUS_OK) {
        sh__errbuf(err, err_len, "publish: %s", amqp_error_string2(st));
        return SH_EIO;
    }
    a->next_tag++;
    return SH_OK;
}

/* Settle @tag (and with @multiple every tag up to it) in @state, whose
 * slot i is tag @first + i. */
static size_t mark(uint8_t *state, size_t n, uint64_t first, uint64_t tag,
                   bool multiple, uint8_t to)
{
    size_t done = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t t = first + i;

        if (state[i] != PENDING || t > tag || (!multiple && t != tag))
            continue;
        state[i] = to;
        done++;
    }
    return done;
}

/* Read the content of a basic.return: its header (for the message-id)
 * and body frames.  Sets returned[i] of the row with that id. */
static sh_err_t read_return(struct amqp_sink *a,
                            const struct sh__outbox_row *const *rows,
                            size_t n, bool *returned, int64_t deadline,
                            char *err, size_t err_len)
{
    amqp_frame_t f;
    uint64_t size, got = 0;
    struct timeval tv = tv_left(deadline);
    int st = amqp_simple_wait_frame_noblock(a->conn, &f, &tv);

    if (st != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_HEADER) {
        sh__errbuf(err, err_len, "reading a returned message: %s",
                   st != AMQP_STATUS_OK ? amqp_error_string2(st)
                                        : "no content header");
        return SH_EIO;
    }
    size = f.payload.properties.body_size;
    {
        amqp_basic_properties_t *p = f.payload.properties.decoded;

        if (p != NULL && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
            for (size_t i = 0; i < n; i++) {
                if (strlen(rows[i]->id) == p->message_id.len &&
                    memcmp(rows[i]->id, p->message_id.bytes,
                           p->message_id.len) == 0)
                    returned[i] = true;
            }
        }
    }
    while (got < size) {
        tv = tv_left(deadline);
        st = amqp_simple_wait_frame_noblock(a->conn, &f, &tv);
        if (st != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_BODY) {
            sh__errbuf(err, err_len, "reading a returned message: %s",
                       st != AMQP_STATUS_OK ? amqp_error_string2(st)
                                            : "no body");
            return SH_EIO;
        }
        got += f.payload.body_fragment.len;
    }
    return SH_OK;
}

/* Wait until each of @n publishes from tag @first is acked or nacked, or
 * the deadline.  @returned records basic.return. */
static sh_err_t wait_confirms(struct amqp_sink *a,
                              const struct sh__outbox_row *const *rows,
                              size_t n, uint64_t first, uint8_t *state,
                              bool *returned, int64_t deadline, char *err,
                              size_t err_len)
{
    size_t pending = n;

    while (pending > 0) {
        amqp_frame_t f;
        struct timeval tv;
        int st;

        if (sh__mono_ms() >= deadline) {
            sh__errbuf(err, err_len, "no confirm within "
                       "outbox.delivery-timeout-ms%s", a->blocked
                       ? ": the broker blocks publishers (a memory or "
                         "disk alarm)" : "");
            return SH_ETIMEDOUT;
        }
        tv = tv_left(deadline);
        st = amqp_simple_wait_frame_noblock(a->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            continue;
        if (st != AMQP_STATUS_OK) {
            sh__errbuf(err, err_len, "waiting for confirms: %s",
                       amqp_error_string2(st));
            return SH_EIO;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *m = f.payload.method.decoded;

            pending -= mark(state, n, first, m->delivery_tag,
                            m->multiple != 0, ACKED);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *m = f.payload.method.decoded;

            pending -= mark(state, n, first, m->delivery_tag,
                            m->multiple != 0, NACKED);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            sh_err_t rc;

            rc = read_return(a, rows, n, returned, deadline, err,
                             err_len);
            if (rc != SH_OK)
                return rc;
            break;
        }
        case AMQP_CONNECTION_BLOCKED_METHOD:
            a->blocked = true;
            sh__series_set(a->m_blocked, 1);
            break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            a->blocked = false;
            sh__series_set(a->m_blocked, 0);
            break;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_rpc_reply_t r;
            bool refused;

            memset(&r, 0, sizeof r);
            r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
            r.reply = f.payload.method;
            rpc_why(r, "publishing", err, err_len, &refused);
            if (refused)
                set_refused(a, true, err);
            return SH_EIO;
        }
        default:
            break;
        }
    }
    return SH_OK;
}

static sh_err_t amqp_deliver(struct sh__sink *s,
                             const struct sh__outbox_row *rows, size_t n,
                             int64_t deadline, bool *ok, char *err,
                             size_t err_len)
{
    struct amqp_sink *a = (struct amqp_sink *)(void *)s;
    const struct sh__outbox_row **ptrs = NULL, **dead = NULL;
    uint8_t *state = NULL, *dstate = NULL;
    bool *returned = NULL, *dret = NULL;
    size_t nd = 0;
    uint64_t first;
    sh_err_t rc = SH_OK;

    if (a->conn == NULL &&
        (rc = connect_broker(a, deadline, err, err_len)) != SH_OK)
        return rc;
    if (n == 0)
        return SH_OK;
    ptrs = calloc(n, sizeof *ptrs);
    dead = calloc(n, sizeof *dead);
    state = calloc(n, 1);
    dstate = calloc(n, 1);
    returned = calloc(n, sizeof *returned);
    dret = calloc(n, sizeof *dret);
    if (ptrs == NULL || dead == NULL || state == NULL || dstate == NULL ||
        returned == NULL || dret == NULL) {
        sh__errbuf(err, err_len, "out of memory");
        rc = SH_ENOMEM;
        goto out;
    }
    first = a->next_tag;
    for (size_t i = 0; i < n && rc == SH_OK; i++) {
        ptrs[i] = &rows[i];
        rc = publish(a, EXCHANGE, &rows[i], NULL, err, err_len);
    }
    if (rc == SH_OK)
        rc = wait_confirms(a, ptrs, n, first, state, returned, deadline,
                           err, err_len);
    if (rc != SH_OK)
        goto out;
    /* Returned then acked: no queue took it.  Dead-letter it, and count
     * it delivered only once the dead-letter exchange confirmed. */
    for (size_t i = 0; i < n; i++)
        if (state[i] == ACKED && returned[i])
            dead[nd++] = &rows[i];
    if (nd > 0) {
        first = a->next_tag;
        for (size_t i = 0; i < nd && rc == SH_OK; i++)
            rc = publish(a, DLX, dead[i], "NO_ROUTE", err, err_len);
        if (rc == SH_OK)
            rc = wait_confirms(a, dead, nd, first, dstate, dret, deadline,
                               err, err_len);
        if (rc != SH_OK)
            goto out;
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        if (state[i] != ACKED)
            continue;
        if (!returned[i]) {
            ok[i] = true;
            continue;
        }
        /* dead[] holds the returned rows in row order. */
        while (j < nd && dead[j] != &rows[i])
            j++;
        if (j < nd && dstate[j] == ACKED && !dret[j]) {
            ok[i] = true;
            sh__series_add(a->m_dead, 1);
        }
    }
out:
    if (rc != SH_OK)
        disconnect(a);     /* unknown state: start over next time */
    else
        amqp_maybe_release_buffers(a->conn);
    free(ptrs);
    free(dead);
    free(state);
    free(dstate);
    free(returned);
    free(dret);
    return rc;
}

static sh_err_t amqp_health(struct sh__sink *s, char *why, size_t why_len)
{
    struct amqp_sink *a = (struct amqp_sink *)(void *)s;
    sh_err_t rc = SH_OK;

    pthread_mutex_lock(&a->mu);
    if (a->refused) {
        sh__errbuf(why, why_len, "%s", a->health);
        rc = SH_EIO;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static void amqp_interrupt(struct sh__sink *s)
{
    struct amqp_sink *a = (struct amqp_sink *)(void *)s;

    pthread_mutex_lock(&a->mu);
    if (a->fd >= 0)
        shutdown(a->fd, SHUT_RDWR);
    pthread_mutex_unlock(&a->mu);
}

static void amqp_close(struct sh__sink *s)
{
    struct amqp_sink *a = (struct amqp_sink *)(void *)s;

    if (a == NULL)
        return;
    disconnect(a);
    pthread_mutex_destroy(&a->mu);
    free(a->url);
    free(a);
}

static const struct sh__sink_ops amqp_ops = {
    "amqp", amqp_deliver, amqp_health, amqp_interrupt, amqp_close
};

sh_err_t sh__sink_amqp_open(sh_hub_t *hub, const char *value,
                            struct sh__sink **out, char *errbuf,
                            size_t errbuf_len)
{
    struct amqp_sink *a = calloc(1, sizeof *a);
    struct sh__metric *m;

    *out = NULL;
    if (a == NULL || (a->url = strdup(value)) == NULL) {
        free(a);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    amqp_default_connection_info(&a->info);
    /* Never echo the value: it holds the password. */
    if (strncmp(value, "amqp://", 7) != 0 ||
        amqp_parse_url(a->url, &a->info) != AMQP_STATUS_OK) {
        free(a->url);
        free(a);
        sh__errbuf(errbuf, errbuf_len, "events-amqp: not an "
                   "amqp://user:pass@host:port/vhost URI");
        return SH_EINVAL;
    }
    a->base.ops = &amqp_ops;
    a->hub = hub;
    a->fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    m = sh__metrics_add(hub->metrics, "streamhub_outbox_dead_lettered_total",
                        SH__METRIC_COUNTER, "Events no queue took, "
                        "returned by the broker and dead-lettered to "
                        DLX ".", "sink", NULL, 0);
    a->m_dead = m != NULL ? sh__metric_series(m, "amqp") : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_outbox_sink_blocked",
                        SH__METRIC_GAUGE, "1 while the broker blocks our "
                        "publishes (connection.blocked: a resource alarm).",
                        "sink", NULL, 0);
    a->m_blocked = m != NULL ? sh__metric_series(m, "amqp") : NULL;
    *out = &a->base;
    return SH_OK;
}
