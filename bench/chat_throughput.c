/* bench/chat_throughput.c: chat messages accepted per second through the
 * whole send path, and send-to-callback latency.
 *
 * One standalone hub on a temporary SQLite file; one broadcaster live;
 * --senders threads (one by default) call sh_chat_send() in a loop
 * (validation, offset, write-behind queue, publish to the local bus);
 * --subscribers subscriptions (sh_subscribe) on the stream's chat channel
 * are drained by sh_hub_poll() on another thread.  --durability picks
 * chat.durability: commit (the hub's default: each send returns once its
 * batch is stored, so one sender makes one transaction per message and
 * several senders share them: group commit) or async (acknowledged when
 * queued).  Latency is from just before sh_chat_send() to the callback of
 * the first and of the last subscriber, measured twice: under full load
 * (the sender flat out, so it includes queueing behind the backlog) and
 * paced (--rate messages a second after the flat-out phase, the latency a
 * chat actually sees below saturation).  After the hub closed (which flushes
 * the queue) the file is opened with sqlite3 and every message counted.
 *
 * The floor printed beside it: the same rows inserted by sqlite3 alone, in
 * batches of chat.write-behind-batch per transaction, on a fresh file with
 * the same table and indexes, WAL and synchronous=NORMAL like the store,
 * the hub's kind of key (version 7 UUIDs), in the same run.  The ratio says how far the full path
 * (publish + fan-out + persistence) is from the bare store.
 *
 * Output: one JSON object per line,
 *   {"bench":"chat_throughput","metric":…,"value":…,"unit":…}
 * Flags: --messages N, --subscribers N, --batch N, --rate N (paced phase,
 * messages a second), --paced N (its messages), --durability commit|async,
 * --senders N (threads of the flat-out phase), --quick (CI sizes).
 * Exit status 0 only when every subscriber got every message and every
 * message is in the store.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/chat.h"
#include "streamhub/streams.h"

#ifndef SH_BENCH_BUILDTYPE
#define SH_BENCH_BUILDTYPE "unknown"
#endif

struct sub {
    _Atomic uint64_t received;
    uint64_t bad_order;
    uint64_t last_offset;
    int64_t *lat_ns;          /* arrival per message, NULL for the middle */
};

struct bench {
    sh_hub_t *hub;
    size_t n;                 /* messages */
    size_t nsubs;
    struct sub *subs;
    _Atomic int64_t *t0;      /* send start per message, ns */
    atomic_bool stop;
    uint64_t base;            /* offset of the first message, minus one */
    const char *sender, *stream;
    size_t nsenders;
    _Atomic int64_t busy;     /* sends refused with SH_EBUSY, retried */
};

/* One sender thread of the flat-out phase. */
struct sender_arg {
    struct bench *b;
    size_t count;
};

struct sub_arg {
    struct bench *b;
    size_t i;
};

static void die(const char *what, const char *err);

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_event(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct sub_arg *sa = arg;
    struct sub *s = &sa->b->subs[sa->i];
    uint64_t off, idx;

    if (ev == NULL || status != SH_OK)
        return;
    if (strcmp(sh_event_type(ev), "chat.message") != 0)
        return;
    off = sh_event_offset(ev);
    if (off != s->last_offset + 1 && s->last_offset != 0)
        s->bad_order++;
    s->last_offset = off;
    s->received++;
    idx = off - sa->b->base - 1;
    /* The arrival: with several senders (or commit, which publishes
     * before the send returns) the start is known only after the call,
     * so the latency is computed once the run is over. */
    if (s->lat_ns != NULL && idx < sa->b->n)
        s->lat_ns[idx] = now_ns();
}

/* Send @count messages flat out.  One sender knows each message's offset
 * before the call (base + i + 1) and keys its start by it; several learn
 * it from the returned message. */
static void *send_loop(void *arg)
{
    struct sender_arg *sa = arg;
    struct bench *b = sa->b;
    char err[SH_ERRBUF_SIZE];

    for (size_t i = 0; i < sa->count; i++) {
        static const char text[] = "hello chat, this is message text";
        sh_chat_message_t *m = NULL;
        int64_t t0 = now_ns();
        sh_err_t rc;

        if (b->nsenders == 1)
            atomic_store_explicit(&b->t0[i], t0, memory_order_release);
        rc = sh_chat_send(b->hub, b->sender, b->stream, text,
                          sizeof text - 1, b->nsenders > 1 ? &m : NULL,
                          NULL, err, sizeof err);
        if (rc == SH_EBUSY) {
            atomic_fetch_add(&b->busy, 1);
            i--;
            usleep(100);
            continue;
        }
        if (rc != SH_OK)
            die("send", err);
        if (m != NULL) {
            uint64_t idx = (uint64_t)sh_chat_message_offset(m) - b->base - 1;

            if (idx < b->n)
                atomic_store_explicit(&b->t0[idx], t0, memory_order_release);
            sh_chat_message_free(m);
        }
    }
    return NULL;
}

static void *poller(void *arg)
{
    struct bench *b = arg;

    while (!atomic_load(&b->stop))
        sh_hub_poll(b->hub, 50);
    while (sh_hub_poll(b->hub, 0) > 0)
        ;
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Percentile @p (0..100) of @v (n values, sorted in place), in µs. */
static double pct_us(int64_t *v, size_t n, double p)
{
    size_t k;

    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_i64);
    k = (size_t)((p / 100.0) * (double)(n - 1) + 0.5);
    return (double)v[k] / 1000.0;
}

static void emit(const char *metric, double value, const char *unit)
{
    printf("{\"bench\":\"chat_throughput\",\"metric\":\"%s\",\"value\":%.3f,"
           "\"unit\":\"%s\"}\n", metric, value, unit);
}

static void emit_s(const char *metric, const char *value)
{
    printf("{\"bench\":\"chat_throughput\",\"metric\":\"%s\",\"value\":\"%s\","
           "\"unit\":\"\"}\n", metric, value);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "chat_throughput: %s: %s\n", what, err);
    exit(2);
}

static void set(sh_config_t *conf, const char *k, const char *v)
{
    char err[SH_ERRBUF_SIZE];

    if (sh_config_set(conf, k, v, err, sizeof err) != SH_OK)
        die(k, err);
}

/* A message id as the hub makes them (chat.c): a version 7 UUID, 48 bits
 * of Unix milliseconds then random bits (here from xorshift64*, the bench
 * needs no secrecy), so that the floor pays the same B-tree cost. */
static void rand_uuid(uint64_t *s, char out[48])
{
    uint64_t ms = (uint64_t)(now_ns() / 1000000), a, b;

    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    a = *s * 0x2545f4914f6cdd1du;
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    b = *s * 0x2545f4914f6cdd1du;
    snprintf(out, 48, "%08x-%04x-7%03x-%04x-%012llx",
             (unsigned)(ms >> 16) & 0xffffffffu, (unsigned)ms & 0xffffu,
             (unsigned)a & 0xfffu, (unsigned)((b >> 48) & 0x3fffu) | 0x8000u,
             (unsigned long long)(b & 0xffffffffffffu));
}

/* The bare store: @n rows in batches of @batch with sqlite3 alone. */
static double sqlite_floor(const char *path, size_t n, size_t batch)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t rng = 0x9e3779b97f4a7c15u ^ (uint64_t)now_ns();
    int64_t t;
    char id[48];

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("floor open", sqlite3_errmsg(db));
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 "CREATE TABLE chat_messages (id TEXT PRIMARY KEY, "
                 "stream_id TEXT NOT NULL, channel_id TEXT NOT NULL, "
                 "author_id TEXT NOT NULL, text TEXT NOT NULL, "
                 "\"offset\" INTEGER NOT NULL, created_at INTEGER NOT NULL, "
                 "deleted INTEGER NOT NULL DEFAULT 0, "
                 "UNIQUE (stream_id, \"offset\"));"
                 "CREATE INDEX a ON chat_messages (author_id, created_at);"
                 "CREATE INDEX b ON chat_messages "
                 "(channel_id, author_id, created_at);",
                 NULL, NULL, NULL);
    if (sqlite3_prepare_v2(db, "INSERT INTO chat_messages (id, stream_id, "
                           "channel_id, author_id, text, \"offset\", "
                           "created_at, deleted) VALUES (?,?,?,?,?,?,?,?) "
                           "ON CONFLICT DO NOTHING", -1, &st, NULL)
        != SQLITE_OK)
        die("floor prepare", sqlite3_errmsg(db));
    t = now_ns();
    for (size_t i = 0; i < n; i++) {
        if (i % batch == 0)
            sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        rand_uuid(&rng, id);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, "11111111-1111-4111-8111-111111111111", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 3, "22222222-2222-4222-8222-222222222222", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 4, "33333333-3333-4333-8333-333333333333", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 5, "hello chat, this is message text", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)i + 1);
        sqlite3_bind_int64(st, 7, 1764400000000 + (sqlite3_int64)i);
        sqlite3_bind_int64(st, 8, 0);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("floor insert", sqlite3_errmsg(db));
        sqlite3_reset(st);
        if (i % batch == batch - 1 || i == n - 1)
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    t = now_ns() - t;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return (double)n / ((double)t / 1e9);
}

static int64_t count_rows(const char *path, const char *stream)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("count open", sqlite3_errmsg(db));
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM chat_messages WHERE "
                           "stream_id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void rm_db(const char *path)
{
    char side[600];

    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(int argc, char **argv)
{
    struct bench b;
    struct sub_arg *args;
    size_t n = 200000, nsubs = 100, batch = 512, np = 10000, total;
    size_t nsenders = 1;
    const char *durability = "commit";
    pthread_t *send_threads = NULL;
    struct sender_arg *send_args = NULL;
    double rate = 2000;
    char dir[256], path[512], floor_path[512], store[600], num[32];
    char err[SH_ERRBUF_SIZE], bc[40], sender[40], stream[40], chan[64];
    sh_config_t *conf = NULL;
    sh_auth_t *auth = NULL;
    sh_stream_t *st = NULL;
    pthread_t poll_thread;
    int64_t t_send, t_all, *lat = NULL, busy = 0, stored;
    size_t nlat = 0;
    bool all_delivered = true, in_order = true;
    const char *tmp = getenv("TMPDIR");

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            n = 20000;
            nsubs = 10;
            np = 1000;
        } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
            n = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--subscribers") == 0 && i + 1 < argc) {
            nsubs = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
            rate = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--paced") == 0 && i + 1 < argc) {
            np = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--durability") == 0 && i + 1 < argc) {
            durability = argv[++i];
        } else if (strcmp(argv[i], "--senders") == 0 && i + 1 < argc) {
            nsenders = strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--quick] [--messages N] "
                    "[--subscribers N] [--batch N] [--rate N] [--paced N] "
                    "[--durability commit|async] [--senders N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n == 0 || nsubs == 0 || batch == 0 || batch > 65536 ||
        !(rate > 0) || nsenders == 0 || nsenders > 256 || nsenders > n) {
        fprintf(stderr, "chat_throughput: sizes must be positive\n");
        return 2;
    }

    snprintf(dir, sizeof dir, "%s/shbenchXXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", dir);
    snprintf(path, sizeof path, "%s/hub.db", dir);
    snprintf(floor_path, sizeof floor_path, "%s/floor.db", dir);
    snprintf(store, sizeof store, "sqlite:%s", path);

    memset(&b, 0, sizeof b);
    total = n + np;
    b.n = total;
    b.nsubs = nsubs;
    b.subs = calloc(nsubs, sizeof *b.subs);
    b.t0 = calloc(total, sizeof *b.t0);
    args = calloc(nsubs, sizeof *args);
    if (b.subs == NULL || b.t0 == NULL || args == NULL)
        die("calloc", "out of memory");
    b.subs[0].lat_ns = calloc(total, sizeof(int64_t));
    if (nsubs > 1)
        b.subs[nsubs - 1].lat_ns = calloc(total, sizeof(int64_t));

    if (sh_config_new(&conf) != SH_OK)
        die("config", "out of memory");
    set(conf, "store", store);
    set(conf, "log-level", "warn");
    set(conf, "chat.rate-limit", "100000");
    set(conf, "chat.rate-window-seconds", "1");
    set(conf, "chat.max-message-length", "500");
    snprintf(num, sizeof num, "%zu", batch);
    set(conf, "chat.write-behind-batch", num);
    set(conf, "chat.write-behind-queue", "1048576");
    set(conf, "chat.durability", durability);
    set(conf, "bus.subscriber-queue", "1048576");
    if (sh_hub_open(conf, &b.hub, err, sizeof err) != SH_OK)
        die("hub open", err);

    if (sh_auth_register(b.hub, "bench_bc", "bc@example.com",
                         "correct horse battery", &auth, err, sizeof err)
        != SH_OK)
        die("register", err);
    snprintf(bc, sizeof bc, "%s", sh_user_id(sh_auth_user(auth)));
    sh_auth_free(auth);
    if (sh_auth_register(b.hub, "bench_sender", "sender@example.com",
                         "correct horse battery", &auth, err, sizeof err)
        != SH_OK)
        die("register", err);
    snprintf(sender, sizeof sender, "%s", sh_user_id(sh_auth_user(auth)));
    sh_auth_free(auth);
    if (sh_stream_start(b.hub, bc, "bench", "bench", &st, err, sizeof err)
        != SH_OK)
        die("stream", err);
    snprintf(stream, sizeof stream, "%s", sh_stream_id(st));
    sh_stream_free(st);
    snprintf(chan, sizeof chan, "chat:%s", stream);

    for (size_t i = 0; i < nsubs; i++) {
        args[i].b = &b;
        args[i].i = i;
        if (sh_subscribe(b.hub, chan, NULL, on_event, &args[i], NULL, NULL,
                         err, sizeof err) != SH_OK)
            die("subscribe", err);
    }
    {
        sh_position_t pos;

        if (sh_channel_position(b.hub, chan, &pos, err, sizeof err) != SH_OK)
            die("position", err);
        b.base = pos.offset;
    }
    if (pthread_create(&poll_thread, NULL, poller, &b) != 0)
        die("pthread_create", "poller");

    /* The measured loop: the full send path, flat out. */
    b.sender = sender;
    b.stream = stream;
    b.nsenders = nsenders;
    send_threads = calloc(nsenders, sizeof *send_threads);
    send_args = calloc(nsenders, sizeof *send_args);
    if (send_threads == NULL || send_args == NULL)
        die("calloc", "out of memory");
    t_send = now_ns();
    for (size_t k = 0; k < nsenders; k++) {
        send_args[k].b = &b;
        send_args[k].count = n / nsenders + (k < n % nsenders ? 1 : 0);
        if (pthread_create(&send_threads[k], NULL, send_loop,
                           &send_args[k]) != 0)
            die("pthread_create", "sender");
    }
    for (size_t k = 0; k < nsenders; k++)
        pthread_join(send_threads[k], NULL);
    t_send = now_ns() - t_send;
    busy = atomic_load(&b.busy);
    free(send_threads);
    free(send_args);
    /* Wait for delivery to every subscriber (bounded). */
    t_all = now_ns();
    for (int spins = 0; spins < 6000; spins++) {
        bool done = true;

        for (size_t i = 0; i < nsubs && done; i++)
            done = b.subs[i].received >= n;
        if (done)
            break;
        usleep(10000);
    }
    t_all = now_ns() - t_all + t_send;

    /* The paced phase: @np messages at @rate a second. */
    {
        int64_t start = now_ns();

        for (size_t j = 0; j < np; j++) {
            static const char text[] = "hello chat, paced message";
            int64_t due = start + (int64_t)((double)j * 1e9 / rate);
            sh_err_t rc;

            while (now_ns() < due) {
                int64_t left = due - now_ns();

                if (left > 200000)
                    usleep((useconds_t)(left / 2000));
            }
            atomic_store_explicit(&b.t0[n + j], now_ns(),
                                  memory_order_release);
            rc = sh_chat_send(b.hub, sender, stream, text, sizeof text - 1,
                              NULL, NULL, err, sizeof err);
            if (rc != SH_OK)
                die("send", err);
        }
        for (int spins = 0; spins < 6000; spins++) {
            bool done = true;

            for (size_t i = 0; i < nsubs && done; i++)
                done = b.subs[i].received >= total;
            if (done)
                break;
            usleep(10000);
        }
    }
    atomic_store(&b.stop, true);
    pthread_join(poll_thread, NULL);
    for (size_t i = 0; i < nsubs; i++) {
        if (b.subs[i].received != total)
            all_delivered = false;
        if (b.subs[i].bad_order != 0)
            in_order = false;
    }
    {
        int64_t t_close = now_ns();

        sh_hub_close(b.hub);   /* flushes the write-behind queue */
        t_close = now_ns() - t_close;
        emit("close_flush_ms", (double)t_close / 1e6, "ms");
    }
    stored = count_rows(path, stream);

    lat = malloc(total * sizeof *lat);
    if (lat == NULL)
        die("malloc", "out of memory");
    {
        double rate_out = (double)n / ((double)t_send / 1e9);
        double floor = sqlite_floor(floor_path, total, batch);
        struct { const char *name; size_t sub, from, to; } lats[] = {
            { "latency_full_load_first_subscriber", 0, 0, n },
            { "latency_full_load_last_subscriber", nsubs - 1, 0, n },
            { "latency_paced_first_subscriber", 0, n, total },
            { "latency_paced_last_subscriber", nsubs - 1, n, total },
        };

        printf("{\"bench\":\"chat_throughput\",\"metric\":\"cores\","
               "\"value\":%ld,\"unit\":\"\"}\n", sysconf(_SC_NPROCESSORS_ONLN));
        emit_s("build_type", SH_BENCH_BUILDTYPE);
        emit_s("durability", durability);
        emit("senders", (double)nsenders, "threads");
        emit("messages", (double)n, "msgs");
        emit("subscribers", (double)nsubs, "subs");
        emit("accepted_per_second", rate_out, "msgs/s");
        emit("delivered_to_all_per_second",
             (double)n / ((double)t_all / 1e9), "msgs/s");
        emit("fanout_callbacks_per_second",
             (double)n * (double)nsubs / ((double)t_all / 1e9), "events/s");
        emit("paced_rate", rate, "msgs/s");
        emit("paced_messages", (double)np, "msgs");
        for (size_t k = 0; k < sizeof lats / sizeof lats[0]; k++) {
            const int64_t *src = b.subs[lats[k].sub].lat_ns;
            char name[96];

            if (src == NULL || lats[k].to <= lats[k].from)
                continue;
            nlat = 0;
            for (size_t i = lats[k].from; i < lats[k].to; i++) {
                int64_t t0 = atomic_load(&b.t0[i]);

                if (src[i] > 0 && t0 > 0)
                    lat[nlat++] = src[i] - t0;
            }
            snprintf(name, sizeof name, "%s_p50", lats[k].name);
            emit(name, pct_us(lat, nlat, 50), "us");
            snprintf(name, sizeof name, "%s_p99", lats[k].name);
            emit(name, pct_us(lat, nlat, 99), "us");
        }
        emit("queue_full_retries", (double)busy, "sends");
        emit("sqlite_floor_rows_per_second", floor, "rows/s");
        emit("ratio_accepted_to_floor", rate_out / floor, "x");
        emit("all_delivered", all_delivered && in_order ? 1 : 0, "bool");
        emit("all_stored", stored == (int64_t)total ? 1 : 0, "bool");
    }

    rm_db(path);
    rm_db(floor_path);
    rmdir(dir);
    for (size_t i = 0; i < nsubs; i++)
        free(b.subs[i].lat_ns);
    free(b.subs);
    free((void *)b.t0);
    free(args);
    free(lat);
    if (!all_delivered || !in_order || stored != (int64_t)total) {
        fprintf(stderr, "chat_throughput: FAILED: delivered=%d in_order=%d "
                "stored=%lld of %zu\n", all_delivered, in_order,
                (long long)stored, total);
        return 1;
    }
    return 0;
}
