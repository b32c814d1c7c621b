/* bench/outbox_throughput.c: events from the store to RabbitMQ through the
 * transactional outbox, beside the floor of publishing the same messages
 * straight to the broker with confirms, in the same run.
 *
 * StreamHub: one standalone hub on a temporary SQLite file with
 * events-amqp set; --senders threads call sh_chat_send() (chat.durability
 * commit: a send returns once its batch, outbox rows included, is
 * stored); the relay publishes the rows to the exchange streamhub.events
 * with publisher confirms and deletes them once confirmed.  A consumer on
 * its own AMQP connection (an exclusive queue bound to chat.message,
 * no-ack) takes every message; each carries its send time (monotonic ns,
 * as the chat text), so the latency is send -> consumed.
 *
 * Floor: the same number of messages, of the same size and shape (the
 * envelope the sink publishes), published by one connection straight to
 * the exchange (persistent, mandatory) in batches of outbox.batch, each
 * batch waiting for its confirms as the relay does, consumed the same way.
 *
 * Output: one JSON object per line,
 *   {"bench":"outbox_throughput","metric":…,"value":…,"unit":…}
 * Flags: --amqp URI (required; bench/run_outbox.sh starts a broker),
 * --events N, --senders N, --batch N (outbox.batch and the floor's),
 * --quick.  Exit status 0 only when every event arrived.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/chat.h"
#include "streamhub/streams.h"

#ifndef SH_BENCH_BUILDTYPE
#define SH_BENCH_BUILDTYPE "unknown"
#endif

#define EXCHANGE "streamhub.events"

struct consumer {
    const char *uri;
    const char *key;          /* routing key bound */
    size_t want;
    int64_t *lat_ns;          /* one per arrival */
    _Atomic size_t got;
    _Atomic int64_t last_ns;
    atomic_bool ready, stop;
};

struct sender_arg {
    sh_hub_t *hub;
    const char *user, *stream;
    size_t count;
};

static void die(const char *what, const char *err)
{
    fprintf(stderr, "outbox_throughput: %s: %s\n", what, err);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void check_rpc(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);

    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        die(what, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                      ? amqp_error_string2(r.library_error)
                      : "the broker refused");
}

static amqp_connection_state_t amqp_open(const char *uri)
{
    struct amqp_connection_info info;
    char *u = strdup(uri);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = { 5, 0 };
    amqp_rpc_reply_t r;

    if (u == NULL || amqp_parse_url(u, &info) != AMQP_STATUS_OK)
        die("--amqp", "not an amqp:// URI");
    if (amqp_socket_open_noblock(s, info.host, info.port, &tv) !=
        AMQP_STATUS_OK)
        die("connect", uri);
    r = amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                   info.user, info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        die("login", uri);
    amqp_channel_open(c, 1);
    check_rpc(c, "channel.open");
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(EXCHANGE),
                          amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    check_rpc(c, "exchange.declare");
    free(u);
    return c;
}

/* The send time a message carries: the digits after "text":"t. */
static int64_t sent_at(const char *body, size_t len)
{
    static const char key[] = "\"text\":\"t";
    const char *p = memmem(body, len, key, sizeof key - 1);

    return p != NULL ? strtoll(p + sizeof key - 1, NULL, 10) : 0;
}

static void *consume(void *arg)
{
    struct consumer *k = arg;
    amqp_connection_state_t c = amqp_open(k->uri);
    amqp_queue_declare_ok_t *q;
    amqp_bytes_t qname;

    q = amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1,
                           amqp_empty_table);
    check_rpc(c, "queue.declare");
    qname = amqp_bytes_malloc_dup(q->queue);
    amqp_queue_bind(c, 1, qname, amqp_cstring_bytes(EXCHANGE),
                    amqp_cstring_bytes(k->key), amqp_empty_table);
    check_rpc(c, "queue.bind");
    amqp_basic_consume(c, 1, qname, amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    check_rpc(c, "basic.consume");
    atomic_store(&k->ready, true);
    while (!atomic_load(&k->stop) && atomic_load(&k->got) < k->want) {
        amqp_envelope_t envelope;
        struct timeval tv = { 0, 200000 };
        amqp_rpc_reply_t r;

        amqp_maybe_release_buffers(c);
        r = amqp_consume_message(c, &envelope, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            die("consume", "the connection failed");
        {
            int64_t t = now_ns();
            int64_t s = sent_at(envelope.message.body.bytes,
                                envelope.message.body.len);
            size_t i = atomic_load(&k->got);

            if (i < k->want)
                k->lat_ns[i] = s > 0 ? t - s : 0;
            atomic_store(&k->last_ns, t);
            atomic_store(&k->got, i + 1);
        }
        amqp_destroy_envelope(&envelope);
    }
    amqp_bytes_free(qname);
    amqp_destroy_connection(c);
    return NULL;
}

static void start_consumer(struct consumer *k, pthread_t *t)
{
    if (pthread_create(t, NULL, consume, k) != 0)
        die("pthread_create", "consumer");
    while (!atomic_load(&k->ready))
        usleep(1000);
}

static void *send_loop(void *arg)
{
    struct sender_arg *sa = arg;
    char err[SH_ERRBUF_SIZE], text[32];

    for (size_t i = 0; i < sa->count; i++) {
        int n = snprintf(text, sizeof text, "t%lld", (long long)now_ns());
        sh_err_t rc = sh_chat_send(sa->hub, sa->user, sa->stream, text,
                                   (size_t)n, NULL, NULL, err, sizeof err);

        if (rc == SH_EBUSY) {
            i--;
            usleep(100);
            continue;
        }
        if (rc != SH_OK)
            die("send", err);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

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
    printf("{\"bench\":\"outbox_throughput\",\"metric\":\"%s\","
           "\"value\":%.3f,\"unit\":\"%s\"}\n", metric, value, unit);
    fflush(stdout);
}

static void set(sh_config_t *conf, const char *k, const char *v)
{
    char err[SH_ERRBUF_SIZE];

    if (sh_config_set(conf, k, v, err, sizeof err) != SH_OK)
        die(k, err);
}

/* Wait until @k got everything or 120 s passed; false on the timeout. */
static bool wait_all(struct consumer *k)
{
    int64_t until = now_ns() + 120 * (int64_t)1000000000;

    while (atomic_load(&k->got) < k->want && now_ns() < until)
        usleep(1000);
    return atomic_load(&k->got) >= k->want;
}

/* The floor: @n messages shaped like the sink's, @batch per confirm
 * round, straight to the broker. */
static void floor_publish(const char *uri, size_t n, size_t batch)
{
    amqp_connection_state_t c = amqp_open(uri);
    char body[512];
    uint64_t tag = 0;

    amqp_confirm_select(c, 1);
    check_rpc(c, "confirm.select");
    for (size_t i = 0; i < n;) {
        size_t k = n - i < batch ? n - i : batch, acked = 0;

        for (size_t j = 0; j < k; j++) {
            amqp_basic_properties_t p;
            char id[40];
            int len;

            snprintf(id, sizeof id, "00000000-0000-4000-8000-%012zx", i + j);
            len = snprintf(body, sizeof body,
                "{\"id\":\"%s\",\"type\":\"chat.message\",\"channel\":"
                "\"chat:11111111-1111-4111-8111-111111111111\",\"createdAt\":"
                "\"2026-12-03T16:00:00.000Z\",\"data\":{\"id\":\"%s\","
                "\"streamId\":\"11111111-1111-4111-8111-111111111111\","
                "\"author\":{\"id\":\"22222222-2222-4222-8222-222222222222\","
                "\"username\":\"bench_sender\"},\"text\":\"t%lld\","
                "\"deleted\":false,\"offset\":%zu,\"createdAt\":"
                "\"2026-12-03T16:00:00.000Z\"}}", id, id,
                (long long)now_ns(), i + j + 1);
            memset(&p, 0, sizeof p);
            p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                       AMQP_BASIC_DELIVERY_MODE_FLAG |
                       AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG;
            p.content_type = amqp_cstring_bytes("application/json");
            p.delivery_mode = 2;
            p.message_id = amqp_cstring_bytes(id);
            p.type = amqp_cstring_bytes("chat.message");
            if (amqp_basic_publish(c, 1, amqp_cstring_bytes(EXCHANGE),
                                   amqp_cstring_bytes("floor.message"), 1, 0,
                                   &p, (amqp_bytes_t){ (size_t)len, body })
                != AMQP_STATUS_OK)
                die("floor publish", "failed");
        }
        tag += k;
        while (acked < tag) {
            amqp_frame_t f;
            struct timeval tv = { 10, 0 };

            if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
                die("floor confirms", "timeout");
            if (f.frame_type == AMQP_FRAME_METHOD &&
                f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
                amqp_basic_ack_t *a = f.payload.method.decoded;

                acked = a->delivery_tag;
            }
        }
        amqp_maybe_release_buffers(c);
        i += k;
    }
    amqp_destroy_connection(c);
}

int main(int argc, char **argv)
{
    const char *uri = getenv("STREAMHUB_BENCH_AMQP");
    size_t n = 50000, nsenders = 8, batch = 256;
    char dir[256], path[512], store[600], num[32];
    char err[SH_ERRBUF_SIZE], bc[40], user[40], stream[40];
    const char *tmp = getenv("TMPDIR");
    struct consumer k;
    struct sender_arg *sa;
    pthread_t ct, *st;
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;
    sh_auth_t *auth = NULL;
    sh_stream_t *s = NULL;
    int64_t t0;
    bool ok = true;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            n = 5000;
        else if (strcmp(argv[i], "--amqp") == 0 && i + 1 < argc)
            uri = argv[++i];
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--senders") == 0 && i + 1 < argc)
            nsenders = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s --amqp URI [--quick] [--events N] "
                    "[--senders N] [--batch N]\n", argv[0]);
            return 2;
        }
    }
    if (uri == NULL || n == 0 || nsenders == 0 || nsenders > n ||
        batch == 0 || batch > 10000) {
        fprintf(stderr, "outbox_throughput: --amqp URI and positive sizes "
                "needed (bench/run_outbox.sh starts a broker)\n");
        return 2;
    }
    emit("events", (double)n, "count");
    emit("senders", (double)nsenders, "count");
    emit("batch", (double)batch, "count");
    emit("cores", (double)sysconf(_SC_NPROCESSORS_ONLN), "count");
    printf("{\"bench\":\"outbox_throughput\",\"metric\":\"buildtype\","
           "\"value\":\"%s\",\"unit\":\"\"}\n", SH_BENCH_BUILDTYPE);

    /* ---- StreamHub: store -> outbox -> relay -> broker -> consumer ---- */
    snprintf(dir, sizeof dir, "%s/shoutboxXXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", dir);
    snprintf(path, sizeof path, "%s/hub.db", dir);
    snprintf(store, sizeof store, "sqlite:%s", path);
    if (sh_config_new(&conf) != SH_OK)
        die("config", "out of memory");
    set(conf, "store", store);
    set(conf, "log-level", "warn");
    set(conf, "events-amqp", uri);
    snprintf(num, sizeof num, "%zu", batch);
    set(conf, "outbox.batch", num);
    set(conf, "chat.rate-limit", "100000");
    set(conf, "chat.rate-window-seconds", "1");
    set(conf, "chat.write-behind-queue", "1048576");
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        die("hub open", err);
    if (sh_auth_register(hub, "bench_bc", "bc@example.com",
                         "correct horse battery", &auth, err, sizeof err)
        != SH_OK)
        die("register", err);
    snprintf(bc, sizeof bc, "%s", sh_user_id(sh_auth_user(auth)));
    sh_auth_free(auth);
    if (sh_auth_register(hub, "bench_sender", "sender@example.com",
                         "correct horse battery", &auth, err, sizeof err)
        != SH_OK)
        die("register", err);
    snprintf(user, sizeof user, "%s", sh_user_id(sh_auth_user(auth)));
    sh_auth_free(auth);
    if (sh_stream_start(hub, bc, "bench", NULL, &s, err, sizeof err) != SH_OK)
        die("stream", err);
    snprintf(stream, sizeof stream, "%s", sh_stream_id(s));
    sh_stream_free(s);

    memset(&k, 0, sizeof k);
    k.uri = uri;
    k.key = "chat.message";
    k.want = n;
    k.lat_ns = calloc(n, sizeof *k.lat_ns);
    sa = calloc(nsenders, sizeof *sa);
    st = calloc(nsenders, sizeof *st);
    if (k.lat_ns == NULL || sa == NULL || st == NULL)
        die("calloc", "out of memory");
    start_consumer(&k, &ct);
    t0 = now_ns();
    for (size_t i = 0; i < nsenders; i++) {
        sa[i].hub = hub;
        sa[i].user = user;
        sa[i].stream = stream;
        sa[i].count = n / nsenders + (i < n % nsenders ? 1 : 0);
        if (pthread_create(&st[i], NULL, send_loop, &sa[i]) != 0)
            die("pthread_create", "sender");
    }
    for (size_t i = 0; i < nsenders; i++)
        pthread_join(st[i], NULL);
    emit("store_events_per_s",
         (double)n / ((double)(now_ns() - t0) / 1e9), "events/s");
    if (!wait_all(&k))
        ok = false;
    atomic_store(&k.stop, true);
    pthread_join(ct, NULL);
    emit("outbox_events_per_s",
         (double)atomic_load(&k.got) /
             ((double)(atomic_load(&k.last_ns) - t0) / 1e9), "events/s");
    emit("outbox_latency_p50", pct_us(k.lat_ns, atomic_load(&k.got), 50),
         "us");
    emit("outbox_latency_p99", pct_us(k.lat_ns, atomic_load(&k.got), 99),
         "us");
    sh_hub_close(hub);

    /* ---- the floor: the same messages straight to the broker -------- */
    memset(k.lat_ns, 0, n * sizeof *k.lat_ns);
    atomic_store(&k.got, 0);
    atomic_store(&k.ready, false);
    atomic_store(&k.stop, false);
    k.key = "floor.message";
    start_consumer(&k, &ct);
    t0 = now_ns();
    floor_publish(uri, n, batch);
    if (!wait_all(&k))
        ok = false;
    atomic_store(&k.stop, true);
    pthread_join(ct, NULL);
    emit("floor_events_per_s",
         (double)atomic_load(&k.got) /
             ((double)(atomic_load(&k.last_ns) - t0) / 1e9), "events/s");
    emit("floor_latency_p50", pct_us(k.lat_ns, atomic_load(&k.got), 50),
         "us");
    emit("floor_latency_p99", pct_us(k.lat_ns, atomic_load(&k.got), 99),
         "us");
    emit("all_arrived", ok ? 1 : 0, "bool");

    unlink(path);
    {
        char side[600];

        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
    }
    rmdir(dir);
    free(k.lat_ns);
    free(sa);
    free(st);
    return ok ? 0 : 1;
}
