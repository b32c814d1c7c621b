/* libstreamhub/store/sqlite.c: the SQLite backend of the store.
 *
 * Each connection is opened in WAL mode (readers never block the writer),
 * with foreign keys on, synchronous=NORMAL (durable at checkpoints, safe
 * against corruption) and the busy timeout of store.busy-timeout-ms.
 *
 * Statements are prepared once per connection and cached in a small
 * open-addressing hash map keyed by the address of their `struct sh__sql`
 * (static storage, so the address is a stable identity).  After each use a
 * statement is reset and its bindings cleared, so that no borrowed text
 * outlives the call and no read transaction stays open.
 *
 * Migrations run on the first connection, each in one IMMEDIATE
 * transaction together with its row in schema_migrations, so that two
 * processes opening the same new file apply each exactly once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store_be.h"

/* Invariants of the statement cache:
 *  1. cap is 0 or a power of two; len < cap * 3 / 4 once cap > 0.
 *  2. A slot with key == NULL is empty; no slot is ever deleted (entries
 *     live until the connection closes), so linear probing stops at the
 *     first empty slot.
 */
struct stmt_slot {
    const struct sh__sql *key;
    sqlite3_stmt *stmt;        /* owned */
};

struct sqlite_conn {
    struct sh__conn base;      /* first: store.c's view */
    sqlite3 *db;               /* owned */
    struct stmt_slot *slots;   /* owned, cap of them */
    size_t cap, len;
};

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;

    /* splitmix64 finaliser: addresses share their low bits. */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return (size_t)x;
}

static sqlite3_stmt *cache_get(const struct sqlite_conn *sc,
                               const struct sh__sql *q)
{
    if (sc->cap == 0)
        return NULL;
    for (size_t i = ptr_hash(q) & (sc->cap - 1);; i = (i + 1) & (sc->cap - 1)) {
        if (sc->slots[i].key == q)
            return sc->slots[i].stmt;
        if (sc->slots[i].key == NULL)
            return NULL;
    }
}

static void slot_put(struct stmt_slot *slots, size_t cap,
                     const struct sh__sql *q, sqlite3_stmt *stmt)
{
    size_t i = ptr_hash(q) & (cap - 1);

    while (slots[i].key != NULL)
        i = (i + 1) & (cap - 1);
    slots[i].key = q;
    slots[i].stmt = stmt;
}

/* Insert (@q, @stmt); SH_ENOMEM leaves the cache as it was. */
static sh_err_t cache_put(struct sqlite_conn *sc, const struct sh__sql *q,
                          sqlite3_stmt *stmt)
{
    if ((sc->len + 1) * 4 >= sc->cap * 3) {
        size_t ncap = sc->cap == 0 ? 32 : sc->cap * 2;
        struct stmt_slot *ns = calloc(ncap, sizeof *ns);

        if (ns == NULL)
            return SH_ENOMEM;
        for (size_t i = 0; i < sc->cap; i++) {
            if (sc->slots[i].key != NULL)
                slot_put(ns, ncap, sc->slots[i].key, sc->slots[i].stmt);
        }
        free(sc->slots);
        sc->slots = ns;
        sc->cap = ncap;
    }
    slot_put(sc->slots, sc->cap, q, stmt);
    sc->len++;
    return SH_OK;
}

static sh_err_t map_error(sqlite3 *db, int rc, const char *what,
                          char *errbuf, size_t errbuf_len)
{
    int ext = sqlite3_extended_errcode(db);

    if (ext == SQLITE_CONSTRAINT_UNIQUE ||
        ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        sh__errbuf(errbuf, errbuf_len, "store: %s", sqlite3_errmsg(db));
        return SH_ECONFLICT;
    }
    if ((rc & 0xff) == SQLITE_NOMEM) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    sh__errbuf(errbuf, errbuf_len, "store: %s: %s", what,
               sqlite3_errmsg(db));
    return SH_ESTORE;
}

static sh_err_t get_stmt(struct sqlite_conn *sc, const struct sh__sql *q,
                         sqlite3_stmt **out, char *errbuf, size_t errbuf_len)
{
    const char *text = q->sqlite != NULL ? q->sqlite : q->text;
    const char *tail = NULL;
    sqlite3_stmt *stmt = cache_get(sc, q);
    int rc;

    if (stmt != NULL) {
        *out = stmt;
        return SH_OK;
    }
    rc = sqlite3_prepare_v3(sc->db, text, -1, SQLITE_PREPARE_PERSISTENT,
                            &stmt, &tail);
    if (rc != SQLITE_OK)
        return map_error(sc->db, rc, "prepare", errbuf, errbuf_len);
    if (stmt == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: empty statement");
        return SH_EINTERNAL;
    }
    while (tail != NULL && (*tail == ' ' || *tail == '\n' || *tail == '\t' ||
                            *tail == '\r' || *tail == ';'))
        tail++;
    if (tail != NULL && *tail != '\0') {
        sqlite3_finalize(stmt);
        sh__errbuf(errbuf, errbuf_len, "store: more than one statement in "
                   "'%.40s'", text);
        return SH_EINTERNAL;
    }
    if (cache_put(sc, q, stmt) != SH_OK) {
        sqlite3_finalize(stmt);
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    *out = stmt;
    return SH_OK;
}

static sh_err_t bind_all(struct sqlite_conn *sc, sqlite3_stmt *stmt,
                         const struct sh__val *params, size_t nparams,
                         char *errbuf, size_t errbuf_len)
{
    int want = sqlite3_bind_parameter_count(stmt);
    int rc = SQLITE_OK;

    if ((size_t)want != nparams) {
        sh__errbuf(errbuf, errbuf_len, "store: statement takes %d "
                   "parameters, %zu given", want, nparams);
        return SH_EINTERNAL;
    }
    for (size_t i = 0; i < nparams && rc == SQLITE_OK; i++) {
        int col = (int)i + 1;

        switch (params[i].type) {
        case SH__V_INT:
            rc = sqlite3_bind_int64(stmt, col, params[i].i);
            break;
        case SH__V_TEXT:
            if (params[i].s == NULL)
                rc = sqlite3_bind_null(stmt, col);
            else      /* static: the bindings are cleared before we return */
                rc = sqlite3_bind_text64(stmt, col, params[i].s,
                                         (sqlite3_uint64)params[i].n,
                                         SQLITE_STATIC, SQLITE_UTF8);
            break;
        case SH__V_NULL:
        default:
            rc = sqlite3_bind_null(stmt, col);
            break;
        }
    }
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_TOOBIG) {
            sh__errbuf(errbuf, errbuf_len, "store: parameter too big");
            return SH_ETOOBIG;
        }
        return map_error(sc->db, rc, "bind", errbuf, errbuf_len);
    }
    return SH_OK;
}

static sh_err_t sqlite_exec(struct sh__conn *c, const struct sh__sql *q,
                            const struct sh__val *params, size_t nparams,
                            sh__row_cb cb, void *cb_arg, int64_t *changes,
                            char *errbuf, size_t errbuf_len)
{
    struct sqlite_conn *sc = (struct sqlite_conn *)c;
    struct sh__row row = { &sh__sqlite_backend, NULL };
    sqlite3_stmt *stmt = NULL;
    sh_err_t err;
    int rc;

    if (changes != NULL)
        *changes = 0;
    err = get_stmt(sc, q, &stmt, errbuf, errbuf_len);
    if (err != SH_OK)
        return err;
    err = bind_all(sc, stmt, params, nparams, errbuf, errbuf_len);
    if (err != SH_OK)
        goto out;
    row.h = stmt;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (cb != NULL && cb(cb_arg, &row) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = map_error(sc->db, rc, "step", errbuf, errbuf_len);
        goto out;
    }
    if (changes != NULL && sqlite3_stmt_readonly(stmt) == 0)
        *changes = (int64_t)sqlite3_changes64(sc->db);
    err = SH_OK;
out:
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return err;
}

static bool sqlite_row_null(const struct sh__row *r, int col)
{
    return sqlite3_column_type(r->h, col) == SQLITE_NULL;
}

static int64_t sqlite_row_int(const struct sh__row *r, int col)
{
    return (int64_t)sqlite3_column_int64(r->h, col);
}

static const char *sqlite_row_text(const struct sh__row *r, int col,
                                   size_t *len)
{
    const unsigned char *s;

    if (sqlite3_column_type(r->h, col) == SQLITE_NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    s = sqlite3_column_text(r->h, col);
    if (len != NULL)
        *len = s == NULL ? 0 : (size_t)sqlite3_column_bytes(r->h, col);
    return s == NULL ? "" : (const char *)s;
}

static void sqlite_close(struct sh__conn *c)
{
    struct sqlite_conn *sc = (struct sqlite_conn *)c;

    if (sc == NULL)
        return;
    for (size_t i = 0; i < sc->cap; i++)
        sqlite3_finalize(sc->slots[i].stmt);    /* NULL is a no-op */
    free(sc->slots);
    sqlite3_close_v2(sc->db);
    free(sc);
}

static sh_err_t run_script(sqlite3 *db, const char *sql, const char *what,
                           char *errbuf, size_t errbuf_len)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        sh__errbuf(errbuf, errbuf_len, "store: %s: %s", what,
                   msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return (rc & 0xff) == SQLITE_NOMEM ? SH_ENOMEM : SH_ESTORE;
    }
    return SH_OK;
}

static int max_version_cb(void *arg, int ncol, char **vals, char **names)
{
    (void)ncol;
    (void)names;
    *(int64_t *)arg = vals[0] != NULL ? strtoll(vals[0], NULL, 10) : 0;
    return 0;
}

static sh_err_t current_version(sqlite3 *db, int64_t *v, char *errbuf,
                                size_t errbuf_len)
{
    char *msg = NULL;
    int rc;

    *v = 0;
    rc = sqlite3_exec(db, "SELECT max(version) FROM schema_migrations",
                      max_version_cb, v, &msg);
    if (rc != SQLITE_OK) {
        sh__errbuf(errbuf, errbuf_len, "store: reading schema_migrations: %s",
                   msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return SH_ESTORE;
    }
    return SH_OK;
}

/* Apply every migration newer than the database, one transaction each. */
static sh_err_t migrate(sqlite3 *db, const struct sh__log *log,
                        const char *path, char *errbuf, size_t errbuf_len)
{
    const int64_t known = (int64_t)sh__sqlite_migrations_count;
    int64_t have;
    sh_err_t rc;

    rc = run_script(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at INTEGER NOT NULL)",
                    "creating schema_migrations", errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    for (size_t i = 0; i < sh__sqlite_migrations_count; i++) {
        const struct sh__migration *m = &sh__sqlite_migrations[i];
        sqlite3_stmt *ins = NULL;
        int src;

        rc = run_script(db, "BEGIN IMMEDIATE", "migration", errbuf,
                        errbuf_len);
        if (rc != SH_OK)
            return rc;
        /* Read inside the write lock: another process may have migrated. */
        rc = current_version(db, &have, errbuf, errbuf_len);
        if (rc != SH_OK)
            goto abort;
        if (have > known) {
            sh__errbuf(errbuf, errbuf_len, "store: database '%.80s' has "
                       "schema version %lld, newer than this library's %lld;"
                       " refusing to open it with an older StreamHub",
                       path, (long long)have, (long long)known);
            rc = SH_ESTORE;
            goto abort;
        }
        if (have >= m->version) {
            run_script(db, "COMMIT", "migration", NULL, 0);
            continue;
        }
        rc = run_script(db, m->sql, m->name, errbuf, errbuf_len);
        if (rc != SH_OK)
            goto abort;
        src = sqlite3_prepare_v2(db, "INSERT INTO schema_migrations "
                                 "(version, name, applied_at) "
                                 "VALUES (?, ?, ?)", -1, &ins, NULL);
        if (src == SQLITE_OK) {
            sqlite3_bind_int(ins, 1, m->version);
            sqlite3_bind_text(ins, 2, m->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 3, sh__now_ms());
            src = sqlite3_step(ins);
            if (src == SQLITE_DONE)
                src = SQLITE_OK;
        }
        if (src != SQLITE_OK) {
            rc = map_error(db, src, "recording a migration", errbuf,
                           errbuf_len);
            sqlite3_finalize(ins);
            goto abort;
        }
        sqlite3_finalize(ins);
        rc = run_script(db, "COMMIT", "migration", errbuf, errbuf_len);
        if (rc != SH_OK)
            goto abort;
        if (log != NULL) {
            char v[24];

            snprintf(v, sizeof v, "%d", m->version);
            sh__log_kv(log, SH_LOG_INFO, "store migration applied",
                       "version", v, "name", m->name, (char *)NULL);
        }
    }
    /* A database with nothing pending may still be newer than us. */
    rc = current_version(db, &have, errbuf, errbuf_len);
    if (rc == SH_OK && have > known) {
        sh__errbuf(errbuf, errbuf_len, "store: database '%.80s' has schema "
                   "version %lld, newer than this library's %lld; refusing "
                   "to open it with an older StreamHub", path,
                   (long long)have, (long long)known);
        rc = SH_ESTORE;
    }
    return rc;
abort:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static sh_err_t sqlite_open(struct sh__store *st,
                            const struct sh__store_target *t, bool first,
                            struct sh__conn **out, char *errbuf,
                            size_t errbuf_len)
{
    struct sqlite_conn *sc;
    sh_err_t rc;
    int src;

    *out = NULL;
    sc = calloc(1, sizeof *sc);
    if (sc == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    /* NOMUTEX: a connection is used by one thread at a time (the pool).
     * The read pool (store-read) opens the file read-only: its reads can
     * then never write, and the file must exist (the primary made it). */
    src = sqlite3_open_v2(t->path, &sc->db, (t->readonly
                          ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE |
                          SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        sh__errbuf(errbuf, errbuf_len, "store: cannot open '%.120s': %s",
                   t->path, sc->db != NULL ? sqlite3_errmsg(sc->db)
                                           : sqlite3_errstr(src));
        rc = (src & 0xff) == SQLITE_NOMEM ? SH_ENOMEM : SH_ESTORE;
        goto fail;
    }
    sqlite3_extended_result_codes(sc->db, 1);
    sqlite3_busy_timeout(sc->db, (int)t->busy_timeout_ms);
    /* journal_mode=WAL answers "memory" for :memory:, which is fine. */
    rc = run_script(sc->db, t->readonly ? "PRAGMA foreign_keys=ON"
                    : "PRAGMA journal_mode=WAL; "
                    "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
                    "configuring the connection", errbuf, errbuf_len);
    if (rc != SH_OK) {
        char why[SH_ERRBUF_SIZE];

        /* Say which file: the usual cause is a path that is not a DB. */
        snprintf(why, sizeof why, "%s", errbuf != NULL ? errbuf : "");
        sh__errbuf(errbuf, errbuf_len, "%s (store '%.80s')", why, t->path);
        goto fail;
    }
    if (first) {
        rc = migrate(sc->db, st->log, t->path, errbuf, errbuf_len);
        if (rc != SH_OK)
            goto fail;
    }
    sc->base.st = st;
    *out = &sc->base;
    return SH_OK;
fail:
    sqlite3_close_v2(sc->db);
    free(sc);
    return rc;
}

size_t sh__sqlite_cached(const struct sh__conn *c)
{
    return ((const struct sqlite_conn *)c)->len;
}

const struct sh__store_backend sh__sqlite_backend = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .exec = sqlite_exec,
    .row_null = sqlite_row_null,
    .row_int = sqlite_row_int,
    .row_text = sqlite_row_text,
};
