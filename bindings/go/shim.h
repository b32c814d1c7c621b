/* bindings/go/shim.h: the C side of the Go binding.
 *
 * cgo cannot take the address of a Go function, and a Go pointer may not
 * be kept by C.  So the callbacks handed to libstreamhub are these C
 * trampolines, and their argument is a runtime/cgo.Handle (an integer)
 * carried in the void pointer, never a Go pointer.  The trampolines call
 * the functions that the Go side exports.
 */
#ifndef STREAMHUB_GO_SHIM_H
#define STREAMHUB_GO_SHIM_H

#include <stdint.h>

#include <streamhub/streamhub.h>
#include <streamhub/chat.h>
#include <streamhub/moderation.h>

/* sh_subscribe() with the event trampoline and @handle as its argument. */
sh_err_t shgo_subscribe(sh_hub_t *hub, const char *channel,
                        const sh_position_t *since, uintptr_t handle,
                        sh_subscription_t **out,
                        sh_subscribe_result_t *result, char *errbuf,
                        size_t errbuf_len);

/* sh_config_set_log_cb() with the log trampoline and @handle. */
void shgo_config_set_log(sh_config_t *conf, uintptr_t handle);

/* A self-pipe that wakes the poller: fds[0] read end, fds[1] write end,
 * both non-blocking and close-on-exec.  Returns 0 or an errno value. */
int shgo_waker_open(int fds[2]);
void shgo_waker_close(int fds[2]);
void shgo_wake(int wfd);
void shgo_waker_drain(int rfd);

/* Wait until @hub_fd or @wake_fd is readable (poll(2), restarted on
 * EINTR).  Returns 0, or an errno value. */
int shgo_wait(int hub_fd, int wake_fd);

#endif
