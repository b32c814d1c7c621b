/* libstreamhub/store/postgres.c: the PostgreSQL backend of the store
 * (libpq).
 *
 * Statements.  The services write `?` placeholders (and SQLite's `?NNN`
 * in a few overrides); each statement is converted once per connection to
 * PostgreSQL's `$n`, skipping string literals, quoted identifiers and
 * comments, then prepared as a named statement and cached in a small
 * open-addressing map keyed by the address of its `struct sh__sql` (static
 * storage), like sqlite.c's cache.  Every value is a parameter, sent in
 * text format.  With store.prepared-statements = false (pgbouncer in
 * transaction pooling mode, where a named statement does not outlive the
 * transaction on the server connection it was made on) only unnamed
 * statements are used (PQexecParams) and nothing is kept in the session.
 *
 * Ids.  The schema's ids are `uuid`; the services bind them as text.  The
 * parameter types of each statement are learnt once per connection
 * (PQdescribePrepared) and a parameter typed uuid whose value is not a
 * canonical lowercase UUID is bound as the nil UUID, which no row has: a
 * client's "nope" finds nothing, exactly as on SQLite, and no invalid-text
 * error ever aborts the caller's transaction.  Text holding U+0000, which
 * PostgreSQL text cannot hold, is refused with SH_EINVAL before sending.
 *
 * Healing.  Connections are opened with connect_timeout, TCP keepalives
 * and tcp_user_timeout (a URI may override each), so that a dead server
 * is noticed rather than waited on.  A statement that fails because the
 * connection died returns SH_ESTORE saying so, and the connection is
 * marked broken; the next statement on it reconnects, with a backoff per
 * connection (100 ms doubling to 2 s) so that a down server is not
 * hammered, and fails fast while the backoff runs.  Before a statement
 * outside a transaction, whatever the server sent meanwhile is read
 * without waiting: a session the server ended while it sat in the pool
 * (pg_terminate_backend, idle_session_timeout, a shutdown) is seen closed
 * there and replaced before anything is sent.  A statement whose session
 * died under it is retried once on a fresh one only when it cannot have
 * changed anything: it was never sent, or it is a SELECT or BEGIN outside
 * a transaction.  Anything else (a write, a COMMIT, a statement inside a
 * transaction) may have committed before the connection died, so it is
 * never retried here: the caller gets SH_ESTORE and its own rules decide
 * (the chat write-behind retries its batch, which is idempotent by ON
 * CONFLICT DO NOTHING).
 *
 * Migrations run on the first connection, all pending ones in one
 * transaction that first takes a transaction-level advisory lock (works
 * through pgbouncer too), so that nodes starting at once apply each
 * exactly once.  The month partitions of notifications are maintained at
 * open and then at most once an hour by whichever statement runs first
 * past that time (outside a transaction).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/store_be.h"

#define UUID_OID 2950
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define MAINTAIN_EVERY_MS (3600 * 1000)
/* The migration lock: any constant every node shares. */
#define MIGRATE_LOCK "7526466960945504610"

/* One cached statement.  @text and @types survive a reconnect; @prepared
 * does not. */
struct pg_stmt {
    const struct sh__sql *key;
    char *text;                /* owned: the `$n` text */
    Oid *types;                /* owned: nparams types, once described */
    int nparams;
    bool described;
    bool prepared;             /* as name, on this session */
    bool readonly;             /* SELECT: safe to retry */
    unsigned id;               /* name: "sh<id>" */
};

/* Invariants of the statement cache (as sqlite.c's):
 *  1. cap is 0 or a power of two; len < cap * 3 / 4 once cap > 0.
 *  2. A slot with key == NULL is empty; slots are never deleted.
 */
struct pg_conn {
    struct sh__conn base;      /* first: store.c's view */
    PGconn *pg;                /* owned; NULL while down */
    char *uri;                 /* owned */
    bool named;                /* store.prepared-statements */
    int ahead, retention;      /* notification partitions */
    bool broken;               /* the session died: reconnect first */
    int64_t backoff_ms;
    int64_t next_try_ms;       /* monotonic: no reconnect before */
    struct pg_stmt *slots;     /* owned, cap of them */
    size_t cap, len;
    unsigned next_id;
};

/* What a row callback sees. */
struct pg_row {
    PGresult *res;
    int row;
};

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- `?` to `$n` ------------------------------------------------------ */

/* Convert @in; *@nparams gets the highest parameter number.  NULL when out
 * of memory; else the caller frees it. */
char *sh__pg_placeholders(const char *in, int *nparams)
{
    size_t n = strlen(in);
    /* each `?` grows by at most "$NNNNN" - "?" */
    char *out = malloc(n * 6 + 1);
    size_t o = 0;
    int max = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        char ch = in[i];

        if (ch == '\'' || ch == '"') {
            /* A literal or identifier; a doubled quote stays inside. E''
             * strings are not used by the services. */
            out[o++] = in[i++];
            while (i < n) {
                if (in[i] == ch && i + 1 < n && in[i + 1] == ch) {
                    out[o++] = in[i++];
                    out[o++] = in[i++];
                } else if (in[i] == ch) {
                    out[o++] = in[i++];
                    break;
                } else {
                    out[o++] = in[i++];
                }
            }
        } else if (ch == '-' && i + 1 < n && in[i + 1] == '-') {
            while (i < n && in[i] != '\n')
                out[o++] = in[i++];
        } else if (ch == '/' && i + 1 < n && in[i + 1] == '*') {
            size_t e = i + 2;

            while (e < n && !(in[e] == '*' && e + 1 < n && in[e + 1] == '/'))
                e++;
            e = e < n ? e + 2 : n;
            memcpy(out + o, in + i, e - i);
            o += e - i;
            i = e;
        } else if (ch == '?') {
            int num;

            i++;
            if (in[i] >= '0' && in[i] <= '9') {
                /* SQLite's ?NNN: that parameter, and later plain `?`
                 * number on from the highest seen. */
                num = 0;
                while (in[i] >= '0' && in[i] <= '9' && num < 100000)
                    num = num * 10 + (in[i++] - '0');
            } else {
                num = max + 1;
            }
            if (num > max)
                max = num;
            o += (size_t)sprintf(out + o, "$%d", num);
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
    *nparams = max;
    return out;
}

/* ---- the statement cache ---------------------------------------------- */

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;

    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return (size_t)x;
}

static struct pg_stmt *cache_get(struct pg_conn *pc, const struct sh__sql *q)
{
    if (pc->cap == 0)
        return NULL;
    for (size_t i = ptr_hash(q) & (pc->cap - 1);; i = (i + 1) & (pc->cap - 1)) {
        if (pc->slots[i].key == q)
            return &pc->slots[i];
        if (pc->slots[i].key == NULL)
            return NULL;
    }
}

static struct pg_stmt *slot_for(struct pg_stmt *slots, size_t cap,
                                const struct sh__sql *q)
{
    size_t i = ptr_hash(q) & (cap - 1);

    while (slots[i].key != NULL)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* A new entry for @q, its text converted; NULL when out of memory. */
static struct pg_stmt *cache_add(struct pg_conn *pc, const struct sh__sql *q)
{
    const char *src = q->pg != NULL ? q->pg : q->text;
    struct pg_stmt *s;
    const char *p;
    char *text;
    int np = 0;

    if ((pc->len + 1) * 4 >= pc->cap * 3) {
        size_t ncap = pc->cap == 0 ? 32 : pc->cap * 2;
        struct pg_stmt *ns = calloc(ncap, sizeof *ns);

        if (ns == NULL)
            return NULL;
        for (size_t i = 0; i < pc->cap; i++) {
            if (pc->slots[i].key != NULL)
                *slot_for(ns, ncap, pc->slots[i].key) = pc->slots[i];
        }
        free(pc->slots);
        pc->slots = ns;
        pc->cap = ncap;
    }
    text = sh__pg_placeholders(src, &np);
    if (text == NULL)
        return NULL;
    s = slot_for(pc->slots, pc->cap, q);
    memset(s, 0, sizeof *s);
    s->key = q;
    s->text = text;
    s->nparams = np;
    s->id = ++pc->next_id;
    for (p = text; *p == ' ' || *p == '\n' || *p == '(' || *p == '\t'; p++)
        ;
    s->readonly = strncmp(p, "SELECT", 6) == 0 ||
                  strcmp(p, "BEGIN") == 0;
    pc->len++;
    return s;
}

static void cache_forget_sessions(struct pg_conn *pc)
{
    for (size_t i = 0; i < pc->cap; i++)
        pc->slots[i].prepared = false;
}

/* ---- errors ------------------------------------------------------------ */

static bool conn_lost(const struct pg_conn *pc)
{
    return pc->pg == NULL || PQstatus(pc->pg) == CONNECTION_BAD;
}

/* One line of libpq's message (they end in newlines, some have two). */
static void first_line(const char *msg, char *buf, size_t len)
{
    size_t n = 0;

    if (msg == NULL)
        msg = "";
    while (msg[n] != '\0' && msg[n] != '\n' && n + 1 < len)
        n++;
    memcpy(buf, msg, n);
    buf[n] = '\0';
}

/* Map the outcome of a statement (@res may be NULL) to an error. */
static sh_err_t map_error(struct pg_conn *pc, PGresult *res,
                          const char *what, char *errbuf, size_t errbuf_len)
{
    const char *state = res != NULL ? PQresultErrorField(res,
                                          PG_DIAG_SQLSTATE) : NULL;
    const char *prim = res != NULL ? PQresultErrorField(res,
                                         PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char line[256];

    if (conn_lost(pc)) {
        first_line(PQerrorMessage(pc->pg), line, sizeof line);
        pc->broken = true;
        sh__errbuf(errbuf, errbuf_len, "store: the connection to "
                   "PostgreSQL was lost (%s); it reconnects on the next "
                   "statement", line[0] != '\0' ? line : "closed");
        return SH_ESTORE;
    }
    if (state != NULL && strcmp(state, "23505") == 0) {
        sh__errbuf(errbuf, errbuf_len, "store: %s", prim != NULL ? prim : "");
        return SH_ECONFLICT;
    }
    if (res == NULL) {
        /* libpq could not build a result: out of memory. */
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    first_line(prim != NULL ? prim : PQresultErrorMessage(res), line,
               sizeof line);
    sh__errbuf(errbuf, errbuf_len, "store: %s: %s (%s)", what, line,
               state != NULL ? state : "no SQLSTATE");
    return SH_ESTORE;
}

/* ---- connecting -------------------------------------------------------- */

static sh_err_t run_simple(struct pg_conn *pc, const char *sql,
                           const char *what, char *errbuf, size_t errbuf_len)
{
    PGresult *res = PQexec(pc->pg, sql);
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    sh_err_t rc = SH_OK;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = map_error(pc, res, what, errbuf, errbuf_len);
    PQclear(res);
    return rc;
}

static sh_err_t connect_pg(struct pg_conn *pc, char *errbuf,
                           size_t errbuf_len)
{
    /* Defaults first, the URI (dbname, expanded) last: what the URI says
     * wins.  tcp_user_timeout bounds a write the peer never acknowledges,
     * keepalives a read from a peer that vanished. */
    const char *const keys[] = {
        "connect_timeout", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
        "application_name", "client_encoding", "dbname", NULL
    };
    const char *const vals[] = {
        "5", "1", "10", "5", "3", "15000", "streamhub", "UTF8", pc->uri,
        NULL
    };
    char line[256];

    if (pc->pg != NULL)
        PQfinish(pc->pg);
    pc->pg = PQconnectdbParams(keys, vals, 1);
    if (pc->pg == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    cache_forget_sessions(pc);
    if (PQstatus(pc->pg) != CONNECTION_OK) {
        first_line(PQerrorMessage(pc->pg), line, sizeof line);
        sh__errbuf(errbuf, errbuf_len, "store: cannot connect to "
                   "PostgreSQL: %s", line);
        PQfinish(pc->pg);
        pc->pg = NULL;
        pc->broken = true;
        return SH_ESTORE;
    }
    PQsetNoticeProcessor(pc->pg, quiet_notice, NULL);
    pc->broken = false;
    pc->backoff_ms = 0;
    return SH_OK;
}

/* Reconnect a broken connection unless its backoff still runs (@force:
 * ignore the backoff, for the one retry after a loss just seen). */
static sh_err_t heal(struct pg_conn *pc, bool force, char *errbuf,
                     size_t errbuf_len)
{
    int64_t now = mono_ms();
    sh_err_t rc;
    char own[256];

    /* The log line below needs the reason even when the caller wants
     * none. */
    if (errbuf == NULL || errbuf_len == 0) {
        errbuf = own;
        errbuf_len = sizeof own;
        own[0] = '\0';
    }
    if (!force && now < pc->next_try_ms) {
        sh__errbuf(errbuf, errbuf_len, "store: PostgreSQL is unreachable; "
                   "reconnecting in %lld ms",
                   (long long)(pc->next_try_ms - now));
        return SH_ESTORE;
    }
    rc = connect_pg(pc, errbuf, errbuf_len);
    if (rc != SH_OK) {
        pc->backoff_ms = pc->backoff_ms == 0 ? BACKOFF_MIN_MS
                         : pc->backoff_ms * 2;
        if (pc->backoff_ms > BACKOFF_MAX_MS)
            pc->backoff_ms = BACKOFF_MAX_MS;
        pc->next_try_ms = mono_ms() + pc->backoff_ms;
        if (rc == SH_ESTORE && pc->base.st != NULL &&
            pc->base.st->log != NULL)
            sh__log_kv(pc->base.st->log, SH_LOG_WARN,
                       "store reconnect failed", "error", errbuf,
                       (char *)NULL);
        return rc;
    }
    if (pc->base.st != NULL && pc->base.st->log != NULL)
        sh__log_kv(pc->base.st->log, SH_LOG_INFO, "store reconnected",
                   "backend", "postgres", (char *)NULL);
    return SH_OK;
}

/* ---- migrations and partitions ------------------------------------------ */

static sh_err_t maintain(struct pg_conn *pc, char *errbuf, size_t errbuf_len)
{
    char sql[128];
    sh_err_t rc;

    snprintf(sql, sizeof sql, "SELECT streamhub_notifications_maintain("
             "%d, %d)", pc->ahead, pc->retention);
    /* One transaction: the function's advisory lock is transaction-level,
     * so that it works through pgbouncer too. */
    rc = run_simple(pc, "BEGIN", "partition maintenance", errbuf,
                    errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = run_simple(pc, sql, "partition maintenance", errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = run_simple(pc, "COMMIT", "partition maintenance", errbuf,
                        errbuf_len);
    if (rc != SH_OK && !conn_lost(pc))
        run_simple(pc, "ROLLBACK", "partition maintenance", NULL, 0);
    return rc;
}

static sh_err_t migrate(struct pg_conn *pc, const struct sh__log *log,
                        char *errbuf, size_t errbuf_len)
{
    const int64_t known = (int64_t)sh__pg_migrations_count;
    int64_t have = 0;
    PGresult *res;
    sh_err_t rc;

    rc = run_simple(pc, "BEGIN", "migration", errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = run_simple(pc, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")",
                    "migration lock", errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = run_simple(pc, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        "version integer PRIMARY KEY, name text NOT NULL, "
                        "applied_at bigint NOT NULL)",
                        "creating schema_migrations", errbuf, errbuf_len);
    if (rc != SH_OK)
        goto abort;
    res = PQexec(pc->pg, "SELECT coalesce(max(version), 0) "
                 "FROM schema_migrations");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = map_error(pc, res, "reading schema_migrations", errbuf,
                       errbuf_len);
        PQclear(res);
        goto abort;
    }
    have = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (have > known) {
        sh__errbuf(errbuf, errbuf_len, "store: the database has schema "
                   "version %lld, newer than this library's %lld; refusing "
                   "to open it with an older StreamHub", (long long)have,
                   (long long)known);
        rc = SH_ESTORE;
        goto abort;
    }
    for (size_t i = 0; i < sh__pg_migrations_count; i++) {
        const struct sh__migration *m = &sh__pg_migrations[i];
        char v[24], at[24];
        const char *vals[3] = { v, m->name, at };

        if (m->version <= have)
            continue;
        rc = run_simple(pc, m->sql, m->name, errbuf, errbuf_len);
        if (rc != SH_OK)
            goto abort;
        snprintf(v, sizeof v, "%d", m->version);
        snprintf(at, sizeof at, "%lld", (long long)sh__now_ms());
        res = PQexecParams(pc->pg, "INSERT INTO schema_migrations (version,"
                           " name, applied_at) VALUES ($1, $2, $3)", 3,
                           NULL, vals, NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = map_error(pc, res, "recording a migration", errbuf,
                           errbuf_len);
            PQclear(res);
            goto abort;
        }
        PQclear(res);
        if (log != NULL)
            sh__log_kv(log, SH_LOG_INFO, "store migration applied",
                       "version", v, "name", m->name, (char *)NULL);
    }
    return run_simple(pc, "COMMIT", "migration", errbuf, errbuf_len);
abort:
    if (!conn_lost(pc))
        run_simple(pc, "ROLLBACK", "migration", NULL, 0);
    return rc;
}

/* ---- statements -------------------------------------------------------- */

/* Prepare (named mode) and learn the parameter types of @s, once per
 * session. */
static sh_err_t describe(struct pg_conn *pc, struct pg_stmt *s,
                         char *errbuf, size_t errbuf_len)
{
    char name[16];
    PGresult *res;
    bool wrap = !pc->named && !pc->base.in_tx;
    sh_err_t rc = SH_OK;

    if (s->described && (!pc->named || s->prepared))
        return SH_OK;
    snprintf(name, sizeof name, "sh%u", s->id);
    /* Unnamed mode: Parse and Describe must reach the same server
     * connection, which a pooler only promises inside a transaction. */
    if (wrap && (rc = run_simple(pc, "BEGIN", "describe", errbuf,
                                 errbuf_len)) != SH_OK)
        return rc;
    res = PQprepare(pc->pg, pc->named ? name : "", s->text, 0, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = map_error(pc, res, "prepare", errbuf, errbuf_len);
        PQclear(res);
        goto out;
    }
    PQclear(res);
    if (pc->named)
        s->prepared = true;
    if (!s->described) {
        res = PQdescribePrepared(pc->pg, pc->named ? name : "");
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = map_error(pc, res, "describe", errbuf, errbuf_len);
            PQclear(res);
            goto out;
        }
        if (PQnparams(res) > 0) {
            s->types = calloc((size_t)PQnparams(res), sizeof *s->types);
            if (s->types == NULL) {
                PQclear(res);
                sh__errbuf(errbuf, errbuf_len, "store: out of memory");
                rc = SH_ENOMEM;
                goto out;
            }
        }
        s->nparams = PQnparams(res);
        for (int i = 0; i < s->nparams; i++)
            s->types[i] = PQparamtype(res, i);
        PQclear(res);
        s->described = true;
    }
out:
    if (wrap && !conn_lost(pc)) {
        sh_err_t end = run_simple(pc, rc == SH_OK ? "COMMIT" : "ROLLBACK",
                                  "describe", rc == SH_OK ? errbuf : NULL,
                                  rc == SH_OK ? errbuf_len : 0);

        if (rc == SH_OK)
            rc = end;
    }
    return rc;
}

/* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, lowercase hex: how ids are made
 * (sh__uuid4) and the only spelling SQLite's text comparison matches. */
static bool canonical_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') ||
                     (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static const char nil_uuid[] = "00000000-0000-0000-0000-000000000000";

/* Text values of @params for @s, into @vals (pointing into @buf, which is
 * malloc'd here: free it). */
static sh_err_t bind_all(const struct pg_stmt *s,
                         const struct sh__val *params, size_t nparams,
                         const char **vals, char **buf, char *errbuf,
                         size_t errbuf_len)
{
    size_t total = 0, o = 0;
    char *b;

    *buf = NULL;
    if ((size_t)s->nparams != nparams) {
        sh__errbuf(errbuf, errbuf_len, "store: statement takes %d "
                   "parameters, %zu given", s->nparams, nparams);
        return SH_EINTERNAL;
    }
    for (size_t i = 0; i < nparams; i++) {
        if (params[i].type == SH__V_TEXT && params[i].s != NULL &&
            memchr(params[i].s, '\0', params[i].n) != NULL) {
            sh__errbuf(errbuf, errbuf_len, "store: text holding U+0000 "
                       "cannot be stored");
            return SH_EINVAL;
        }
        total += params[i].type == SH__V_TEXT ? params[i].n + 1 : 24;
    }
    b = malloc(total + 1);
    if (b == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    for (size_t i = 0; i < nparams; i++) {
        bool is_uuid = s->types != NULL && s->types[i] == UUID_OID;

        switch (params[i].type) {
        case SH__V_INT:
            vals[i] = b + o;
            o += (size_t)snprintf(b + o, 24, "%lld",
                                  (long long)params[i].i) + 1;
            if (is_uuid)
                vals[i] = nil_uuid;
            break;
        case SH__V_TEXT:
            if (params[i].s == NULL) {
                vals[i] = NULL;
                break;
            }
            if (is_uuid && !canonical_uuid(params[i].s, params[i].n)) {
                vals[i] = nil_uuid;
                break;
            }
            vals[i] = b + o;
            memcpy(b + o, params[i].s, params[i].n);
            o += params[i].n;
            b[o++] = '\0';
            break;
        case SH__V_NULL:
        default:
            vals[i] = NULL;
            break;
        }
    }
    *buf = b;
    return SH_OK;
}

/* Run @s once; *@res gets the result (or NULL), *@sent whether the
 * statement itself went to the server. */
static sh_err_t run_once(struct pg_conn *pc, struct pg_stmt *s,
                         const struct sh__val *params, size_t nparams,
                         PGresult **res, bool *sent, char *errbuf,
                         size_t errbuf_len)
{
    const char *small[64];
    const char **vals = small;
    char *buf = NULL, name[16];
    ExecStatusType st;
    sh_err_t rc;

    *res = NULL;
    *sent = false;
    rc = describe(pc, s, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (nparams > 64) {
        vals = calloc(nparams, sizeof *vals);
        if (vals == NULL) {
            sh__errbuf(errbuf, errbuf_len, "store: out of memory");
            return SH_ENOMEM;
        }
    }
    rc = bind_all(s, params, nparams, vals, &buf, errbuf, errbuf_len);
    if (rc == SH_OK) {
        *sent = true;
        if (pc->named) {
            snprintf(name, sizeof name, "sh%u", s->id);
            *res = PQexecPrepared(pc->pg, name, (int)nparams, vals, NULL,
                                  NULL, 0);
        } else {
            *res = PQexecParams(pc->pg, s->text, (int)nparams, s->types,
                                vals, NULL, NULL, 0);
        }
        st = *res != NULL ? PQresultStatus(*res) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            rc = map_error(pc, *res, "statement", errbuf, errbuf_len);
    }
    free(buf);
    if (vals != small)
        free(vals);
    return rc;
}

static sh_err_t pg_exec(struct sh__conn *c, const struct sh__sql *q,
                        const struct sh__val *params, size_t nparams,
                        sh__row_cb cb, void *cb_arg, int64_t *changes,
                        char *errbuf, size_t errbuf_len)
{
    struct pg_conn *pc = (struct pg_conn *)c;
    struct sh__store *st = c->st;
    struct sh__row row = { &sh__pg_backend, NULL };
    struct pg_row pr;
    struct pg_stmt *s;
    PGresult *res = NULL;
    bool sent = false;
    sh_err_t rc;

    if (changes != NULL)
        *changes = 0;
    /* A session the server closed while it sat in the pool: its goodbye
     * and end of file wait in the socket, read here without blocking. */
    if (!c->in_tx && !pc->broken && pc->pg != NULL &&
        (PQconsumeInput(pc->pg) == 0 || PQstatus(pc->pg) == CONNECTION_BAD))
        pc->broken = true;
    if (pc->broken || pc->pg == NULL) {
        if (c->in_tx) {
            /* The transaction died with the session: nothing to run, and
             * a rollback has nothing left to undo. */
            sh__errbuf(errbuf, errbuf_len, "store: the connection to "
                       "PostgreSQL was lost inside a transaction, which "
                       "was rolled back");
            return SH_ESTORE;
        }
        if ((rc = heal(pc, false, errbuf, errbuf_len)) != SH_OK)
            return rc;
    }
    s = cache_get(pc, q);
    if (s == NULL && (s = cache_add(pc, q)) == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    /* Partitions ahead, at most once an hour per store, by whoever comes
     * first (one compare-and-swap: one caller wins). */
    if (!c->in_tx) {
        int64_t now = mono_ms();
        int_fast64_t due = atomic_load(&st->maintain_at_ms);

        if (now >= due && atomic_compare_exchange_strong(
                &st->maintain_at_ms, &due, now + MAINTAIN_EVERY_MS)) {
            char why[SH_ERRBUF_SIZE];

            if (maintain(pc, why, sizeof why) != SH_OK && st->log != NULL)
                sh__log_kv(st->log, SH_LOG_WARN, "notification partition "
                           "maintenance failed", "error", why, (char *)NULL);
        }
    }
    rc = run_once(pc, s, params, nparams, &res, &sent, errbuf, errbuf_len);
    if (rc == SH_ESTORE && pc->broken && !c->in_tx &&
        (s->readonly || !sent)) {
        /* Nothing this statement did can have lasted: one retry on a
         * fresh session. */
        PQclear(res);
        res = NULL;
        if ((rc = heal(pc, true, errbuf, errbuf_len)) == SH_OK)
            rc = run_once(pc, s, params, nparams, &res, &sent, errbuf,
                          errbuf_len);
    }
    if (rc != SH_OK) {
        PQclear(res);
        return rc;
    }
    if (changes != NULL) {
        const char *t = PQcmdTuples(res);

        *changes = t != NULL && *t != '\0' ? strtoll(t, NULL, 10) : 0;
    }
    if (cb != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        int nrows = PQntuples(res);

        pr.res = res;
        row.h = &pr;
        for (int i = 0; i < nrows; i++) {
            pr.row = i;
            if (cb(cb_arg, &row) != 0)
                break;
        }
    }
    PQclear(res);
    return SH_OK;
}

static bool pg_row_null(const struct sh__row *r, int col)
{
    const struct pg_row *pr = r->h;

    return PQgetisnull(pr->res, pr->row, col) != 0;
}

static int64_t pg_row_int(const struct sh__row *r, int col)
{
    const struct pg_row *pr = r->h;

    if (PQgetisnull(pr->res, pr->row, col))
        return 0;
    return (int64_t)strtoll(PQgetvalue(pr->res, pr->row, col), NULL, 10);
}

static const char *pg_row_text(const struct sh__row *r, int col,
                               size_t *len)
{
    const struct pg_row *pr = r->h;

    if (PQgetisnull(pr->res, pr->row, col)) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = (size_t)PQgetlength(pr->res, pr->row, col);
    return PQgetvalue(pr->res, pr->row, col);
}

static void pg_close(struct sh__conn *c)
{
    struct pg_conn *pc = (struct pg_conn *)c;

    if (pc == NULL)
        return;
    for (size_t i = 0; i < pc->cap; i++) {
        free(pc->slots[i].text);
        free(pc->slots[i].types);
    }
    free(pc->slots);
    if (pc->pg != NULL)
        PQfinish(pc->pg);
    free(pc->uri);
    free(pc);
}

static sh_err_t pg_open(struct sh__store *st,
                        const struct sh__store_target *t, bool first,
                        struct sh__conn **out, char *errbuf,
                        size_t errbuf_len)
{
    struct pg_conn *pc;
    sh_err_t rc;

    *out = NULL;
    pc = calloc(1, sizeof *pc);
    if (pc != NULL)
        pc->uri = strdup(t->path);
    if (pc == NULL || pc->uri == NULL) {
        free(pc);
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    pc->base.st = st;
    pc->named = t->prepared_statements;
    pc->ahead = (int)t->partitions_ahead;
    pc->retention = (int)t->retention_months;
    rc = connect_pg(pc, errbuf, errbuf_len);
    if (rc == SH_OK && first) {
        rc = migrate(pc, st->log, errbuf, errbuf_len);
        if (rc == SH_OK)
            rc = maintain(pc, errbuf, errbuf_len);
        if (rc == SH_OK)
            atomic_store(&st->maintain_at_ms, mono_ms() + MAINTAIN_EVERY_MS);
    }
    if (rc != SH_OK) {
        pg_close(&pc->base);
        return rc;
    }
    *out = &pc->base;
    return SH_OK;
}

const struct sh__store_backend sh__pg_backend = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .row_null = pg_row_null,
    .row_int = pg_row_int,
    .row_text = pg_row_text,
};
