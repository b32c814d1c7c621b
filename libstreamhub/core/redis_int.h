/* libstreamhub/core/redis_int.h: a pool of blocking Redis connections.
 *
 * For the worker threads (service calls are synchronous, DESIGN.md): a
 * call takes an idle connection from the pool, runs one command or one
 * Lua script with a deadline, and gives the connection back.  Never call
 * it on a loop thread: a command may wait up to redis.timeout-ms.
 *
 * Failure model.  A connection whose command failed on I/O (reset,
 * timeout, protocol) is dropped, and so is every idle one made before
 * the failure (they share the server's fate); the pool is then down
 * until a backoff (50 ms doubling to 2 s) has passed.  While it is down
 * every call fails at once with SH_EBUS and a message naming the server
 * and its last error, instead of waiting on a dead or frozen server;
 * after the backoff the next call reconnects (connect, AUTH, SELECT,
 * PING, each within the deadlines) and the pool is up again.  A command
 * is never retried by the pool: a write may have been applied before its
 * reply was lost, and only the caller knows whether it is idempotent.
 *
 * Threads: every call is safe from any thread.  @locality any
 * @locks sh__redis.lock (never held across network I/O)
 */
#ifndef SH_CORE_REDIS_INT_H
#define SH_CORE_REDIS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "streamhub/error.h"

/* A parsed redis://[[user]:password@]host[:port][/db] URI.  Host names and
 * IPv4 addresses; an IPv6 literal in brackets ([::1]:6379). */
struct sh__redis_uri {
    char host[256];
    int port;                  /* 1..65535, default 6379 */
    char user[128];            /* "" when none: AUTH password alone */
    char password[256];        /* "" when none */
    int db;                    /* 0..15 here: SELECT's usual range */
};

/* Parse @uri into *@out.  Errors: SH_EINVAL with @errbuf naming what is
 * wrong (never the password).  @locality any */
sh_err_t sh__redis_uri_parse(const char *uri, struct sh__redis_uri *out,
                             char *errbuf, size_t errbuf_len);

struct sh__redis;

/* Open a pool of at most @size (>= 1) connections to @uri; connections
 * are made when first needed, so this succeeds while the server is down.
 * @connect_timeout_ms and @timeout_ms (>= 1) bound a connect and a
 * command.  Errors: SH_EINVAL (the URI, @errbuf), SH_ENOMEM.
 * Ownership: *@out is the caller's, released by sh__redis_free(). */
sh_err_t sh__redis_new(const char *uri, size_t size, int connect_timeout_ms,
                       int timeout_ms, struct sh__redis **out,
                       char *errbuf, size_t errbuf_len);
/* Close every connection; NULL is a no-op.  No call may be running. */
void sh__redis_free(struct sh__redis *r);

/* Run one command given as @argc arguments (@lens NULL: each is a C
 * string; else their lengths, so any bytes).  On SH_OK *@out (may be
 * NULL: the reply is dropped) gets the reply, the caller's, released by
 * freeReplyObject().  An error reply of the server is SH_EBUS with its
 * text in @errbuf and the connection kept; an I/O failure or a timeout
 * is SH_EBUS and the pool goes down (see above); SH_ENOMEM.  On error
 * *@out is NULL. */
sh_err_t sh__redis_cmd(struct sh__redis *r, int argc, const char **argv,
                       const size_t *lens, redisReply **out,
                       char *errbuf, size_t errbuf_len);

/* A Lua script run by EVALSHA, loaded with EVAL when the server does not
 * have it (NOSCRIPT: a restart, SCRIPT FLUSH).  Define it static const;
 * nothing in it changes, so threads share it freely. */
struct sh__redis_script {
    const char *src;
};
/* The lowercase hex SHA-1 of @s->src into @sha (41 bytes); "" when it
 * cannot be computed (then EVAL is used every time: still correct). */
void sh__redis_script_sha(const struct sh__redis_script *s, char sha[41]);
/* Run @s with @nkeys keys then @nargs - @nkeys arguments in @argv
 * (@lens as in sh__redis_cmd()).  Results and errors as sh__redis_cmd();
 * a script's error reply is SH_EBUS with its text in @errbuf. */
sh_err_t sh__redis_eval(struct sh__redis *r,
                        const struct sh__redis_script *s,
                        int nkeys, int nargs, const char **argv,
                        const size_t *lens, redisReply **out,
                        char *errbuf, size_t errbuf_len);

/* True when the pool is up (its last connect or command did not fail on
 * I/O, or the backoff passed): a hint for /readyz and metrics. */
bool sh__redis_up(struct sh__redis *r);
/* Commands sent and I/O failures seen, since the pool was made. */
uint64_t sh__redis_commands(struct sh__redis *r);
uint64_t sh__redis_failures(struct sh__redis *r);

#endif
