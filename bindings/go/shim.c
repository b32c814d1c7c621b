/* bindings/go/shim.c: C trampolines and the poller's wait (see shim.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "shim.h"
#include "_cgo_export.h"

static void event_trampoline(void *arg, const sh_event_t *ev,
                             sh_err_t status)
{
    shgoEvent((uintptr_t)arg, (sh_event_t *)ev, status);
}

static void log_trampoline(void *arg, sh_log_level_t level,
                           const char *line, size_t len)
{
    shgoLog((uintptr_t)arg, (int)level, (char *)line, len);
}

sh_err_t shgo_subscribe(sh_hub_t *hub, const char *channel,
                        const sh_position_t *since, uintptr_t handle,
                        sh_subscription_t **out,
                        sh_subscribe_result_t *result, char *errbuf,
                        size_t errbuf_len)
{
    return sh_subscribe(hub, channel, since, event_trampoline,
                        (void *)handle, out, result, errbuf, errbuf_len);
}

void shgo_config_set_log(sh_config_t *conf, uintptr_t handle)
{
    sh_config_set_log_cb(conf, log_trampoline, (void *)handle);
}

int shgo_waker_open(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return errno;
    return 0;
}

void shgo_waker_close(int fds[2])
{
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    fds[0] = fds[1] = -1;
}

void shgo_wake(int wfd)
{
    char c = 1;

    /* A full pipe already wakes the poller: EAGAIN is fine. */
    while (write(wfd, &c, 1) < 0 && errno == EINTR)
        ;
}

void shgo_waker_drain(int rfd)
{
    char buf[64];

    while (read(rfd, buf, sizeof buf) > 0)
        ;
}

int shgo_wait(int hub_fd, int wake_fd)
{
    struct pollfd p[2] = {
        { .fd = hub_fd, .events = POLLIN, .revents = 0 },
        { .fd = wake_fd, .events = POLLIN, .revents = 0 },
    };

    for (;;) {
        if (poll(p, 2, -1) >= 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}
