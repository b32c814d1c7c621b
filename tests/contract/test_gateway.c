/* tests/contract/test_gateway.c: the gateway of an embedder (gateway.h),
 * through the public API only: a hub attached to the embedder's own
 * event_base and a gateway started on it.
 *
 * With `loops = 1` the embedder's loop is the gateway's only loop: the
 * gateway starts its workers and no thread of its own for a loop.  With
 * more loops, new connections are handed to the loops in turn, each is
 * answered, and a graceful shutdown drains every loop and calls back on
 * the embedder's loop, whatever loop the connections were on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "social_fixture.h"
#include "streamhub/gateway.h"

#define WORKERS 2
#define NCLIENTS 6

/* Threads of this process now. */
static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static sh_hub_t *open_hub(const char *loops)
{
    char err[SH_ERRBUF_SIZE], w[8];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;

    snprintf(w, sizeof w, "%d", WORKERS);
    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", sfx_store(), err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "jwt-secret",
                                   "0123456789abcdef0123456789abcdef", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "listen", "127.0.0.1:0", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "workers", w, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(conf, "loops", loops, err, sizeof err),
                     SH_OK);
    if (!bfx_set(conf, err, sizeof err))
        fail_msg("bus: %s", err);
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        fail_msg("sh_hub_open: %s", err);
    return hub;
}

static void test_loops_key_is_checked(void **state)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;

    (void)state;
    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "loops", "-1", err, sizeof err),
                     SH_EINVAL);
    assert_non_null(strstr(err, "loops"));
    assert_int_equal(sh_config_set(conf, "loops", "257", err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_config_set(conf, "loops", "0", err, sizeof err),
                     SH_OK);
    sh_config_free(conf);
}

/* loops = 1: the embedder's loop, and no loop thread of the gateway's. */
static void test_one_loop_is_the_embedders(void **state)
{
    char err[SH_ERRBUF_SIZE];
    struct event_base *base;
    sh_gateway_t *gw = NULL;
    sh_hub_t *hub;
    int before;

    (void)state;
    assert_int_equal(evthread_use_pthreads(), 0);
    base = event_base_new();
    assert_non_null(base);
    hub = open_hub("1");
    assert_int_equal(sh_hub_attach(hub, base, err, sizeof err), SH_OK);
    before = threads_now();
    assert_int_equal(sh_gateway_start(hub, base, &gw, err, sizeof err),
                     SH_OK);
    assert_int_equal(threads_now() - before, WORKERS);
    sh_gateway_free(gw);
    sh_hub_close(hub);
    event_base_free(base);
}

struct client {
    int fd;
    char buf[2048];
    size_t len;
};

static int connect_to(const char *address)
{
    struct sockaddr_in sa;
    unsigned port = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(sscanf(address, "127.0.0.1:%u", &port), 1);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

/* Read what @c has; true once EOF was seen. */
static bool client_read(struct client *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            continue;
        }
        return n == 0;
    }
}

struct done {
    int calls;
    pthread_t thread;
};

static void on_done(void *arg)
{
    struct done *d = arg;

    d->calls++;
    d->thread = pthread_self();
}

/* Several loops: connections on each are answered, and a graceful
 * shutdown closes the idle ones of every loop, then calls back on the
 * embedder's loop. */
static void test_loops_answer_and_drain(void **state)
{
    char err[SH_ERRBUF_SIZE];
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    struct client cl[NCLIENTS];
    struct done done = { 0 };
    struct event_base *base;
    sh_gateway_t *gw = NULL;
    sh_hub_t *hub;
    int before, answered = 0, closed = 0;

    (void)state;
    assert_int_equal(evthread_use_pthreads(), 0);
    base = event_base_new();
    assert_non_null(base);
    hub = open_hub("3");
    assert_int_equal(sh_hub_attach(hub, base, err, sizeof err), SH_OK);
    before = threads_now();
    assert_int_equal(sh_gateway_start(hub, base, &gw, err, sizeof err),
                     SH_OK);
    /* Two loops of its own beside the embedder's, and the workers. */
    assert_int_equal(threads_now() - before, WORKERS + 2);
    for (int i = 0; i < NCLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].fd = connect_to(sh_gateway_address(gw));
        assert_int_equal(write(cl[i].fd, get, sizeof get - 1),
                         (ssize_t)(sizeof get - 1));
    }
    for (int k = 0; k < 200000 && answered < NCLIENTS; k++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        answered = 0;
        for (int i = 0; i < NCLIENTS; i++) {
            (void)client_read(&cl[i]);
            answered += strstr(cl[i].buf, "\r\n\r\n{\"status\":\"ok\"}") !=
                        NULL;
        }
        if (answered < NCLIENTS)
            usleep(100);
    }
    assert_int_equal(answered, NCLIENTS);
    for (int i = 0; i < NCLIENTS; i++)
        assert_non_null(strstr(cl[i].buf, "HTTP/1.1 200 OK\r\n"));
    /* Idle keep-alive connections on every loop: the shutdown closes
     * them and reports long before its timeout. */
    sh_gateway_shutdown(gw, 60000, on_done, &done);
    for (int k = 0; k < 200000 && (done.calls == 0 || closed < NCLIENTS);
         k++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        closed = 0;
        for (int i = 0; i < NCLIENTS; i++)
            closed += client_read(&cl[i]);
        if (done.calls == 0 || closed < NCLIENTS)
            usleep(100);
    }
    assert_int_equal(closed, NCLIENTS);
    assert_int_equal(done.calls, 1);
    assert_true(pthread_equal(done.thread, pthread_self()));
    sh_gateway_free(gw);
    for (int i = 0; i < NCLIENTS; i++)
        close(cl[i].fd);
    sh_hub_close(hub);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops_key_is_checked),
        cmocka_unit_test(test_one_loop_is_the_embedders),
        cmocka_unit_test(test_loops_answer_and_drain),
    };

    /* As gateway.h asks of a process that runs a gateway. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
