/* libstreamhub/gateway/gateway_int.h: the pure protocol layers of the
 * gateway: the WebSocket codec (ws_codec.c, RFC 6455) and the HTTP/1.1
 * request layer (http_conn.c, RFC 9112, over http-parser).
 *
 * Neither touches a socket, a loop or a clock: bytes in, frames, messages
 * and requests out.  The connection code feeds them what it reads and
 * writes what they produce.  @locality: one connection's objects belong to
 * that connection's loop thread; the shared frames (sh__ws_frame) alone
 * cross threads, through their atomic reference count.
 */
#ifndef SH_GATEWAY_INT_H
#define SH_GATEWAY_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8_int.h"
#include "streamhub/error.h"

/* ======================================================================
 * WebSocket (ws_codec.c)
 * ==================================================================== */

enum sh__ws_opcode {
    SH__WS_OP_CONT = 0x0,
    SH__WS_OP_TEXT = 0x1,
    SH__WS_OP_BINARY = 0x2,
    SH__WS_OP_CLOSE = 0x8,
    SH__WS_OP_PING = 0x9,
    SH__WS_OP_PONG = 0xA
};

/* Close codes we send (PROTOCOL.md). */
enum {
    SH__WS_CLOSE_NORMAL = 1000,
    SH__WS_CLOSE_GOING_AWAY = 1001,
    SH__WS_CLOSE_PROTOCOL = 1002,
    SH__WS_CLOSE_UNSUPPORTED = 1003,
    SH__WS_CLOSE_NO_STATUS = 1005,   /* never sent: "the peer gave none" */
    SH__WS_CLOSE_BAD_DATA = 1007,
    SH__WS_CLOSE_TOO_BIG = 1009,
    SH__WS_CLOSE_INTERNAL = 1011,
    SH__WS_CLOSE_NOT_JSON = 4400,
    SH__WS_CLOSE_UNAUTHENTICATED = 4401,
    SH__WS_CLOSE_TOO_SLOW = 4408
};

enum sh__ws_status {
    SH__WS_NEED_MORE = 0,   /* nothing complete yet: read more, call again */
    SH__WS_OK = 1,          /* a frame (or an event) was produced */
    SH__WS_ERROR = 2        /* fail the connection with *close_code */
};

/* One parsed frame.  @payload points into the caller's buffer, unmasked in
 * place; it lives as long as that buffer. */
struct sh__ws_frame_view {
    bool fin;
    uint8_t opcode;           /* enum sh__ws_opcode */
    uint8_t *payload;
    size_t len;
    size_t frame_len;         /* header + payload bytes consumed */
};

/* Parse one client-to-server frame at @buf[0..@n).
 *
 * Zero-copy and stateless: call again with more bytes appended until it
 * returns OK; the payload is unmasked in place only then, so re-parsing a
 * growing prefix is safe.  Checks are made as soon as the bytes that
 * decide them are present: reserved bits, opcode, mask bit, control frame
 * rules, minimal length encoding and the length limit are all judged from
 * the header, before the payload arrives (so a caller never buffers more
 * than @max_payload + 14 bytes).
 *
 * @max_payload  limit for data frames (control frames: 125); over it ->
 *               ERROR 1009.
 * Returns NEED_MORE, OK (*@f filled), or ERROR with *@close_code: 1002 for
 * RSV bits, unknown opcodes, unmasked frames, fragmented or > 125 byte
 * control frames, 64-bit lengths with the top bit set and non-minimal
 * lengths; 1009 for lengths over @max_payload. */
enum sh__ws_status sh__ws_parse_frame(uint8_t *buf, size_t n,
                                      uint64_t max_payload,
                                      struct sh__ws_frame_view *f,
                                      uint16_t *close_code);

/* What the message reader produced. */
enum sh__ws_event_kind {
    SH__WS_EV_TEXT = 1,       /* a complete, valid UTF-8 text message */
    SH__WS_EV_PING,
    SH__WS_EV_PONG,
    SH__WS_EV_CLOSE           /* a valid close: answer it and close */
};

struct sh__ws_event {
    enum sh__ws_event_kind kind;
    const uint8_t *data;      /* message, ping/pong payload, close reason */
    size_t len;
    uint16_t close_code;      /* CLOSE: the peer's code, or 1005 if none */
};

/* A message reader: frames -> messages over one connection's input.
 *
 * Invariants:
 *  1. opcode != 0 iff a fragmented message is in progress; then buf holds
 *     its len bytes so far and utf8 has checked all of them.
 *  2. len <= max_message; buf grows only to hold accepted fragments.
 *  3. After an ERROR or a CLOSE event the reader refuses all input.
 */
struct sh__ws_reader {
    size_t max_message;       /* ws.max-message-bytes */
    uint8_t opcode;           /* of the message in progress, or 0 */
    uint8_t *buf;             /* owned: fragments so far */
    size_t len, cap;
    struct sh__utf8_state utf8;
    bool done;                /* see 3 */
};

void sh__ws_reader_init(struct sh__ws_reader *r, size_t max_message);
/* Free the fragment buffer; the reader may be re-initialised. */
void sh__ws_reader_clear(struct sh__ws_reader *r);

/* Consume frames from @buf[0..@n) until one event is ready.
 *
 * *@consumed gets the bytes used (whole frames only), which the caller
 * drops before the next call; the rest is an incomplete frame.  Returns
 * OK with *@ev (its data live until the next call or the buffer changes),
 * NEED_MORE (every complete frame was consumed, no event yet), or ERROR
 * with *@close_code: the frame errors of sh__ws_parse_frame, 1002 for a
 * continuation without a start or a new data frame inside a fragmented
 * message, a 1-byte close payload or an invalid close code, 1003 for a
 * binary message (refused at its first frame), 1007 for text or a close
 * reason that is not UTF-8 (found at the first bad fragment), 1009 for a
 * message over max_message across its fragments, 1011 when out of memory.
 * Control frames between fragments are reported at once. */
enum sh__ws_status sh__ws_reader_feed(struct sh__ws_reader *r, uint8_t *buf,
                                      size_t n, size_t *consumed,
                                      struct sh__ws_event *ev,
                                      uint16_t *close_code);

/* True when a close frame may carry @code (RFC 6455 7.4 and the IANA
 * registry): 1000-1003, 1007-1014, 3000-4999.  1004, 1005, 1006, 1015 and
 * the rest are not. */
bool sh__ws_close_code_valid(unsigned code);

/* Bytes of the header of an unmasked frame with @len payload bytes. */
static inline size_t sh__ws_header_size(size_t len)
{
    return len <= 125 ? 2 : len <= 0xFFFF ? 4 : 10;
}

/* Write a server-to-client frame (FIN set, unmasked) into @out, which holds
 * at least sh__ws_header_size(@len) + @len bytes.  Returns the bytes
 * written.  @payload may be NULL when @len is 0. */
size_t sh__ws_frame_encode(uint8_t opcode, const void *payload, size_t len,
                           uint8_t *out);

/* An encoded frame shared by every subscriber of a fan-out: one allocation
 * per event, written to any number of connections, freed by the last
 * unref.  bytes[] is immutable once built. */
struct sh__ws_frame {
    atomic_uint refs;
    size_t len;
    uint8_t bytes[];
};

/* A new frame with one reference, or NULL when out of memory. */
struct sh__ws_frame *sh__ws_frame_new(uint8_t opcode, const void *payload,
                                      size_t len);
struct sh__ws_frame *sh__ws_frame_ref(struct sh__ws_frame *f);
/* Drop one reference; NULL is a no-op.  Any thread. */
void sh__ws_frame_unref(struct sh__ws_frame *f);

/* Build a close frame: @code (sh__ws_close_code_valid, never 1005/1006/
 * 1015), @reason (UTF-8, at most 123 bytes, may be NULL when @reason_len is
 * 0) into @out (at least 2 + 125 bytes).  *@out_len gets its size.
 * Errors: SH_EINVAL (code or reason unfit; nothing written). */
sh_err_t sh__ws_close_encode(unsigned code, const char *reason,
                             size_t reason_len, uint8_t *out,
                             size_t *out_len);

/* ---- opening handshake (RFC 6455 4.2) ------------------------------- */

struct sh__http_request;

#define SH__WS_ACCEPT_LEN 28

struct sh__ws_handshake {
    int status;                        /* 101, 400, 405 or 426 */
    const char *error;                 /* static text when status != 101 */
    char accept[SH__WS_ACCEPT_LEN + 1]; /* Sec-WebSocket-Accept */
    const char *protocol;              /* chosen, one of @protocols, or NULL */
};

/* Check an upgrade request and prepare the answer.  @protocols lists the
 * subprotocols this endpoint speaks (e.g. "streamhub.v1" for /ws,
 * "graphql-transport-ws" for /graphql), most preferred first; the first
 * one the client offers is chosen (none offered or none shared: NULL, and
 * the caller decides).  Extensions (permessage-deflate) are never
 * negotiated.  Returns hs->status: 101 when the switch may happen; 426
 * when the version is not 13 (answer with "Sec-WebSocket-Version: 13");
 * 405 for a method other than GET; 400 otherwise. */
int sh__ws_handshake_check(const struct sh__http_request *req,
                           const char *const *protocols, size_t nprotocols,
                           struct sh__ws_handshake *hs);

/* Sec-WebSocket-Accept for @key (@key_len bytes): base64(SHA-1(key GUID))
 * into @out (SH__WS_ACCEPT_LEN + 1 bytes).  Errors: SH_EINTERNAL. */
sh_err_t sh__ws_accept_key(const char *key, size_t key_len,
                           char out[SH__WS_ACCEPT_LEN + 1]);

/* Write the response of a handshake (101 with its headers, or the error
 * status with Connection: close, and for 426 Sec-WebSocket-Version: 13)
 * into @buf.  Returns its length, or 0 when @cap is too small. */
size_t sh__ws_handshake_response(const struct sh__ws_handshake *hs,
                                 char *buf, size_t cap);

/* ======================================================================
 * HTTP/1.1 requests (http_conn.c)
 * ==================================================================== */

struct sh__http_limits {
    size_t max_header_bytes;  /* http.max-header-bytes: request line and
                                 header section, CRLFs included -> 431 */
    size_t max_headers;       /* http.max-headers -> 431 */
    size_t max_body_bytes;    /* http.max-body-bytes -> 413 */
    size_t max_pipelined;     /* complete requests queued before feed
                                 stops consuming (backpressure); >= 1 */
};

struct sh__http_header {
    const char *name;         /* NUL-terminated, as received */
    size_t name_len;
    const char *value;        /* NUL-terminated, OWS trimmed */
    size_t value_len;
};

/* One complete request.  Every pointer points into the request's own
 * storage and lives until sh__http_request_free(). */
struct sh__http_request {
    const char *method;       /* "GET", "POST", ... */
    const char *target;       /* request-target as received */
    size_t target_len;
    unsigned http_major, http_minor;
    struct sh__http_header *headers;
    size_t nheaders;
    uint8_t *body;            /* NULL when empty */
    size_t body_len;
    bool keep_alive;          /* RFC 9112 9.3 (1.0 vs 1.1 defaults) */
    bool upgrade;             /* Connection: upgrade + Upgrade: (see feed) */
};

void sh__http_request_free(struct sh__http_request *req);
/* The first header named @name (case-insensitive) or NULL; *@count (may
 * be NULL) gets how many there are. */
const struct sh__http_header *sh__http_request_header(
    const struct sh__http_request *req, const char *name, size_t *count);

enum sh__http_status {
    SH__HTTP_OK = 0,          /* fed; pop requests with sh__http_conn_next */
    SH__HTTP_UPGRADE,         /* an upgrade request ended the HTTP stream */
    SH__HTTP_ERROR            /* answer sh__http_conn_error() and close */
};

struct sh__http_conn;

/* A parser for one connection.  *@lim is copied.  Errors: SH_ENOMEM,
 * SH_EINVAL (a limit of 0 where one is needed). */
sh_err_t sh__http_conn_new(const struct sh__http_limits *lim,
                           struct sh__http_conn **out);
/* NULL is a no-op; queued requests are freed too. */
void sh__http_conn_free(struct sh__http_conn *c);

/* Feed @n bytes read from the connection.  *@consumed gets the bytes used:
 * all of them unless max_pipelined requests are waiting (pop some, then
 * feed the rest) or an upgrade request ended: then the bytes from
 * *@consumed on belong to the new protocol (the WebSocket codec).  The
 * upgrade request is the last one sh__http_conn_next() returns.  After an
 * upgrade or an error every feed returns the same status and consumes
 * nothing.  The caller either switches protocols or answers and closes:
 * HTTP does not resume after an upgrade request.
 *
 * ERROR means the request stream cannot be framed safely (RFC 9112
 * request smuggling shapes, limits): answer sh__http_conn_error()'s status
 * with "Connection: close" after the requests already queued, then
 * close. */
enum sh__http_status sh__http_conn_feed(struct sh__http_conn *c,
                                        const uint8_t *data, size_t n,
                                        size_t *consumed);

/* The next complete request, in arrival order, or NULL.  The caller owns
 * it (sh__http_request_free). */
struct sh__http_request *sh__http_conn_next(struct sh__http_conn *c);

/* After ERROR: the status to answer (400, 405, 413, 431, 501, 505) and a
 * static reason for the log; else 0 and "". */
int sh__http_conn_error(const struct sh__http_conn *c, const char **why);

#endif
