/* libstreamhub/gateway/loops.c: the gateway's top floor: the listener,
 * the loops, start, graceful shutdown and free (gw.h for the floors).
 *
 * The connections themselves are the bottom floor's (server.c); this file
 * hands it accepted sockets and the router's table of upward calls
 * (routes.h), and owns what spans every connection of a loop: its
 * flush event, its fan-out, the completions of its worker jobs.
 *
 * `loops` = N: loop 0 is the event_base the gateway was started on, loops
 * 1..N-1 run on bases and threads of their own.  One listener, on loop 0,
 * hands each new socket to the next loop in turn (posted to that loop's
 * dispatcher), where it lives until closed.  Handing out in turn spreads
 * connections evenly; N SO_REUSEPORT listeners spread them by a hash of
 * their addresses, unevenly when they are few (bench/accept_spread: with
 * 4 loops and 100 connections the busiest loop takes 1.2x its share and
 * the idlest 0.8x, where in turn each takes exactly its share).
 *
 * Shutdown: loop 0 closes the listener and asks every loop to drain (on
 * its own thread); each loop reports to loop 0 once its last connection
 * is gone, and the done callback runs on loop 0 when all have, or at the
 * timeout (then every loop cuts what it still has).  Free stops the
 * loops' threads first, so that what follows runs on one thread.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "core/cidr_int.h"
#include "routes.h"

/* A socket on its way from the acceptor to its loop. */
struct handoff {
    struct sh__loop *loop;
    evutil_socket_t fd;
    struct sockaddr_storage sa;
};

/* On the socket's loop. */
static void handoff_run(void *arg, bool canceled)
{
    struct handoff *h = arg;

    if (canceled || h->loop->gw->shutting_down)
        evutil_closesocket(h->fd);
    else
        sh__conn_accept(h->loop, h->fd, (struct sockaddr *)&h->sa);
    free(h);
}

/* On loop 0: give the new socket to the next loop in turn. */
static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct sh_gateway *gw = arg;
    struct sh__loop *l;
    struct handoff *h;

    (void)lev;
    if (gw->shutting_down) {
        evutil_closesocket(fd);
        return;
    }
    l = &gw->loops[gw->next_loop++ % gw->nloops];
    if (l->index == 0) {
        sh__conn_accept(l, fd, sa);
        return;
    }
    h = calloc(1, sizeof *h);
    if (h == NULL || salen < 0 || (size_t)salen > sizeof h->sa) {
        free(h);
        evutil_closesocket(fd);
        return;
    }
    h->loop = l;
    h->fd = fd;
    memcpy(&h->sa, sa, (size_t)salen);
    if (sh__dispatch_post(l->dispatch, handoff_run, h) != SH_OK) {
        free(h);
        evutil_closesocket(fd);
    }
}

/* ---- start and stop ---------------------------------------------- */

static SSL_CTX *tls_context(const char *cert, const char *key, char *errbuf,
                            size_t errbuf_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char e[128];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        sh__errbuf(errbuf, errbuf_len, "tls-cert/tls-key: %s", e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* "HOST:PORT" or "[IPv6]:PORT" (port 0: any free port) to an address;
 * HOST may be a name (getaddrinfo, numeric service). */
static sh_err_t resolve_listen(const char *spec,
                               struct sockaddr_storage *ss, int *sslen,
                               char *errbuf, size_t errbuf_len)
{
    char host[256];
    const char *colon = strrchr(spec, ':'), *h = spec;
    size_t hl;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (colon == NULL || colon[1] == '\0')
        goto bad;
    hl = (size_t)(colon - spec);
    if (hl > 0 && spec[0] == '[' && spec[hl - 1] == ']') {
        h = spec + 1;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof host)
        goto bad;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || res == NULL) {
        sh__errbuf(errbuf, errbuf_len, "listen: cannot resolve '%s': %s",
                   spec, gai_strerror(rc));
        return SH_EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return SH_OK;
bad:
    sh__errbuf(errbuf, errbuf_len, "listen: '%s' is not HOST:PORT", spec);
    return SH_EINVAL;
}

/* Close every connection of @l at once.  On @l's thread. */
static void loop_cut(struct sh__loop *l)
{
    while (l->conns != NULL) {
        struct sh__conn *c = l->conns;
        if (c->state == SH__CONN_CLOSED) {
            /* Closed but referenced by work in flight: unlink it now;
             * conn_destroy() tolerates being unlinked already. */
            l->conns = c->next;
            if (l->conns != NULL)
                l->conns->prev = NULL;
            c->next = c->prev = NULL;
            continue;
        }
        sh__conn_close(c);
    }
}

static void cut_run(void *arg, bool canceled)
{
    if (!canceled)
        loop_cut(arg);
}

/* On loop 0: every loop drained, or the time is up. */
static void shutdown_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh_gateway *gw = arg;
    sh_gateway_done_cb done = gw->done_cb;

    (void)fd;
    (void)what;
    if (done == NULL)
        return;
    /* Cut whatever is still open (timeout), on every loop, then report;
     * the other loops cut theirs on their own threads, or sh_gateway_free
     * does after stopping them. */
    loop_cut(&gw->loops[0]);
    for (size_t i = 1; i < gw->nloops; i++)
        (void)sh__dispatch_post(gw->loops[i].dispatch, cut_run,
                                &gw->loops[i]);
    gw->done_cb = NULL;
    done(gw->done_arg);
}

/* On loop 0: one more loop has no connection left. */
static void drained_run(void *arg, bool canceled)
{
    struct sh_gateway *gw = arg;

    if (canceled || gw->done_cb == NULL)
        return;
    if (++gw->ndrained == gw->nloops)
        event_active(gw->shutdown_timer, EV_TIMEOUT, 0);
}

/* On @l's loop: its last connection closed while shutting down. */
static void drained_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__loop *l = arg;

    (void)fd;
    (void)what;
    if (l->drained_sent || l->nconns > 0)
        return;
    l->drained_sent = true;
    if (l->index == 0)
        drained_run(l->gw, false);
    else
        (void)sh__dispatch_post(l->gw->loops[0].dispatch, drained_run,
                                l->gw);
}

/* Start closing @l's connections gracefully.  On @l's thread. */
static void loop_drain(struct sh__loop *l)
{
    for (struct sh__conn *c = l->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == SH__CONN_WS) {
            sh__ws_close(c, SH__WS_CLOSE_GOING_AWAY, "server shutting down");
        } else if (c->state == SH__CONN_HTTP && c->head == NULL) {
            sh__conn_close(c);      /* idle keep-alive: nothing in flight */
        }
        /* Busy HTTP connections close after their responses
         * (sh__respond adds Connection: close while shutting down). */
    }
    if (l->nconns == 0)
        event_active(l->drained, EV_TIMEOUT, 0);
}

static void drain_run(void *arg, bool canceled)
{
    if (!canceled)
        loop_drain(arg);
}

static void stop_run(void *arg, bool canceled)
{
    struct sh__loop *l = arg;

    (void)canceled;
    event_base_loopbreak(l->base);
}

static void *loop_main(void *arg)
{
    struct sh__loop *l = arg;

    event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Make @l's own parts: its base (loops 1..; loop 0 is given @base), its
 * dispatcher, its flush event, its fan-out and the completions of its
 * jobs (a handle on @workers, the pool).  Undone by loop_fini(), also
 * after a failure half-way. */
static sh_err_t loop_init(struct sh_gateway *gw, struct sh__loop *l,
                          unsigned index, struct event_base *base,
                          struct sh__workers *workers)
{
    sh_err_t rc;

    l->gw = gw;
    l->index = index;
    if (index > 0) {
        base = event_base_new();
        if (base == NULL)
            return SH_ENOMEM;
    }
    l->base = base;
    if (index == 0)
        l->workers = workers;
    else if ((rc = sh__workers_attach(workers, base, &l->workers)) != SH_OK)
        return rc;
    rc = sh__dispatch_new(&l->dispatch);
    if (rc == SH_OK)
        rc = sh__dispatch_attach(l->dispatch, base);
    if (rc != SH_OK)
        return rc;
    {
        char label[16];
        snprintf(label, sizeof label, "%u", index);
        l->s_conns = sh__metric_series(gw->m_loop_conns, label);
    }
    l->flush_ev = event_new(base, -1, 0, sh__ws_flush_cb, l);
    l->drained = event_new(base, -1, 0, drained_cb, l);
    if (l->flush_ev == NULL || l->drained == NULL)
        return SH_ENOMEM;
    return sh__fanout_new(l, &l->fanout);
}

/* Free what loop_init() made; its thread is stopped, its connections are
 * closed and its workers' handle is freed (the completions have run). */
static void loop_fini(struct sh__loop *l)
{
    sh__fanout_free(l->fanout);
    l->fanout = NULL;
    if (l->flush_ev != NULL) {
        /* Connections still queued for a flush hold references: the
         * callback drops them (they are closed by now). */
        if (l->dirty != NULL)
            sh__ws_flush_cb(-1, 0, l);
        event_free(l->flush_ev);
        l->flush_ev = NULL;
    }
    if (l->drained != NULL)
        event_free(l->drained);
    l->drained = NULL;
    /* Runs what is still queued for the loop, canceled: the final
     * callbacks of the fan-out's bus subscriptions, sockets handed over
     * and not taken (closed). */
    sh__dispatch_free(l->dispatch);
    l->dispatch = NULL;
    if (l->index > 0 && l->base != NULL)
        event_base_free(l->base);
    l->base = NULL;
}

/* The number of loops: `loops`, or 0 for one per online core. */
static size_t loops_wanted(const sh_config_t *conf)
{
    int64_t n = sh__config_int(conf, "loops");
    long cores;

    if (n > 0)
        return (size_t)n;
    cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (size_t)cores : 1;
}

static sh_err_t read_config(struct sh_gateway *gw, char *errbuf,
                            size_t errbuf_len)
{
    const sh_config_t *conf = gw->hub->conf;

    gw->max_header_bytes =
        (size_t)sh__config_int(conf, "http.max-header-bytes");
    gw->max_headers = (size_t)sh__config_int(conf, "http.max-headers");
    gw->max_body_bytes = (size_t)sh__config_int(conf, "http.max-body-bytes");
    gw->header_timeout_ms = (int)sh__config_int(conf, "http.header-timeout-ms");
    gw->idle_timeout_ms = (int)sh__config_int(conf, "http.idle-timeout-ms");
    gw->ws_max_message = (size_t)sh__config_int(conf, "ws.max-message-bytes");
    gw->ws_send_buffer = (size_t)sh__config_int(conf, "ws.send-buffer-bytes");
    gw->ws_ping_ms = (int)sh__config_int(conf, "ws.ping-interval-ms");
    gw->ws_pong_timeout_ms = (int)sh__config_int(conf, "ws.pong-timeout-ms");
    gw->ws_auth_timeout_ms = (int)sh__config_int(conf, "ws.auth-timeout-ms");
    gw->ws_max_per_user =
        (size_t)sh__config_int(conf, "ws.max-connections-per-user");
    gw->max_in_flight_conn = (size_t)sh__config_int(
        conf, "workers.max-in-flight-per-connection");
    gw->allow_anonymous = sh__config_bool(conf, "allow-anonymous");
    {
        const char *as = sh__config_str(conf, "app-subscribe");
        gw->app_subscribe = strcmp(as, "apikey") == 0 ? SH__APP_APIKEY
                            : strcmp(as, "authenticated") == 0
                                ? SH__APP_AUTHENTICATED
                                : SH__APP_ANYONE;
    }
    gw->cors_origins = strdup(sh__config_str(conf, "cors-origins"));
    gw->api_key = strdup(sh__config_str(conf, "api-key"));
    if (gw->cors_origins == NULL || gw->api_key == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    double per_ip = (double)sh__config_int(conf, "http.rate-limit-per-ip");
    gw->ip_limiter = sh__limiter_new(per_ip, per_ip, 100000);
    if (gw->ip_limiter == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    /* Checked by sh_config_set() already; parsed once here. */
    {
        char why[128];
        sh_err_t rc = sh__cidr_list_parse(
            sh__config_str(conf, "trusted-proxies"), &gw->trusted,
            &gw->ntrusted, why, sizeof why);
        if (rc != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "trusted-proxies: %s", why);
            return rc;
        }
    }
    return SH_OK;
}

static void add_metrics(struct sh_gateway *gw)
{
    struct sh__metrics *m = gw->hub->metrics;

    gw->metrics = m;
    gw->m_requests = sh__metrics_add(m, "streamhub_http_requests_total",
                                     SH__METRIC_COUNTER,
                                     "HTTP requests by route and status.",
                                     "route,status", NULL, 0);
    gw->m_latency = sh__metrics_add(m, "streamhub_http_request_duration_"
                                       "seconds", SH__METRIC_HISTOGRAM,
                                    "HTTP request latency by route.",
                                    "route", NULL, 0);
    gw->s_conns = sh__metric_series(
        sh__metrics_add(m, "streamhub_connections", SH__METRIC_GAUGE,
                        "Open TCP connections.", "", NULL, 0), "");
    gw->m_loop_conns = sh__metrics_add(m, "streamhub_loop_connections",
                                       SH__METRIC_GAUGE,
                                       "Open TCP connections by event loop "
                                       "(the gateway's `loops`).",
                                       "loop", NULL, 0);
    gw->s_ws_conns = sh__metric_series(
        sh__metrics_add(m, "streamhub_websocket_connections",
                        SH__METRIC_GAUGE, "Open WebSocket connections.", "",
                        NULL, 0), "");
    gw->s_msgs_in = sh__metric_series(
        sh__metrics_add(m, "streamhub_websocket_messages_received_total",
                        SH__METRIC_COUNTER,
                        "WebSocket messages received.", "", NULL, 0), "");
    gw->s_msgs_out = sh__metric_series(
        sh__metrics_add(m, "streamhub_websocket_messages_sent_total",
                        SH__METRIC_COUNTER, "WebSocket messages sent.", "",
                        NULL, 0), "");
    gw->s_fanout = sh__metric_series(
        sh__metrics_add(m, "streamhub_fanout_deliveries_total",
                        SH__METRIC_COUNTER,
                        "Events delivered to WebSocket subscribers.", "",
                        NULL, 0), "");
    gw->s_slow_dropped = sh__metric_series(
        sh__metrics_add(m, "streamhub_slow_clients_dropped_total",
                        SH__METRIC_COUNTER,
                        "Connections closed with 4408 (too slow).", "", NULL,
                        0), "");
    gw->s_presence = sh__metric_series(
        sh__metrics_add(m, "streamhub_presence_streams", SH__METRIC_GAUGE,
                        "Streams whose viewers this node counts.", "",
                        NULL, 0), "");
    gw->s_rate_limited = sh__metric_series(
        sh__metrics_add(m, "streamhub_rate_limited_total",
                        SH__METRIC_COUNTER,
                        "Requests and messages refused by a rate limit.", "",
                        NULL, 0), "");
}

SH_API sh_err_t sh_gateway_start(sh_hub_t *hub, struct event_base *base,
                                 sh_gateway_t **out, char *errbuf,
                                 size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh_gateway *gw;
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    socklen_t blen = sizeof ss;
    const char *listen_at, *cert, *key;
    unsigned lflags;
    unsigned char rnd[4];
    char host[64];
    struct sh__workers *workers = NULL;
    size_t nloops;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if (hub == NULL || base == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "hub, base and out must be given");
        return SH_EINVAL;
    }
    if (!sh__dispatch_attached(hub->dispatch)) {
        sh__errbuf(errbuf, errbuf_len, "attach the hub to the base first "
                   "(sh_hub_attach)");
        return SH_EINVAL;
    }
    gw = calloc(1, sizeof *gw);
    if (gw == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    gw->hub = hub;
    gw->ops = &sh__gateway_ops;
    pthread_mutex_init(&gw->lock, NULL);
    randombytes_buf(rnd, sizeof rnd);
    snprintf(gw->id_prefix, sizeof gw->id_prefix, "%02x%02x%02x%02x", rnd[0],
             rnd[1], rnd[2], rnd[3]);
    add_metrics(gw);
    rc = read_config(gw, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto fail;
    nloops = loops_wanted(hub->conf);
    gw->loops = calloc(nloops, sizeof *gw->loops);
    if (gw->loops == NULL) {
        rc = SH_ENOMEM;
        goto fail;
    }
    gw->nloops = nloops;
    rc = sh__presence_new(gw, &gw->presence);
    if (rc == SH_OK)
        rc = sh__workers_new(
            (size_t)sh__config_int(hub->conf, "workers"),
            (size_t)sh__config_int(hub->conf, "workers.max-in-flight"), base,
            &workers);
    for (size_t i = 0; rc == SH_OK && i < nloops; i++)
        rc = loop_init(gw, &gw->loops[i], (unsigned)i, base, workers);
    if (rc != SH_OK) {
        if (gw->loops[0].workers == NULL)
            sh__workers_free(workers);
        sh__errbuf(errbuf, errbuf_len, "cannot start the loops: %s",
                   sh_strerror(rc));
        goto fail;
    }
    gw->shutdown_timer = evtimer_new(base, shutdown_timer_cb, gw);
    if (gw->shutdown_timer == NULL) {
        rc = SH_ENOMEM;
        goto fail;
    }
    cert = sh__config_str(hub->conf, "tls-cert");
    key = sh__config_str(hub->conf, "tls-key");
    if (cert[0] != '\0' || key[0] != '\0') {
        if (cert[0] == '\0' || key[0] == '\0') {
            sh__errbuf(errbuf, errbuf_len, "tls-cert and tls-key go together");
            rc = SH_EINVAL;
            goto fail;
        }
        gw->ssl_ctx = tls_context(cert, key, errbuf, errbuf_len);
        if (gw->ssl_ctx == NULL) {
            rc = SH_EIO;
            goto fail;
        }
    }
    listen_at = sh__config_str(hub->conf, "listen");
    rc = resolve_listen(listen_at, &ss, &sslen, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto fail;
    lflags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
             LEV_OPT_CLOSE_ON_EXEC;
    /* listen-reuseport: several processes bind one port; the kernel
     * spreads new connections over their listeners. */
    if (sh__config_bool(hub->conf, "listen-reuseport"))
        lflags |= LEV_OPT_REUSEABLE_PORT;
    gw->listener = evconnlistener_new_bind(base, accept_cb, gw, lflags, 4096,
                                           (struct sockaddr *)&ss, sslen);
    if (gw->listener == NULL) {
        sh__errbuf(errbuf, errbuf_len, "listen: cannot bind %s: %s",
                   listen_at, strerror(errno));
        rc = SH_EIO;
        goto fail;
    }
    getsockname(evconnlistener_get_fd(gw->listener), (struct sockaddr *)&ss,
                &blen);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(gw->address, sizeof gw->address, "[%s]:%u", host,
                 ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(gw->address, sizeof gw->address, "%s:%u", host,
                 ntohs(s4->sin_port));
    }
    for (size_t i = 1; i < nloops; i++) {
        struct sh__loop *l = &gw->loops[i];
        if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
            sh__errbuf(errbuf, errbuf_len, "cannot start loop %zu", i);
            rc = SH_ENOMEM;
            goto fail;
        }
        l->threaded = true;
    }
    {
        char n[24];
        snprintf(n, sizeof n, "%zu", nloops);
        sh__log_kv(&hub->log, SH_LOG_INFO, "gateway listening", "address",
                   gw->address, "tls", gw->ssl_ctx != NULL ? "on" : "off",
                   "loops", n, (char *)NULL);
    }
    {
        /* libevent and OpenSSL write with writev/write, not
         * send(MSG_NOSIGNAL): with SIGPIPE at its default, a client that
         * resets its connection kills the process (gateway.h). */
        struct sigaction sa;
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
            sh__log_kv(&hub->log, SH_LOG_WARN,
                       "SIGPIPE is not ignored: a client resetting its "
                       "connection can kill this process; call "
                       "signal(SIGPIPE, SIG_IGN) before sh_gateway_start",
                       (char *)NULL);
    }
    *out = gw;
    return SH_OK;
fail:
    sh_gateway_free(gw);
    return rc;
}

SH_API const char *sh_gateway_address(const sh_gateway_t *gw)
{
    return gw != NULL ? gw->address : "";
}

SH_API void sh_gateway_shutdown(sh_gateway_t *gw, int timeout_ms,
                                sh_gateway_done_cb done, void *arg)
{
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

    if (gw == NULL || gw->shutting_down)
        return;
    gw->shutting_down = true;
    gw->done_cb = done;
    gw->done_arg = arg;
    /* Close the listening socket, not only stop accepting: a connection
     * that reached a listener left open would wait in its backlog until
     * the process exits, while closed, the port refuses it at once (a
     * proxy retries another node) or, under listen-reuseport, the kernel
     * hands it to another process on the port. */
    if (gw->listener != NULL) {
        evconnlistener_free(gw->listener);
        gw->listener = NULL;
    }
    gw->ndrained = 0;
    evtimer_add(gw->shutdown_timer, &tv);
    /* Each loop drains on its own thread and reports (drained_cb). */
    for (size_t i = 1; i < gw->nloops; i++) {
        if (sh__dispatch_post(gw->loops[i].dispatch, drain_run,
                              &gw->loops[i]) != SH_OK)
            gw->ndrained++;     /* cannot ask: the timeout cuts it */
    }
    loop_drain(&gw->loops[0]);
}

SH_API void sh_gateway_free(sh_gateway_t *gw)
{
    if (gw == NULL)
        return;
    if (gw->listener != NULL)
        evconnlistener_free(gw->listener);
    gw->done_cb = NULL;
    /* Stop the other loops' threads: from here on one thread does all. */
    for (size_t i = 1; i < gw->nloops; i++) {
        struct sh__loop *l = &gw->loops[i];
        if (!l->threaded)
            continue;
        if (sh__dispatch_post(l->dispatch, stop_run, l) != SH_OK)
            event_base_loopbreak(l->base);
        pthread_join(l->thread, NULL);
        l->threaded = false;
    }
    for (size_t i = 0; i < gw->nloops; i++)
        loop_cut(&gw->loops[i]);
    /* Workers complete in-flight jobs as canceled, each on its loop's
     * handle; their requests drop the last references of closed
     * connections.  The pool's own handle (loop 0's) goes last. */
    if (gw->nloops > 0) {
        sh__workers_stop(gw->loops[0].workers);
        for (size_t i = 1; i < gw->nloops; i++) {
            sh__workers_free(gw->loops[i].workers);
            gw->loops[i].workers = NULL;
        }
        sh__workers_free(gw->loops[0].workers);
        gw->loops[0].workers = NULL;
    }
    for (size_t i = 0; i < gw->nloops; i++)
        loop_fini(&gw->loops[i]);
    free(gw->loops);
    sh__presence_free(gw->presence);
    if (gw->shutdown_timer != NULL)
        event_free(gw->shutdown_timer);
    if (gw->ssl_ctx != NULL)
        SSL_CTX_free(gw->ssl_ctx);
    sh__limiter_free(gw->ip_limiter);
    free(gw->trusted);
    sh__limiter_free(gw->rl_limiter);
    sh__limiter_free(gw->auth_limiter);
    sh__graphql_http_free(gw);
    free(gw->cors_origins);
    free(gw->api_key);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
}
