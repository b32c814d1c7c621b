/* bench/ws_load.c: a WebSocket load generator for ws_fanout and ws_idle.
 *
 * Speaks raw RFC 6455 on its own libevent loops, one per thread, so that
 * it measures the server and not a client library.  The same program
 * drives StreamHub and its peers (npm's ws, nginx with Nchan): each is a
 * "target" that accepts WebSocket subscribers on a path and publishes what
 * is POSTed to an HTTP path as one text frame per subscriber.
 *
 * fanout mode: N subscribers; then (1) latency: B broadcasts spaced
 * --interval-ms apart, each carrying the publisher's CLOCK_MONOTONIC time
 * ("t":<ns>), every subscriber noting receive - t; (2) throughput: M
 * broadcasts back to back, deliveries per second from the first publish to
 * the last delivery.  idle mode: N connections (optionally authenticated),
 * then the target's RSS delta divided by N (--pid, or the sum over
 * --pids).
 *
 * Across processes (bench/run_cluster.sh: one process holds at most the
 * open-files limit of sockets, so 50,000 subscribers take several): sub
 * mode connects N subscribers spread round robin over --ports (the nodes
 * of a cluster), prints a "ready" line, then counts what arrives until all
 * B + M broadcasts reached every subscriber (or nothing came for 10 s) and
 * writes each latency-phase delivery's publish-to-receive time (uint32
 * microseconds, native order) to --out; pub mode only publishes: B spaced
 * broadcasts, a pause, then M back to back, and prints when that burst
 * began.  CLOCK_MONOTONIC is one clock for every process on the machine,
 * so publish and receive times compare across processes.
 *
 * Prints one JSON object per line: {"bench","target","metric","value",
 * "unit"}, with the load generator's own CPU time beside the figures, so
 * that it is never the bottleneck unnoticed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>

static struct {
    const char *host, *target, *ws_path, *pub_path, *protocol, *sub_msg,
        *api_key, *auth_msg, *mode, *ports, *out, *pids, *rates;
    int port, clients, threads, broadcasts, interval_ms, messages, pid;
    int payload, rate_ms;
} opt = {
    .host = "127.0.0.1", .target = "streamhub", .ws_path = "/ws",
    .pub_path = "/api/v1/publish", .protocol = "streamhub.v1",
    .sub_msg = "{\"id\":1,\"op\":\"subscribe\",\"channel\":\"app:bench\"}",
    .mode = "fanout", .port = 8080, .clients = 1000, .threads = 2,
    .broadcasts = 20, .interval_ms = 250, .messages = 100, .payload = 64,
    .rate_ms = 2000,
};

/* The rate steps (--rates): step k publishes seq [rate_seq[k],
 * rate_seq[k + 1]).  Each worker counts its deliveries per step. */
#define MAX_STEPS 16
static long rate_seq[MAX_STEPS + 1];
static int nsteps;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct worker;

struct client {
    struct worker *w;
    struct bufferevent *bev;
    bool upgraded, ready;
};

struct worker {
    pthread_t tid;
    struct event_base *base;
    struct client *clients;
    int n;
    /* lat[b * n + k]: k-th latency (us) of broadcast b in this worker */
    uint32_t *lat;
    int *nlat;                 /* per broadcast */
    uint64_t delivered;        /* throughput phase */
    int64_t last_rx_ns;
    int64_t first_rx_ns;       /* throughput phase, 0 before */
    uint64_t step_delivered[MAX_STEPS];
    int64_t step_last_rx_ns[MAX_STEPS];
};

static atomic_int ready_count, failed_count;
static atomic_int phase;       /* 0 setup, 1 latency, 2 throughput, 3 stop */
static atomic_uint_fast64_t total_delivered;

static void masked_text(struct evbuffer *out, const char *s, size_t n,
                        uint8_t opcode)
{
    uint8_t hdr[8];
    size_t h = 0;

    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        hdr[h++] = (uint8_t)(0x80 | n);
    } else {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    }
    memset(hdr + h, 0, 4);     /* masking key 0: payload unchanged */
    h += 4;
    evbuffer_add(out, hdr, h);
    evbuffer_add(out, s, n);
}

static void on_text(struct client *c, const char *p, size_t n)
{
    struct worker *w = c->w;
    const char *t, *sq;
    int64_t sent, rx = now_ns();
    long seq;

    if (!c->ready) {
        /* The first text after the subscription command is its reply. */
        c->ready = true;
        atomic_fetch_add(&ready_count, 1);
        return;
    }
    t = memmem(p, n, "\"t\":", 4);
    sq = memmem(p, n, "\"seq\":", 6);
    if (t == NULL || sq == NULL)
        return;
    sent = strtoll(t + 4, NULL, 10);
    seq = strtol(sq + 6, NULL, 10);
    if (seq < 0)
        return;
    if (seq < opt.broadcasts) {
        int k = w->nlat[seq]++;
        if (k < w->n)
            w->lat[(size_t)seq * (size_t)w->n + (size_t)k] =
                (uint32_t)((rx - sent) / 1000);
    } else if (nsteps > 0 && seq >= rate_seq[0]) {
        for (int k = 0; k < nsteps; k++) {
            if (seq < rate_seq[k + 1]) {
                w->step_delivered[k]++;
                w->step_last_rx_ns[k] = rx;
                break;
            }
        }
    } else {
        w->delivered++;
        if (w->first_rx_ns == 0)
            w->first_rx_ns = rx;
        w->last_rx_ns = rx;
    }
    atomic_fetch_add_explicit(&total_delivered, 1, memory_order_relaxed);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (!c->upgraded) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0)
            return;
        char line[16] = { 0 };
        evbuffer_copyout(in, line, 12);
        if (strncmp(line + 9, "101", 3) != 0) {
            atomic_fetch_add(&failed_count, 1);
            bufferevent_disable(bev, EV_READ);
            return;
        }
        evbuffer_drain(in, (size_t)end.pos + 4);
        c->upgraded = true;
        struct evbuffer *out = bufferevent_get_output(bev);
        if (opt.auth_msg != NULL)
            masked_text(out, opt.auth_msg, strlen(opt.auth_msg), 1);
        if (opt.sub_msg != NULL && opt.sub_msg[0] != '\0' &&
            opt.auth_msg == NULL) {
            masked_text(out, opt.sub_msg, strlen(opt.sub_msg), 1);
        } else if (opt.auth_msg == NULL) {
            c->ready = true;   /* nothing to wait for */
            atomic_fetch_add(&ready_count, 1);
        }
    }
    for (;;) {
        size_t len = evbuffer_get_length(in);
        uint8_t h[10];
        uint64_t plen;
        size_t hl;

        if (len < 2)
            return;
        evbuffer_copyout(in, h, len < 10 ? len : 10);
        plen = h[1] & 0x7f;
        hl = 2;
        if (plen == 126) {
            if (len < 4)
                return;
            plen = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (len < 10)
                return;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | h[2 + i];
            hl = 10;
        }
        if (len < hl + plen)
            return;
        uint8_t op = h[0] & 0x0f;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)(hl + plen));
        if (op == 1)
            on_text(c, p + hl, (size_t)plen);
        else if (op == 9)
            masked_text(bufferevent_get_output(bev), p + hl, (size_t)plen,
                        10);
        evbuffer_drain(in, hl + plen);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;

    if (what & BEV_EVENT_CONNECTED)
        return;
    if (!c->ready)
        atomic_fetch_add(&failed_count, 1);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int ports[64], nports;

static void connect_client(struct worker *w, struct client *c, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char req[512];
    int n;

    c->w = w;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    c->bev = bufferevent_socket_new(w->base, -1,
                                    BEV_OPT_CLOSE_ON_FREE |
                                        BEV_OPT_THREADSAFE);
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: "
                 "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "%s%s%s\r\n",
                 opt.ws_path, opt.host, port,
                 opt.protocol[0] != '\0' ? "Sec-WebSocket-Protocol: " : "",
                 opt.protocol, opt.protocol[0] != '\0' ? "\r\n" : "");
    bufferevent_write(c->bev, req, (size_t)n);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sa,
                                   sizeof sa) != 0)
        atomic_fetch_add(&failed_count, 1);
}

/* ---- the publisher: blocking HTTP/1.1 keep-alive ------------------ */

static int pub_fd = -1;

static int pub_connect(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    sa.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("publisher connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void publish(long seq)
{
    char body[1024], req[2048], resp[4096];
    char pad[512];
    int bl, rl;
    size_t got = 0;

    memset(pad, 'x', sizeof pad);
    pad[opt.payload < (int)sizeof pad ? opt.payload : (int)sizeof pad - 1] =
        '\0';
    /* StreamHub's publish API names the channel in the body. */
    if (strcmp(opt.pub_path, "/api/v1/publish") == 0)
        bl = snprintf(body, sizeof body,
                      "{\"channel\":\"app:bench\",\"data\":{\"seq\":%ld,"
                      "\"t\":%" PRId64 ",\"pad\":\"%s\"}}",
                      seq, now_ns(), pad);
    else
        bl = snprintf(body, sizeof body,
                      "{\"seq\":%ld,\"t\":%" PRId64 ",\"pad\":\"%s\"}", seq,
                      now_ns(), pad);
    rl = snprintf(req, sizeof req,
                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                  "application/json\r\nContent-Length: %d\r\n%s%s%s\r\n%s",
                  opt.pub_path, opt.host, bl,
                  opt.api_key != NULL ? "Authorization: Apikey " : "",
                  opt.api_key != NULL ? opt.api_key : "",
                  opt.api_key != NULL ? "\r\n" : "", body);
    if (write(pub_fd, req, (size_t)rl) != rl) {
        perror("publish write");
        exit(1);
    }
    /* Read one response: headers, then Content-Length bytes. */
    for (;;) {
        ssize_t r = read(pub_fd, resp + got, sizeof resp - 1 - got);
        if (r <= 0) {
            fprintf(stderr, "publish: connection closed\n");
            exit(1);
        }
        got += (size_t)r;
        resp[got] = '\0';
        char *end = strstr(resp, "\r\n\r\n");
        if (end == NULL)
            continue;
        char *cl = strcasestr(resp, "Content-Length:");
        size_t need = (size_t)(end + 4 - resp) +
                      (cl != NULL && cl < end ? strtoul(cl + 15, NULL, 10)
                                              : 0);
        if (got >= need) {
            if (strncmp(resp + 9, "2", 1) != 0) {
                fprintf(stderr, "publish: %.60s\n", resp);
                exit(1);
            }
            return;
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long rss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return kib;
}

/* CPU seconds (user + system, every thread) of the processes in --pids
 * (comma-separated: nginx's workers), or --pid; -1 if unknown. */
static double server_cpu(void)
{
    const char *p = opt.pids;
    char one[32];
    double sum = 0;
    int n = 0;

    if (p == NULL && opt.pid > 0) {
        snprintf(one, sizeof one, "%d", opt.pid);
        p = one;
    }
    while (p != NULL && *p != '\0') {
        char path[64], buf[1024];
        int pid = atoi(p);
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        f = fopen(path, "r");
        if (f != NULL) {
            size_t r = fread(buf, 1, sizeof buf - 1, f);
            unsigned long ut = 0, st = 0;
            char *q;

            buf[r] = '\0';
            fclose(f);
            /* Fields after the command's ")": state is 3, utime 14. */
            q = strrchr(buf, ')');
            if (q != NULL &&
                sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                              "%*u %lu %lu", &ut, &st) == 2) {
                sum += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
                n++;
            }
        }
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return n > 0 ? sum : -1;
}

/* RSS (KiB) summed over --pids (nginx's workers), or --pid's. */
static long rss_total(void)
{
    const char *p = opt.pids;
    long sum = 0;
    int n = 0;

    if (p == NULL)
        return opt.pid > 0 ? rss_kib(opt.pid) : -1;
    while (*p != '\0') {
        long k = rss_kib(atoi(p));
        if (k > 0) {
            sum += k;
            n++;
        }
        p = strchr(p, ',');
        if (p == NULL)
            break;
        p++;
    }
    return n > 0 ? sum : -1;
}

static void emit(const char *bench, const char *metric, double v,
                 const char *unit)
{
    printf("{\"bench\":\"%s\",\"target\":\"%s\",\"metric\":\"%s\","
           "\"value\":%.6g,\"unit\":\"%s\"}\n",
           bench, opt.target, metric, v, unit);
    fflush(stdout);
}

/* emit() for a clock reading: %.6g would round nanoseconds away. */
static void emit_ns(const char *bench, const char *metric, int64_t v)
{
    printf("{\"bench\":\"%s\",\"target\":\"%s\",\"metric\":\"%s\","
           "\"value\":%" PRId64 ",\"unit\":\"ns\"}\n",
           bench, opt.target, metric, v);
    fflush(stdout);
}

static void wait_ready(void)
{
    int64_t deadline = now_ns() + 120 * 1000000000LL;

    while (atomic_load(&ready_count) + atomic_load(&failed_count) <
               opt.clients &&
           now_ns() < deadline)
        usleep(10000);
    if (atomic_load(&failed_count) > 0 ||
        atomic_load(&ready_count) < opt.clients) {
        fprintf(stderr, "ws_load: %d ready, %d failed of %d\n",
                atomic_load(&ready_count), atomic_load(&failed_count),
                opt.clients);
        exit(1);
    }
}

/* sub mode, after every subscriber is ready (see the top). */
static int sub_main(struct worker *ws)
{
    uint64_t want = (uint64_t)opt.clients *
                    (uint64_t)(opt.broadcasts + opt.messages);
    uint64_t seen = 0, lat_n = 0, got = 0;
    int64_t idle_since = now_ns(), first = 0, last = 0;
    FILE *f = NULL;

    emit("ws_cluster", "ready", opt.clients, "count");
    /* Until everything arrived, or 10 s without a delivery once one came
     * (600 s in all at most: the publisher may start late). */
    for (int64_t end = now_ns() + 600 * 1000000000LL; now_ns() < end;) {
        uint64_t d = atomic_load(&total_delivered);
        if (d >= want)
            break;
        if (d != seen) {
            seen = d;
            idle_since = now_ns();
        } else if (d > 0 && now_ns() - idle_since > 10 * 1000000000LL) {
            break;
        }
        usleep(10000);
    }
    if (opt.out != NULL && (f = fopen(opt.out, "wb")) == NULL) {
        perror(opt.out);
        return 1;
    }
    for (int i = 0; i < opt.threads; i++) {
        struct worker *w = &ws[i];
        for (int b = 0; b < opt.broadcasts; b++) {
            int k = w->nlat[b] < w->n ? w->nlat[b] : w->n;
            if (f != NULL)
                fwrite(&w->lat[(size_t)b * (size_t)w->n], sizeof *w->lat,
                       (size_t)k, f);
            lat_n += (uint64_t)k;
        }
        got += w->delivered;
        if (w->first_rx_ns != 0 && (first == 0 || w->first_rx_ns < first))
            first = w->first_rx_ns;
        if (w->last_rx_ns > last)
            last = w->last_rx_ns;
    }
    if (f != NULL)
        fclose(f);
    emit("ws_cluster", "latency_deliveries", (double)lat_n, "count");
    emit("ws_cluster", "latency_deliveries_expected",
         (double)opt.clients * opt.broadcasts, "count");
    emit("ws_cluster", "deliveries", (double)got, "count");
    emit("ws_cluster", "deliveries_expected",
         (double)opt.clients * opt.messages, "count");
    emit_ns("ws_cluster", "first_rx_ns", first);
    emit_ns("ws_cluster", "last_rx_ns", last);
    emit("ws_cluster", "loadgen_cpu", cpu_seconds(), "s");
    fflush(stdout);
    _exit(got == (uint64_t)opt.clients * (uint64_t)opt.messages &&
                  lat_n == (uint64_t)opt.clients * (uint64_t)opt.broadcasts
              ? 0 : 3);
}

/* pub mode (see the top). */
static int pub_main(void)
{
    int64_t t0, t1;

    pub_fd = pub_connect();
    for (int b = 0; b < opt.broadcasts; b++) {
        publish(b);
        usleep((useconds_t)opt.interval_ms * 1000);
    }
    /* The spaced broadcasts' deliveries end before the burst begins. */
    usleep(2000000);
    t0 = now_ns();
    for (int m = 0; m < opt.messages; m++)
        publish(opt.broadcasts + m);
    t1 = now_ns();
    emit_ns("ws_cluster", "burst_start_ns", t0);
    emit("ws_cluster", "burst_publish_seconds", (double)(t1 - t0) / 1e9,
         "s");
    emit("ws_cluster", "publisher_cpu", cpu_seconds(), "s");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "host", 1, NULL, 'h' },      { "port", 1, NULL, 'p' },
        { "target", 1, NULL, 'T' },    { "ws-path", 1, NULL, 'w' },
        { "pub-path", 1, NULL, 'P' },  { "protocol", 1, NULL, 'r' },
        { "sub-msg", 1, NULL, 's' },   { "api-key", 1, NULL, 'k' },
        { "auth-msg", 1, NULL, 'a' },  { "clients", 1, NULL, 'c' },
        { "threads", 1, NULL, 't' },   { "broadcasts", 1, NULL, 'b' },
        { "interval-ms", 1, NULL, 'i' }, { "messages", 1, NULL, 'm' },
        { "payload", 1, NULL, 'l' },   { "mode", 1, NULL, 'M' },
        { "pid", 1, NULL, 'd' },       { "ports", 1, NULL, 'o' },
        { "out", 1, NULL, 'O' },       { "pids", 1, NULL, 'D' },
        { "rates", 1, NULL, 'R' },     { "rate-ms", 1, NULL, 'E' },
        { NULL, 0, NULL, 0 },
    };
    struct worker *ws;
    int ch;

    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'T': opt.target = optarg; break;
        case 'w': opt.ws_path = optarg; break;
        case 'P': opt.pub_path = optarg; break;
        case 'r': opt.protocol = optarg; break;
        case 's': opt.sub_msg = optarg; break;
        case 'k': opt.api_key = optarg; break;
        case 'a': opt.auth_msg = optarg; break;
        case 'c': opt.clients = atoi(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'b': opt.broadcasts = atoi(optarg); break;
        case 'i': opt.interval_ms = atoi(optarg); break;
        case 'm': opt.messages = atoi(optarg); break;
        case 'l': opt.payload = atoi(optarg); break;
        case 'M': opt.mode = optarg; break;
        case 'd': opt.pid = atoi(optarg); break;
        case 'o': opt.ports = optarg; break;
        case 'O': opt.out = optarg; break;
        case 'D': opt.pids = optarg; break;
        case 'R': opt.rates = optarg; break;
        case 'E': opt.rate_ms = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: ws_load --port P [--target NAME] "
                            "[--clients N] [--threads T] [--mode "
                            "fanout|idle|sub|pub] [--ports P1,P2,...] "
                            "[--out FILE] [--pids P1,P2] [--rates R1,R2] "
                            "[--rate-ms MS] ...\n");
            return 2;
        }
    }
    if (opt.clients < 1 || opt.threads < 1 || opt.broadcasts < 0)
        return 2;
    nports = 0;
    if (opt.ports != NULL) {
        for (const char *p = opt.ports; *p != '\0' && nports < 64;) {
            ports[nports++] = atoi(p);
            p = strchr(p, ',');
            if (p == NULL)
                break;
            p++;
        }
    }
    if (nports == 0)
        ports[nports++] = opt.port;
    opt.port = ports[0];       /* the publisher's */
    if (strcmp(opt.mode, "pub") == 0)
        return pub_main();
    /* The rate steps' sequence numbers, fixed before any thread reads
     * them: after the latency and throughput phases'. */
    rate_seq[0] = (long)opt.broadcasts + opt.messages;
    for (const char *rp = opt.rates; rp != NULL && *rp != '\0' &&
                                     nsteps < MAX_STEPS;) {
        long count = (long)(atof(rp) * opt.rate_ms / 1000.0);
        rate_seq[nsteps + 1] = rate_seq[nsteps] + (count < 1 ? 1 : count);
        nsteps++;
        rp = strchr(rp, ',');
        if (rp != NULL)
            rp++;
    }
    evthread_use_pthreads();
    long rss0 = rss_total();
    ws = calloc((size_t)opt.threads, sizeof *ws);
    for (int i = 0; i < opt.threads; i++) {
        struct worker *w = &ws[i];
        w->n = opt.clients / opt.threads + (i < opt.clients % opt.threads);
        w->base = event_base_new();
        w->clients = calloc((size_t)w->n, sizeof *w->clients);
        w->lat = calloc((size_t)w->n * (size_t)(opt.broadcasts + 1),
                        sizeof *w->lat);
        w->nlat = calloc((size_t)opt.broadcasts + 1, sizeof *w->nlat);
        pthread_create(&w->tid, NULL, worker_main, w);
    }
    /* Connect in batches so the listen backlog never overflows. */
    for (int k = 0; k < opt.clients; k++) {
        struct worker *w = &ws[k % opt.threads];
        connect_client(w, &w->clients[k / opt.threads], ports[k % nports]);
        if (k % 500 == 499)
            while (atomic_load(&ready_count) + atomic_load(&failed_count) <
                   k - 1000)
                usleep(1000);
    }
    wait_ready();
    if (strcmp(opt.mode, "idle") == 0) {
        sleep(1);
        long rss1 = rss_total();
        emit("ws_idle", "connections", opt.clients, "count");
        if (rss0 > 0 && rss1 > 0)
            emit("ws_idle", "rss_per_connection",
                 (double)(rss1 - rss0) * 1024.0 / opt.clients, "bytes");
        emit("ws_idle", "loadgen_cpu", cpu_seconds(), "s");
        fflush(stdout);
        _exit(0);
    }
    if (strcmp(opt.mode, "sub") == 0)
        return sub_main(ws);
    pub_fd = pub_connect();
    usleep(200000);
    double cpu0 = cpu_seconds(), scpu0 = server_cpu();
    /* (1) Latency: spaced broadcasts. */
    atomic_store(&phase, 1);
    for (int b = 0; b < opt.broadcasts; b++) {
        publish(b);
        usleep((useconds_t)opt.interval_ms * 1000);
    }
    uint64_t want = (uint64_t)opt.clients * (uint64_t)opt.broadcasts;
    for (int i = 0; i < 500 && atomic_load(&total_delivered) < want; i++)
        usleep(10000);
    size_t per = (size_t)opt.clients;
    uint32_t *all = calloc(per, sizeof *all);
    double *p99s = calloc((size_t)opt.broadcasts + 1, sizeof *p99s);
    double *p50s = calloc((size_t)opt.broadcasts + 1, sizeof *p50s);
    int nb = 0;
    for (int b = 0; b < opt.broadcasts; b++) {
        size_t n = 0;
        for (int i = 0; i < opt.threads; i++)
            for (int k = 0; k < ws[i].nlat[b] && k < ws[i].n; k++)
                all[n++] = ws[i].lat[(size_t)b * (size_t)ws[i].n +
                                     (size_t)k];
        if (n < per) {
            fprintf(stderr, "ws_load: broadcast %d reached %zu of %zu\n", b,
                    n, per);
            continue;
        }
        qsort(all, n, sizeof *all, cmp_u32);
        p50s[nb] = all[n / 2] / 1000.0;
        p99s[nb] = all[(n * 99) / 100] / 1000.0;
        nb++;
    }
    /* Median over broadcasts of each broadcast's p50 and p99. */
    for (int i = 0; i < nb; i++)
        for (int j = i + 1; j < nb; j++) {
            if (p99s[j] < p99s[i]) {
                double t = p99s[i]; p99s[i] = p99s[j]; p99s[j] = t;
            }
            if (p50s[j] < p50s[i]) {
                double t = p50s[i]; p50s[i] = p50s[j]; p50s[j] = t;
            }
        }
    double scpu1 = server_cpu();
    emit("ws_fanout", "subscribers", opt.clients, "count");
    if (scpu0 >= 0 && nb > 0)
        emit("ws_fanout", "server_cpu_per_delivery_spaced",
             (scpu1 - scpu0) * 1e6 / ((double)opt.clients * opt.broadcasts),
             "us");
    if (nb > 0) {
        emit("ws_fanout", "broadcast_latency_p50", p50s[nb / 2], "ms");
        emit("ws_fanout", "broadcast_latency_p99", p99s[nb / 2], "ms");
    }
    /* (2) Throughput: back-to-back broadcasts. */
    atomic_store(&phase, 2);
    uint64_t base = atomic_load(&total_delivered);
    want = base + (uint64_t)opt.clients * (uint64_t)opt.messages;
    int64_t t0 = now_ns();
    for (int m = 0; m < opt.messages; m++)
        publish(opt.broadcasts + m);
    for (int i = 0; i < 6000 && atomic_load(&total_delivered) < want; i++)
        usleep(5000);
    int64_t last = t0;
    uint64_t got = 0;
    for (int i = 0; i < opt.threads; i++) {
        got += ws[i].delivered;
        if (ws[i].last_rx_ns > last)
            last = ws[i].last_rx_ns;
    }
    double secs = (double)(last - t0) / 1e9, scpu2 = server_cpu();
    emit("ws_fanout", "deliveries", (double)got, "count");
    if (scpu0 >= 0 && got > 0)
        emit("ws_fanout", "server_cpu_per_delivery",
             (scpu2 - scpu1) * 1e6 / (double)got, "us");
    emit("ws_fanout", "deliveries_expected",
         (double)opt.clients * opt.messages, "count");
    if (secs > 0)
        emit("ws_fanout", "deliveries_per_second", (double)got / secs,
             "1/s");
    emit("ws_fanout", "loadgen_cpu", cpu_seconds() - cpu0, "s");
    emit("ws_fanout", "loadgen_threads", opt.threads, "count");
    fflush(stdout);
    bool ok = got == (uint64_t)opt.clients * (uint64_t)opt.messages;
    /* (3) Rising publish rates (--rates, publishes per second): each
     * step paced for --rate-ms; deliveries per second of the step's
     * events, from its first publish to its last delivery, until the
     * server saturates (what it delivers stops rising). */
    if (nsteps > 0) {
        const char *rp = opt.rates;
        for (int k = 0; k < nsteps; k++) {
            double rate = atof(rp);
            long seq = rate_seq[k], count = rate_seq[k + 1] - rate_seq[k];
            int64_t s0, s1, lastk = 0;
            uint64_t gotk = 0;
            double c0 = server_cpu(), c1;

            s0 = now_ns();
            for (long i = 0; i < count; i++) {
                int64_t due = s0 + (int64_t)((double)i * 1e9 / rate);
                int64_t d = due - now_ns();
                if (d > 0)
                    usleep((useconds_t)(d / 1000));
                publish(seq + i);
            }
            s1 = now_ns();
            uint64_t wantk = (uint64_t)count * (uint64_t)opt.clients;
            for (int i = 0; i < 3000; i++) {
                gotk = 0;
                for (int t = 0; t < opt.threads; t++)
                    gotk += ws[t].step_delivered[k];
                if (gotk >= wantk)
                    break;
                usleep(5000);
            }
            c1 = server_cpu();
            for (int t = 0; t < opt.threads; t++)
                if (ws[t].step_last_rx_ns[k] > lastk)
                    lastk = ws[t].step_last_rx_ns[k];
            char m[64];
            snprintf(m, sizeof m, "rate_%g_offered", rate * opt.clients);
            emit("ws_rates", m, (double)count * opt.clients /
                 ((double)(s1 - s0) / 1e9 > 0 ? (double)(s1 - s0) / 1e9
                                                : 1), "1/s");
            snprintf(m, sizeof m, "rate_%g_delivered", rate * opt.clients);
            if (lastk > s0)
                emit("ws_rates", m, (double)gotk /
                     ((double)(lastk - s0) / 1e9), "1/s");
            snprintf(m, sizeof m, "rate_%g_server_cpu_per_delivery",
                     rate * opt.clients);
            if (c0 >= 0 && gotk > 0)
                emit("ws_rates", m, (c1 - c0) * 1e6 / (double)gotk, "us");
            if (gotk != wantk)
                ok = false;
            rp = strchr(rp, ',');
            if (rp == NULL)
                break;
            rp++;
        }
    }
    fflush(stdout);
    _exit(ok ? 0 : 3);
}
