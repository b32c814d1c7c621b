/* tests/unit/test_gateway_ws_codec.c: RFC 6455 framing, the message
 * reader's close-code rules, the encoder, the handshake, and a differential
 * test against wslay (when the build found it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/gateway_int.h"

#ifdef SH_HAVE_WSLAY
#include <wslay/wslay.h>
#endif

#define MAXMSG 65536

static const uint8_t key4[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* A client frame: @fin, @op, masked with key4, with the length encoded in
 * the smallest form. */
static size_t client_frame(bool fin, uint8_t op, const void *payload,
                           size_t len, uint8_t *out)
{
    size_t h = 0;

    out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len <= 125) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + h, key4, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ key4[i & 3];
    return h + len;
}

/* Feed @buf whole to a fresh reader; return the status of the first call
 * that does not produce a ping/pong, with its close code. */
static enum sh__ws_status run(uint8_t *buf, size_t n, struct sh__ws_event *ev,
                              uint16_t *code)
{
    struct sh__ws_reader r;
    size_t off = 0, used;
    enum sh__ws_status st;

    sh__ws_reader_init(&r, MAXMSG);
    for (;;) {
        *code = 0;
        st = sh__ws_reader_feed(&r, buf + off, n - off, &used, ev, code);
        off += used;
        if (st != SH__WS_OK || (ev->kind != SH__WS_EV_PING &&
                                ev->kind != SH__WS_EV_PONG))
            break;
    }
    /* the event's data may live in the reader: keep a copy */
    if (st == SH__WS_OK) {
        static uint8_t copy[MAXMSG];
        if (ev->len > 0)
            memcpy(copy, ev->data, ev->len);
        ev->data = copy;
    }
    sh__ws_reader_clear(&r);
    return st;
}

static uint16_t error_of(uint8_t *buf, size_t n)
{
    struct sh__ws_event ev;
    uint16_t code;
    assert_int_equal(run(buf, n, &ev, &code), SH__WS_ERROR);
    return code;
}

/* ---- RFC 6455 5.7 --------------------------------------------------- */

static void test_rfc_examples(void **state)
{
    (void)state;
    uint8_t hello_masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                               0x9f, 0x4d, 0x51, 0x58 };
    uint8_t hello_plain[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    uint8_t pong_masked[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                              0x9f, 0x4d, 0x51, 0x58 };
    uint8_t out[80000];
    struct sh__ws_frame_view f;
    uint16_t code = 0;

    assert_int_equal(sh__ws_parse_frame(hello_masked, sizeof hello_masked,
                                        MAXMSG, &f, &code), SH__WS_OK);
    assert_true(f.fin);
    assert_int_equal(f.opcode, SH__WS_OP_TEXT);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "Hello", 5);
    assert_int_equal(f.frame_len, sizeof hello_masked);
    /* an unmasked client frame is a protocol error */
    assert_int_equal(sh__ws_parse_frame(hello_plain, sizeof hello_plain,
                                        MAXMSG, &f, &code), SH__WS_ERROR);
    assert_int_equal(code, 1002);
    assert_int_equal(sh__ws_parse_frame(pong_masked, sizeof pong_masked,
                                        MAXMSG, &f, &code), SH__WS_OK);
    assert_int_equal(f.opcode, SH__WS_OP_PONG);
    assert_memory_equal(f.payload, "Hello", 5);

    /* the server side: exact bytes of the unmasked examples */
    assert_int_equal(sh__ws_frame_encode(SH__WS_OP_TEXT, "Hello", 5, out), 7);
    assert_memory_equal(out, hello_plain, 7);
    uint8_t ping[] = { 0x89, 0x05, 'H', 'e', 'l', 'l', 'o' };
    assert_int_equal(sh__ws_frame_encode(SH__WS_OP_PING, "Hello", 5, out), 7);
    assert_memory_equal(out, ping, 7);
    static uint8_t big[65536];
    uint8_t h256[] = { 0x82, 0x7E, 0x01, 0x00 };
    assert_int_equal(sh__ws_frame_encode(SH__WS_OP_BINARY, big, 256, out),
                     260);
    assert_memory_equal(out, h256, 4);
    uint8_t h64k[] = { 0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0 };
    assert_int_equal(sh__ws_frame_encode(SH__WS_OP_BINARY, big, 65536, out),
                     65546);
    assert_memory_equal(out, h64k, 10);
}

/* Fragmented "Hel" + "lo" (5.7), with a ping in between. */
static void test_fragments_with_ping(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = 0, off = 0, used;
    struct sh__ws_reader r;
    struct sh__ws_event ev;
    uint16_t code;

    n += client_frame(false, SH__WS_OP_TEXT, "Hel", 3, buf + n);
    n += client_frame(true, SH__WS_OP_PING, "p", 1, buf + n);
    n += client_frame(true, SH__WS_OP_CONT, "lo", 2, buf + n);
    sh__ws_reader_init(&r, MAXMSG);
    assert_int_equal(sh__ws_reader_feed(&r, buf, n, &used, &ev, &code),
                     SH__WS_OK);
    assert_int_equal(ev.kind, SH__WS_EV_PING);
    assert_int_equal(ev.len, 1);
    assert_memory_equal(ev.data, "p", 1);
    off += used;
    assert_int_equal(sh__ws_reader_feed(&r, buf + off, n - off, &used, &ev,
                                        &code), SH__WS_OK);
    assert_int_equal(ev.kind, SH__WS_EV_TEXT);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    off += used;
    assert_int_equal(off, n);
    assert_int_equal(sh__ws_reader_feed(&r, buf + off, 0, &used, &ev, &code),
                     SH__WS_NEED_MORE);
    sh__ws_reader_clear(&r);
}

/* ---- header rules --------------------------------------------------- */

static void test_header_rules(void **state)
{
    (void)state;
    uint8_t b[32];
    size_t n;

    n = client_frame(true, SH__WS_OP_TEXT, "x", 1, b);
    for (int rsv = 1; rsv < 8; rsv++) {
        uint8_t c[32];
        memcpy(c, b, n);
        c[0] |= (uint8_t)(rsv << 4);
        assert_int_equal(error_of(c, 1), 1002);   /* decided at byte 1 */
    }
    for (uint8_t op = 3; op <= 0xF; op++) {
        if (op >= 8 && op <= 0xA)
            continue;
        b[0] = (uint8_t)(0x80 | op);
        assert_int_equal(error_of(b, 1), 1002);
    }
    /* control frames: not FIN, or longer than 125 */
    n = client_frame(false, SH__WS_OP_PING, "x", 1, b);
    assert_int_equal(error_of(b, 1), 1002);
    b[0] = 0x89;
    b[1] = 0x80 | 126;
    assert_int_equal(error_of(b, 2), 1002);
    uint8_t ping125[200];
    static const uint8_t z[126];
    n = client_frame(true, SH__WS_OP_PING, z, 125, ping125);
    struct sh__ws_event ev;
    uint16_t code;
    struct sh__ws_reader r;
    size_t used;
    sh__ws_reader_init(&r, MAXMSG);
    assert_int_equal(sh__ws_reader_feed(&r, ping125, n, &used, &ev, &code),
                     SH__WS_OK);
    assert_int_equal(ev.len, 125);
    sh__ws_reader_clear(&r);
    /* non-minimal lengths */
    uint8_t l16[] = { 0x81, 0x80 | 126, 0x00, 125 };
    assert_int_equal(error_of(l16, sizeof l16), 1002);
    uint8_t l64[] = { 0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
    assert_int_equal(error_of(l64, sizeof l64), 1002);
    /* 64-bit length with the top bit: 1002 even though it is huge */
    uint8_t top[] = { 0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0 };
    assert_int_equal(error_of(top, sizeof top), 1002);
    /* 2^63 - 1 is well formed but over the limit: 1009 from the header */
    uint8_t max63[] = { 0x81, 0x80 | 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                        0xFF, 0xFF };
    assert_int_equal(error_of(max63, sizeof max63), 1009);
}

/* Lengths at each encoding boundary, and the limit: max passes, max+1 is
 * refused from the header alone (no payload sent). */
static void test_lengths_and_limit(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 125, 126, 65535, 65536 };
    uint8_t *payload = malloc(65536);
    uint8_t *buf = malloc(65536 + 14);
    struct sh__ws_event ev;
    uint16_t code;

    for (size_t i = 0; i < 65536; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = client_frame(true, SH__WS_OP_TEXT, payload, lens[i], buf);
        assert_int_equal(run(buf, n, &ev, &code), SH__WS_OK);
        assert_int_equal(ev.len, lens[i]);
        if (lens[i] > 0)
            assert_memory_equal(ev.data, payload, lens[i]);
    }
    size_t n = client_frame(true, SH__WS_OP_TEXT, payload, 65536, buf);
    /* 65537 declared: only the header is given */
    buf[9] = 1;
    buf[8] = 1;     /* 0x0000000000010001 */
    assert_int_equal(error_of(buf, 10), 1009);
    (void)n;
    free(payload);
    free(buf);
}

/* A message over the limit across fragments: 1009 when the fragment that
 * crosses it arrives, judged from its header. */
static void test_fragmented_limit(void **state)
{
    (void)state;
    uint8_t *payload = calloc(1, 40000);
    uint8_t *buf = malloc(100000);
    size_t n = 0;

    memset(payload, 'x', 40000);
    n += client_frame(false, SH__WS_OP_TEXT, payload, 40000, buf + n);
    n += client_frame(false, SH__WS_OP_CONT, payload, 25536, buf + n);
    size_t ok_len = n;
    n += client_frame(true, SH__WS_OP_CONT, payload, 1, buf + n);
    /* 40000 + 25536 + 1 = 65537 > 65536 */
    assert_int_equal(error_of(buf, ok_len + 4), 1009);
    /* exactly the limit passes (rebuilt: parsing unmasked it in place) */
    n = client_frame(false, SH__WS_OP_TEXT, payload, 40000, buf);
    n += client_frame(false, SH__WS_OP_CONT, payload, 25536, buf + n);
    n += client_frame(true, SH__WS_OP_CONT, payload, 0, buf + n);
    struct sh__ws_event ev;
    uint16_t code = 0;
    assert_int_equal(run(buf, n, &ev, &code), SH__WS_OK);
    assert_int_equal(code, 0);
    assert_int_equal(ev.len, 65536);
    free(payload);
    free(buf);
}

static void test_fragmentation_rules(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n;

    /* continuation without a start */
    n = client_frame(true, SH__WS_OP_CONT, "x", 1, b);
    assert_int_equal(error_of(b, n), 1002);
    /* a new text frame inside a fragmented message */
    n = client_frame(false, SH__WS_OP_TEXT, "a", 1, b);
    n += client_frame(true, SH__WS_OP_TEXT, "b", 1, b + n);
    assert_int_equal(error_of(b, n), 1002);
    /* a binary frame inside a fragmented text message: 1002 */
    n = client_frame(false, SH__WS_OP_TEXT, "a", 1, b);
    n += client_frame(true, SH__WS_OP_BINARY, "b", 1, b + n);
    assert_int_equal(error_of(b, n), 1002);
    /* binary: 1003 */
    n = client_frame(true, SH__WS_OP_BINARY, "\x01", 1, b);
    assert_int_equal(error_of(b, n), 1003);
    n = client_frame(false, SH__WS_OP_BINARY, "\x01", 1, b);
    assert_int_equal(error_of(b, n), 1003);
    /* a reader that failed stays failed */
    struct sh__ws_reader r;
    struct sh__ws_event ev;
    uint16_t code;
    size_t used;
    sh__ws_reader_init(&r, MAXMSG);
    n = client_frame(true, SH__WS_OP_CONT, "x", 1, b);
    assert_int_equal(sh__ws_reader_feed(&r, b, n, &used, &ev, &code),
                     SH__WS_ERROR);
    n = client_frame(true, SH__WS_OP_TEXT, "x", 1, b);
    assert_int_equal(sh__ws_reader_feed(&r, b, n, &used, &ev, &code),
                     SH__WS_ERROR);
    sh__ws_reader_clear(&r);
}

static void test_text_utf8(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n;
    struct sh__ws_event ev;
    uint16_t code;

    /* "κ" split across fragments: CE | BA */
    n = client_frame(false, SH__WS_OP_TEXT, "a\xce", 2, b);
    n += client_frame(true, SH__WS_OP_CONT, "\xba" "b", 2, b + n);
    assert_int_equal(run(b, n, &ev, &code), SH__WS_OK);
    assert_int_equal(ev.len, 4);
    assert_memory_equal(ev.data, "a\xce\xba" "b", 4);
    /* surrogate split across fragments fails at the second fragment,
     * before the final one arrives */
    n = client_frame(false, SH__WS_OP_TEXT, "\xed", 1, b);
    n += client_frame(false, SH__WS_OP_CONT, "\xa0\x80", 2, b + n);
    assert_int_equal(error_of(b, n), 1007);
    /* truncated at the end of the message */
    n = client_frame(true, SH__WS_OP_TEXT, "ok\xe2\x82", 4, b);
    assert_int_equal(error_of(b, n), 1007);
    n = client_frame(false, SH__WS_OP_TEXT, "ok\xe2\x82", 4, b);
    n += client_frame(true, SH__WS_OP_CONT, "", 0, b + n);
    assert_int_equal(error_of(b, n), 1007);
    /* overlong and 5-byte forms */
    n = client_frame(true, SH__WS_OP_TEXT, "\xc0\xaf", 2, b);
    assert_int_equal(error_of(b, n), 1007);
    n = client_frame(true, SH__WS_OP_TEXT, "\xf8\x88\x80\x80\x80", 5, b);
    assert_int_equal(error_of(b, n), 1007);
    /* embedded NUL is valid UTF-8 (the JSON layer judges it) */
    n = client_frame(true, SH__WS_OP_TEXT, "a\0b", 3, b);
    assert_int_equal(run(b, n, &ev, &code), SH__WS_OK);
    assert_int_equal(ev.len, 3);
    /* empty text */
    n = client_frame(true, SH__WS_OP_TEXT, "", 0, b);
    assert_int_equal(run(b, n, &ev, &code), SH__WS_OK);
    assert_int_equal(ev.len, 0);
}

static void test_close_rules(void **state)
{
    (void)state;
    uint8_t b[256], p[130];
    size_t n;
    struct sh__ws_event ev;
    uint16_t code;

    n = client_frame(true, SH__WS_OP_CLOSE, "", 0, b);
    assert_int_equal(run(b, n, &ev, &code), SH__WS_OK);
    assert_int_equal(ev.kind, SH__WS_EV_CLOSE);
    assert_int_equal(ev.close_code, 1005);
    n = client_frame(true, SH__WS_OP_CLOSE, "\x03", 1, b);
    assert_int_equal(error_of(b, n), 1002);

    static const unsigned good[] = { 1000, 1001, 1002, 1003, 1007, 1008,
                                     1009, 1010, 1011, 1012, 1013, 1014,
                                     3000, 3999, 4000, 4400, 4999 };
    static const unsigned bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016,
                                    1100, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        p[0] = (uint8_t)(good[i] >> 8);
        p[1] = (uint8_t)good[i];
        memcpy(p + 2, "bye", 3);
        n = client_frame(true, SH__WS_OP_CLOSE, p, 5, b);
        assert_int_equal(run(b, n, &ev, &code), SH__WS_OK);
        assert_int_equal(ev.close_code, good[i]);
        assert_int_equal(ev.len, 3);
        assert_memory_equal(ev.data, "bye", 3);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p[0] = (uint8_t)(bad[i] >> 8);
        p[1] = (uint8_t)bad[i];
        n = client_frame(true, SH__WS_OP_CLOSE, p, 2, b);
        assert_int_equal(error_of(b, n), 1002);
    }
    /* reason not UTF-8 */
    p[0] = 0x03;
    p[1] = 0xE8;
    p[2] = 0xff;
    n = client_frame(true, SH__WS_OP_CLOSE, p, 3, b);
    assert_int_equal(error_of(b, n), 1007);
    /* 125-byte close payload passes; 126 is a 1002 */
    memset(p + 2, 'r', 123);
    n = client_frame(true, SH__WS_OP_CLOSE, p, 125, b);
    assert_int_equal(run(b, n, &ev, &code), SH__WS_OK);
    n = client_frame(true, SH__WS_OP_CLOSE, p, 126, b);
    assert_int_equal(error_of(b, n), 1002);
    /* input after a close is refused */
    struct sh__ws_reader r;
    size_t used;
    sh__ws_reader_init(&r, MAXMSG);
    n = client_frame(true, SH__WS_OP_CLOSE, "\x03\xe8", 2, b);
    n += client_frame(true, SH__WS_OP_TEXT, "x", 1, b + n);
    assert_int_equal(sh__ws_reader_feed(&r, b, n, &used, &ev, &code),
                     SH__WS_OK);
    assert_int_equal(sh__ws_reader_feed(&r, b + used, n - used, &used, &ev,
                                        &code), SH__WS_ERROR);
    sh__ws_reader_clear(&r);
}

static void test_close_encode(void **state)
{
    (void)state;
    uint8_t out[200];
    size_t n;
    char reason[124];

    assert_int_equal(sh__ws_close_encode(1000, "bye", 3, out, &n), SH_OK);
    assert_int_equal(n, 7);
    uint8_t want[] = { 0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e' };
    assert_memory_equal(out, want, 7);
    assert_int_equal(sh__ws_close_encode(4408, NULL, 0, out, &n), SH_OK);
    assert_int_equal(n, 4);
    static const unsigned never[] = { 1004, 1005, 1006, 1015, 0, 5000 };
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        assert_int_equal(sh__ws_close_encode(never[i], NULL, 0, out, &n),
                         SH_EINVAL);
        assert_int_equal(n, 0);
    }
    memset(reason, 'r', sizeof reason);
    assert_int_equal(sh__ws_close_encode(1001, reason, 123, out, &n), SH_OK);
    assert_int_equal(n, 127);
    assert_int_equal(sh__ws_close_encode(1001, reason, 124, out, &n),
                     SH_EINVAL);
    assert_int_equal(sh__ws_close_encode(1001, "\xc3", 1, out, &n),
                     SH_EINVAL);
}

static void test_shared_frame(void **state)
{
    (void)state;
    struct sh__ws_frame *f = sh__ws_frame_new(SH__WS_OP_TEXT, "{}", 2);
    assert_non_null(f);
    assert_int_equal(f->len, 4);
    assert_memory_equal(f->bytes, "\x81\x02{}", 4);
    struct sh__ws_frame *g = sh__ws_frame_ref(f);
    assert_ptr_equal(f, g);
    sh__ws_frame_unref(f);
    assert_int_equal(atomic_load(&g->refs), 1);
    sh__ws_frame_unref(g);
    sh__ws_frame_unref(NULL);
}

/* Whole input vs one byte at a time (growing prefix, as a connection
 * buffers it): same events. */
static void test_byte_at_a_time(void **state)
{
    (void)state;
    uint8_t whole[512], grow[512];
    size_t n = 0;
    char seen_a[256] = "", seen_b[256] = "";

    n += client_frame(false, SH__WS_OP_TEXT, "caf\xc3", 4, whole + n);
    n += client_frame(true, SH__WS_OP_PING, "p1", 2, whole + n);
    n += client_frame(true, SH__WS_OP_CONT, "\xa9!", 2, whole + n);
    n += client_frame(true, SH__WS_OP_TEXT, "second", 6, whole + n);
    n += client_frame(true, SH__WS_OP_CLOSE, "\x03\xe8ok", 4, whole + n);
    memcpy(grow, whole, n);

    for (int mode = 0; mode < 2; mode++) {
        uint8_t *buf = mode == 0 ? whole : grow;
        char *seen = mode == 0 ? seen_a : seen_b;
        struct sh__ws_reader r;
        size_t start = 0, avail = mode == 0 ? n : 0;
        sh__ws_reader_init(&r, MAXMSG);
        for (;;) {
            struct sh__ws_event ev;
            uint16_t code;
            size_t used;
            enum sh__ws_status st = sh__ws_reader_feed(
                &r, buf + start, avail - start, &used, &ev, &code);
            start += used;
            assert_int_not_equal(st, SH__WS_ERROR);
            if (st == SH__WS_NEED_MORE) {
                assert_true(avail < n);
                avail++;
                continue;
            }
            size_t l = strlen(seen);
            seen[l] = (char)('0' + ev.kind);
            memcpy(seen + l + 1, ev.data, ev.len);
            seen[l + 1 + ev.len] = '|';
            seen[l + 2 + ev.len] = '\0';
            if (ev.kind == SH__WS_EV_CLOSE)
                break;
        }
        sh__ws_reader_clear(&r);
    }
    assert_string_equal(seen_a, seen_b);
    assert_string_equal(seen_a, "2p1|1caf\xc3\xa9!|1second|4ok|");
}

/* ---- handshake ------------------------------------------------------ */

static struct sh__http_header hs_headers[8];
static struct sh__http_request hs_req;

static void hs_set(const char *method, size_t nh, const char *const *kv)
{
    memset(&hs_req, 0, sizeof hs_req);
    hs_req.method = method;
    hs_req.target = "/ws";
    hs_req.http_major = 1;
    hs_req.http_minor = 1;
    for (size_t i = 0; i < nh; i++) {
        hs_headers[i].name = kv[2 * i];
        hs_headers[i].name_len = strlen(kv[2 * i]);
        hs_headers[i].value = kv[2 * i + 1];
        hs_headers[i].value_len = strlen(kv[2 * i + 1]);
    }
    hs_req.headers = hs_headers;
    hs_req.nheaders = nh;
}

static void test_handshake(void **state)
{
    (void)state;
    static const char *const protos[] = { "streamhub.v1",
                                          "graphql-transport-ws" };
    struct sh__ws_handshake hs;
    char resp[512];
    const char *ok[] = {
        "Host", "server.example.com",
        "Upgrade", "websocket",
        "Connection", "keep-alive, Upgrade",
        "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version", "13",
        "Sec-WebSocket-Protocol", "chat, graphql-transport-ws, streamhub.v1",
        "Sec-WebSocket-Extensions", "permessage-deflate",
    };

    hs_set("GET", 7, ok);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 101);
    /* RFC 6455 1.3 example */
    assert_string_equal(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_string_equal(hs.protocol, "graphql-transport-ws");
    size_t n = sh__ws_handshake_response(&hs, resp, sizeof resp);
    assert_true(n > 0);
    assert_non_null(strstr(resp, "Sec-WebSocket-Protocol: "
                                 "graphql-transport-ws\r\n"));
    assert_null(strstr(resp, "Extensions"));
    assert_int_equal(sh__ws_handshake_response(&hs, resp, 10), 0);

    /* no protocol offered */
    hs_set("GET", 5, ok);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 101);
    assert_null(hs.protocol);

    /* case-insensitive tokens */
    const char *ci[] = { "upgrade", "WebSocket", "connection", "UPGRADE",
                         "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==",
                         "sec-websocket-version", "13" };
    hs_set("GET", 4, ci);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 101);

    hs_set("POST", 5, ok);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 405);
    hs_set("GET", 5, ok);
    hs_req.http_minor = 0;
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 400);

    const char *ver[] = { "Upgrade", "websocket", "Connection", "Upgrade",
                          "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                          "Sec-WebSocket-Version", "8" };
    hs_set("GET", 4, ver);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 426);
    n = sh__ws_handshake_response(&hs, resp, sizeof resp);
    assert_non_null(strstr(resp, "426"));
    assert_non_null(strstr(resp, "Sec-WebSocket-Version: 13\r\n"));

    static const char *const bad_keys[] = {
        "", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
        "dGhlIHNhbXBsZSBub25jZ===", /* 15 bytes */
        "dGhlIHNhbXBsZSBub25jZQ-=", "dGhlIHNhbXBsZSBub25jZXhh", /* 18 */
        "!!!!!!!!!!!!!!!!!!!!!!==",
    };
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        const char *bk[] = { "Upgrade", "websocket", "Connection", "Upgrade",
                             "Sec-WebSocket-Key", bad_keys[i],
                             "Sec-WebSocket-Version", "13" };
        hs_set("GET", 4, bk);
        assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs),
                         400);
    }
    const char *two_keys[] = { "Upgrade", "websocket", "Connection", "Upgrade",
                               "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                               "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                               "Sec-WebSocket-Version", "13" };
    hs_set("GET", 5, two_keys);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 400);
    const char *no_upg[] = { "Upgrade", "h2c", "Connection", "Upgrade",
                             "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                             "Sec-WebSocket-Version", "13" };
    hs_set("GET", 4, no_upg);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 400);
    const char *no_conn[] = { "Upgrade", "websocket", "Connection",
                              "keep-alive, upgraded",
                              "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
                              "Sec-WebSocket-Version", "13" };
    hs_set("GET", 4, no_conn);
    assert_int_equal(sh__ws_handshake_check(&hs_req, protos, 2, &hs), 400);
}

/* ---- differential test against wslay -------------------------------- */

#ifdef SH_HAVE_WSLAY
struct wire {
    uint8_t *buf;
    size_t len, cap, rpos;
};

static ssize_t w_send(const uint8_t *data, size_t len, int flags, void *u)
{
    struct wire *w = u;
    (void)flags;
    if (w->len + len > w->cap)
        return WSLAY_ERR_WOULDBLOCK;
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    return (ssize_t)len;
}

static ssize_t w_recv(uint8_t *buf, size_t len, int flags, void *u)
{
    struct wire *w = u;
    (void)flags;
    size_t k = w->len - w->rpos < len ? w->len - w->rpos : len;
    if (k == 0)
        return WSLAY_ERR_WOULDBLOCK;
    memcpy(buf, w->buf + w->rpos, k);
    w->rpos += k;
    return (ssize_t)k;
}

static int w_mask(uint8_t *buf, size_t len, void *u)
{
    (void)u;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(random() & 0xFF);
    return 0;
}

static void test_differential_wslay(void **state)
{
    (void)state;
    struct wslay_frame_callbacks cb = { w_send, w_recv, w_mask };
    static const uint8_t ops[] = { SH__WS_OP_TEXT, SH__WS_OP_BINARY,
                                   SH__WS_OP_PING, SH__WS_OP_PONG,
                                   SH__WS_OP_CLOSE, SH__WS_OP_CONT };
    static const size_t sizes[] = { 0, 1, 7, 125, 126, 127, 1000, 65535,
                                    65536, 70000 };
    struct wire w = { malloc(1 << 20), 0, 1 << 20, 0 };
    uint8_t *payload = malloc(70000);
    wslay_frame_context_ptr ctx;

    srandom(6455);
    assert_int_equal(wslay_frame_context_init(&ctx, &cb, &w), 0);
    for (int iter = 0; iter < 400; iter++) {
        uint8_t op = ops[random() % 6];
        size_t len = sizes[random() % 10];
        bool fin = (random() & 1) != 0;
        if (op & 8) {
            fin = true;
            if (len > 125)
                len = (size_t)random() % 126;
        }
        for (size_t i = 0; i < len; i++)
            payload[i] = (uint8_t)random();

        /* wslay (client, masked) -> ours */
        w.len = w.rpos = 0;
        struct wslay_frame_iocb io = { 0 };
        io.fin = fin;
        io.opcode = op;
        io.mask = 1;
        io.payload_length = len;
        io.data = payload;
        io.data_length = len;
        ssize_t sent = wslay_frame_send(ctx, &io);
        assert_true(sent == (ssize_t)len);
        struct sh__ws_frame_view f;
        uint16_t code;
        assert_int_equal(sh__ws_parse_frame(w.buf, w.len, 1 << 20, &f,
                                            &code), SH__WS_OK);
        assert_int_equal(f.frame_len, w.len);
        assert_int_equal(f.fin, fin);
        assert_int_equal(f.opcode, op);
        assert_int_equal(f.len, len);
        if (len > 0)
            assert_memory_equal(f.payload, payload, len);
        /* every proper prefix: need more, never a verdict */
        for (size_t cut = 0; cut < w.len && cut < 20; cut++)
            assert_int_equal(sh__ws_parse_frame(w.buf, cut, 1 << 20, &f,
                                                &code), SH__WS_NEED_MORE);

        /* ours (server, unmasked) -> wslay */
        w.len = w.rpos = 0;
        w.len = sh__ws_frame_encode(op, payload, len, w.buf);
        size_t got = 0;
        struct wslay_frame_iocb in;
        uint8_t *acc = malloc(len + 1);
        do {
            memset(&in, 0, sizeof in);
            ssize_t r = wslay_frame_recv(ctx, &in);
            assert_true(r >= 0);
            assert_int_equal(in.opcode, op);
            assert_int_equal(in.fin, 1);
            assert_int_equal(in.mask, 0);
            assert_int_equal(in.rsv, 0);
            assert_int_equal(in.payload_length, len);
            if (in.data_length > 0)
                memcpy(acc + got, in.data, in.data_length);
            got += in.data_length;
        } while (got < len);
        if (len > 0)
            assert_memory_equal(acc, payload, len);
        assert_int_equal(w.rpos, w.len);
        free(acc);
    }
    wslay_frame_context_free(ctx);
    free(payload);
    free(w.buf);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_fragments_with_ping),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_lengths_and_limit),
        cmocka_unit_test(test_fragmented_limit),
        cmocka_unit_test(test_fragmentation_rules),
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_close_rules),
        cmocka_unit_test(test_close_encode),
        cmocka_unit_test(test_shared_frame),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_handshake),
#ifdef SH_HAVE_WSLAY
        cmocka_unit_test(test_differential_wslay),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
