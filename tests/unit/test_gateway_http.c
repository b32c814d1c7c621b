/* tests/unit/test_gateway_http.c: the HTTP/1.1 request layer: smuggling
 * shapes as raw bytes, limits, pipelining, upgrade, byte-at-a-time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/gateway_int.h"

static const struct sh__http_limits lim = { 1024, 16, 4096, 8 };

/* Feed @s whole; return the error status (0 when none) and the number of
 * requests produced. */
static int feed_all(const char *s, size_t n, size_t *nreq, size_t chunk)
{
    struct sh__http_conn *c;
    struct sh__http_request *r;
    size_t off = 0, used;
    int status = 0;

    assert_int_equal(sh__http_conn_new(&lim, &c), SH_OK);
    *nreq = 0;
    while (off < n) {
        size_t k = chunk == 0 || n - off < chunk ? n - off : chunk;
        enum sh__http_status st = sh__http_conn_feed(
            c, (const uint8_t *)s + off, k, &used);
        while ((r = sh__http_conn_next(c)) != NULL) {
            (*nreq)++;
            sh__http_request_free(r);
        }
        if (st == SH__HTTP_ERROR) {
            status = sh__http_conn_error(c, NULL);
            assert_true(status >= 400);
            break;
        }
        if (st == SH__HTTP_UPGRADE)
            break;
        off += used;
    }
    sh__http_conn_free(c);
    return status;
}

#define H "Host: a\r\n"
struct bad {
    const char *raw;
    int status;
};
static const struct bad bad[] = {
    /* CL + TE, both orders */
    { "POST / HTTP/1.1\r\n" H "Content-Length: 3\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length:"
      " 3\r\n\r\n0\r\n\r\n", 400 },
    /* duplicate and differing Content-Length */
    { "POST / HTTP/1.1\r\n" H "Content-Length: 3\r\nContent-Length: 3\r\n\r\n"
      "abc", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: 3\r\nContent-Length: 4\r\n\r\n"
      "abcd", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: 3, 3\r\n\r\nabc", 400 },
    /* malformed Content-Length */
    { "POST / HTTP/1.1\r\n" H "Content-Length: +3\r\n\r\nabc", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: -3\r\n\r\nabc", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\nabc", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: 0x3\r\n\r\nabc", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: 3a\r\n\r\nabc", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n"
      "\r\n", 400 },
    /* Transfer-Encoding not exactly chunked */
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, identity\r\n\r\n"
      "0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
      400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n"
      "0\r\n\r\n", 501 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-"
      "Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
    /* obsolete line folding, whitespace before the colon */
    { "GET / HTTP/1.1\r\n" H "X-A: 1\r\n folded\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\n" H "X-A: 1\r\n\tfolded\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\n" H "Content-Length : 0\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\n" H "Transfer-Encoding\t: chunked\r\n\r\n", 400 },
    /* bare CR, bare LF, NUL */
    { "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\n" H "X-A: a\nX-B: b\r\n\r\n", 400 },
    { "GET / HTTP/1.1\n" H "\r\n", 400 },
    { "GET / HTTP/1.1\r\n" H "\n", 400 },
    /* bad chunk sizes, extensions and framing */
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "-5\r\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "0x5\r\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "fffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "5;a\nb\r\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "5 junk\r\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "5\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "5\r\nhelloXX0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "\r\nhello\r\n0\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "0\r\nX: a\r\n b\r\n\r\n", 400 },
    { "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
      "0\r\nX: a\n\r\n", 400 },
    /* Host rules, versions, methods */
    { "GET / HTTP/1.1\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\n" H H "\r\n", 400 },
    { "GET / HTTP/2.0\r\n" H "\r\n", 505 },
    { "CONNECT a:443 HTTP/1.1\r\n" H "\r\n", 405 },
    { "G@T / HTTP/1.1\r\n" H "\r\n", 400 },
    /* limits */
    { "POST / HTTP/1.1\r\n" H "Content-Length: 4097\r\n\r\n", 413 },
};

static void test_smuggling_shapes(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *raw = bad[i].raw;
        size_t n = strlen(raw);
        size_t nreq;
        int st = feed_all(raw, n, &nreq, 0);
        if (st != bad[i].status || nreq != 0) {
            print_error("case %zu: status %d, want %d\n", i, st,
                        bad[i].status);
            failed++;
        }
        /* one byte at a time: same verdict */
        st = feed_all(raw, n, &nreq, 1);
        if (st != bad[i].status || nreq != 0) {
            print_error("case %zu bytewise: status %d, want %d\n", i, st,
                        bad[i].status);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

static void test_embedded_nul(void **state)
{
    (void)state;
    static const char a[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n";
    static const char b[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:"
                            " chunked\r\n\r\n5;a\0\r\nhello\r\n0\r\n\r\n";
    static const char t[] = "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t nreq;
    assert_int_equal(feed_all(t, sizeof t - 1, &nreq, 0), 400);
    assert_int_equal(feed_all(a, sizeof a - 1, &nreq, 0), 400);
    assert_int_equal(feed_all(b, sizeof b - 1, &nreq, 0), 400);
    assert_int_equal(feed_all(b, sizeof b - 1, &nreq, 1), 400);
}

static void test_limits(void **state)
{
    (void)state;
    char *buf = malloc(8192);
    size_t n, nreq;

    /* header section exactly at the limit passes, one more byte is 431 */
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    for (size_t target = 1024; target <= 1025; target++) {
        n = strlen(pre);
        memcpy(buf, pre, n);
        size_t fill = target - n - 4;
        memset(buf + n, 'v', fill);
        n += fill;
        memcpy(buf + n, "\r\n\r\n", 4);
        n += 4;
        assert_int_equal(n, target);
        assert_int_equal(feed_all(buf, n, &nreq, 0), target == 1024 ? 0 : 431);
        assert_int_equal(nreq, target == 1024 ? 1 : 0);
    }
    /* an endless header line: 431 without waiting for its end */
    n = (size_t)snprintf(buf, 8192, "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, 'v', 2000);
    assert_int_equal(feed_all(buf, n + 2000, &nreq, 0), 431);
    /* the same when a read ends exactly at the limit: the next read must
     * not reach the parser as a zero-length (end-of-stream) feed */
    for (size_t chunk = 1; chunk <= 1024; chunk *= 2)
        assert_int_equal(feed_all(buf, n + 2000, &nreq, chunk), 431);
    /* max headers: 16 passes, 17 is 431 */
    for (int k = 16; k <= 17; k++) {
        n = (size_t)snprintf(buf, 8192, "GET / HTTP/1.1\r\n" H);
        for (int i = 1; i < k; i++)
            n += (size_t)snprintf(buf + n, 8192 - n, "X-%d: v\r\n", i);
        n += (size_t)snprintf(buf + n, 8192 - n, "\r\n");
        assert_int_equal(feed_all(buf, n, &nreq, 0), k == 16 ? 0 : 431);
    }
    /* body: max passes, max+1 is 413 (length and chunked) */
    for (size_t len = 4096; len <= 4097; len++) {
        n = (size_t)snprintf(buf, 8192, "POST / HTTP/1.1\r\n" H
                             "Content-Length: %zu\r\n\r\n", len);
        memset(buf + n, 'b', len);
        assert_int_equal(feed_all(buf, n + len, &nreq, 0),
                         len == 4096 ? 0 : 413);
        n = (size_t)snprintf(buf, 8192, "POST / HTTP/1.1\r\n" H
                             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n", len);
        memset(buf + n, 'b', len);
        n += len;
        n += (size_t)snprintf(buf + n, 8192 - n, "\r\n0\r\n\r\n");
        assert_int_equal(feed_all(buf, n, &nreq, 0), len == 4096 ? 0 : 413);
        assert_int_equal(nreq, len == 4096 ? 1 : 0);
    }
    free(buf);
}

static const char pipelined[] =
    "\r\nGET /one HTTP/1.1\r\nHost: a\r\nX-Sp:  v  \r\n\r\n"
    "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    "POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3;ext=\"q\\\"\" ; x\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
    "GET /four HTTP/1.0\r\n\r\n"
    "GET /ignored HTTP/1.1\r\nHost: a\r\n\r\n";

static void check_pipeline(size_t chunk)
{
    struct sh__http_conn *c;
    struct sh__http_request *r[8];
    size_t nr = 0, off = 0, n = sizeof pipelined - 1, used;
    struct sh__http_limits l = lim;

    l.max_pipelined = 2;              /* exercise backpressure too */
    assert_int_equal(sh__http_conn_new(&l, &c), SH_OK);
    while (off < n) {
        size_t k = chunk == 0 || n - off < chunk ? n - off : chunk;
        assert_int_equal(sh__http_conn_feed(c, (const uint8_t *)pipelined
                                            + off, k, &used), SH__HTTP_OK);
        off += used;
        struct sh__http_request *q;
        while ((q = sh__http_conn_next(c)) != NULL) {
            assert_true(nr < 8);
            r[nr++] = q;
        }
    }
    assert_int_equal(nr, 4);
    assert_string_equal(r[0]->method, "GET");
    assert_string_equal(r[0]->target, "/one");
    assert_int_equal(r[0]->nheaders, 2);
    assert_string_equal(r[0]->headers[1].name, "X-Sp");
    assert_string_equal(r[0]->headers[1].value, "v");
    assert_int_equal(r[0]->headers[1].value_len, 1);
    assert_true(r[0]->keep_alive);
    assert_string_equal(r[1]->target, "/two");
    assert_int_equal(r[1]->body_len, 5);
    assert_memory_equal(r[1]->body, "hello", 5);
    assert_string_equal(r[2]->target, "/three");
    assert_int_equal(r[2]->body_len, 5);
    assert_memory_equal(r[2]->body, "abcde", 5);
    assert_int_equal(r[2]->nheaders, 2);     /* trailers not kept */
    assert_non_null(sh__http_request_header(r[2], "transfer-encoding",
                                            NULL));
    assert_string_equal(r[3]->target, "/four");
    assert_false(r[3]->keep_alive);          /* 1.0 without keep-alive */
    for (size_t i = 0; i < nr; i++)
        sh__http_request_free(r[i]);
    sh__http_conn_free(c);
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    check_pipeline(0);
    check_pipeline(1);
    check_pipeline(7);
}

static void test_http10_keep_alive(void **state)
{
    (void)state;
    static const char s[] = "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                            "GET /b HTTP/1.1\r\nHost: a\r\nConnection: close"
                            "\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t nreq;
    assert_int_equal(feed_all(s, sizeof s - 1, &nreq, 0), 0);
    assert_int_equal(nreq, 2);
}

static void test_upgrade_leftover(void **state)
{
    (void)state;
    static const char s[] =
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: streamhub.v1\r\n"
        "\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    static const char *const protos[] = { "streamhub.v1" };
    size_t n = sizeof s - 1;

    for (size_t chunk = 0; chunk <= 1; chunk++) {
        struct sh__http_conn *c;
        struct sh__http_request *r;
        struct sh__ws_handshake hs;
        size_t off = 0, used;
        enum sh__http_status st = SH__HTTP_OK;
        assert_int_equal(sh__http_conn_new(&lim, &c), SH_OK);
        while (off < n) {
            size_t k = chunk == 0 ? n - off : 1;
            st = sh__http_conn_feed(c, (const uint8_t *)s + off, k, &used);
            off += used;
            if (st == SH__HTTP_UPGRADE)
                break;
            assert_int_equal(st, SH__HTTP_OK);
        }
        assert_int_equal(st, SH__HTTP_UPGRADE);
        assert_int_equal(n - off, 11);        /* the frame is left over */
        r = sh__http_conn_next(c);
        assert_non_null(r);
        assert_true(r->upgrade);
        assert_int_equal(sh__ws_handshake_check(r, protos, 1, &hs), 101);
        assert_string_equal(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_string_equal(hs.protocol, "streamhub.v1");
        sh__http_request_free(r);
        assert_int_equal(sh__http_conn_feed(c, (const uint8_t *)"x", 1,
                                            &used), SH__HTTP_UPGRADE);
        assert_int_equal(used, 0);
        sh__http_conn_free(c);
    }
}

static void test_empty_and_truncated(void **state)
{
    (void)state;
    static const char s[] = "POST /x HTTP/1.1\r\nHost: a\r\n"
                            "Content-Length: 3\r\n\r\nab";
    struct sh__http_conn *c;
    size_t used;
    assert_int_equal(sh__http_conn_new(&lim, &c), SH_OK);
    assert_int_equal(sh__http_conn_feed(c, NULL, 0, &used), SH__HTTP_OK);
    /* every cut of a truncated request: no request, no error */
    for (size_t cut = 0; cut <= sizeof s - 1; cut++) {
        struct sh__http_conn *d;
        assert_int_equal(sh__http_conn_new(&lim, &d), SH_OK);
        assert_int_equal(sh__http_conn_feed(d, (const uint8_t *)s, cut,
                                            &used), SH__HTTP_OK);
        assert_int_equal(used, cut);
        assert_null(sh__http_conn_next(d));
        sh__http_conn_free(d);
    }
    sh__http_conn_free(c);
    struct sh__http_limits zero = { 0, 1, 1, 1 };
    assert_int_equal(sh__http_conn_new(&zero, &c), SH_EINVAL);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smuggling_shapes),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_http10_keep_alive),
        cmocka_unit_test(test_upgrade_leftover),
        cmocka_unit_test(test_empty_and_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
