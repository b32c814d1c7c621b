/* libstreamhub/gateway/ws_codec.c: RFC 6455 framing for the gateway.
 *
 * Input side.  sh__ws_parse_frame() judges one client frame from the bytes
 * the connection has buffered, without copying: every rule that the header
 * can decide (RSV bits, opcode, mask, control frame rules, minimal length,
 * size limit) is decided from the first 2..14 bytes, so a hostile length is
 * refused before anything is allocated or buffered for it.  Payloads are
 * unmasked in place once complete.  sh__ws_reader_feed() turns frames into
 * messages: a single-frame text message is handed out as a pointer into the
 * input (the common case: no copy); fragments are gathered in a buffer
 * bounded by ws.max-message-bytes and checked as UTF-8 fragment by fragment,
 * so bad text fails at the first fragment that holds it.  Control frames
 * between fragments come out at once.
 *
 *   reader:  IDLE --TEXT fin--> event          IDLE --TEXT !fin--> FRAG
 *            FRAG --CONT !fin--> FRAG          FRAG --CONT fin--> event, IDLE
 *            any  --PING/PONG--> event         any  --CLOSE--> event, DONE
 *            any  --error--> DONE (every later feed fails)
 *
 * Output side.  Server frames are never masked (5.1); sh__ws_frame is the
 * one allocation per fan-out event that every subscriber shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "gateway_int.h"

/* ---- frames in ------------------------------------------------------ */

static bool opcode_known(unsigned op)
{
    return op <= SH__WS_OP_BINARY || (op >= SH__WS_OP_CLOSE &&
                                      op <= SH__WS_OP_PONG);
}

static void unmask(uint8_t *p, size_t len, const uint8_t key[4])
{
    uint64_t k8;
    uint8_t k[8];
    size_t i = 0;

    for (int j = 0; j < 8; j++)
        k[j] = key[j & 3];
    memcpy(&k8, k, 8);
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] ^= key[i & 3];
}

enum sh__ws_status sh__ws_parse_frame(uint8_t *buf, size_t n,
                                      uint64_t max_payload,
                                      struct sh__ws_frame_view *f,
                                      uint16_t *close_code)
{
    unsigned op;
    bool fin, control;
    uint64_t len;
    size_t hdr;

    if (n < 1)
        return SH__WS_NEED_MORE;
    fin = (buf[0] & 0x80) != 0;
    op = buf[0] & 0x0F;
    control = (op & 0x8) != 0;
    /* No extension is ever negotiated, so RSV1-3 must be 0 (5.2). */
    if ((buf[0] & 0x70) != 0 || !opcode_known(op) || (control && !fin))
        goto protocol;
    if (n < 2)
        return SH__WS_NEED_MORE;
    if ((buf[1] & 0x80) == 0)          /* clients always mask (5.1) */
        goto protocol;
    len = buf[1] & 0x7F;
    hdr = 2;
    if (control && len > 125)
        goto protocol;
    if (len == 126) {
        if (n < 4)
            return SH__WS_NEED_MORE;
        len = (uint64_t)buf[2] << 8 | buf[3];
        if (len < 126)                 /* "the minimal number of bytes" */
            goto protocol;
        hdr = 4;
    } else if (len == 127) {
        if (n < 10)
            return SH__WS_NEED_MORE;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | buf[i];
        if ((len >> 63) != 0 || len <= 0xFFFF)
            goto protocol;
        hdr = 10;
    }
    if (!control && len > max_payload) {
        *close_code = SH__WS_CLOSE_TOO_BIG;
        return SH__WS_ERROR;
    }
    if (n < hdr + 4 || n - hdr - 4 < len)
        return SH__WS_NEED_MORE;
    /* len <= n here, so it fits a size_t. */
    f->fin = fin;
    f->opcode = (uint8_t)op;
    f->payload = buf + hdr + 4;
    f->len = (size_t)len;
    f->frame_len = hdr + 4 + (size_t)len;
    unmask(f->payload, f->len, buf + hdr);
    return SH__WS_OK;
protocol:
    *close_code = SH__WS_CLOSE_PROTOCOL;
    return SH__WS_ERROR;
}

/* ---- messages ------------------------------------------------------- */

void sh__ws_reader_init(struct sh__ws_reader *r, size_t max_message)
{
    memset(r, 0, sizeof *r);
    r->max_message = max_message;
}

void sh__ws_reader_clear(struct sh__ws_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
    r->opcode = 0;
}

bool sh__ws_close_code_valid(unsigned code)
{
    /* 1012-1014 are registered with IANA (service restart, try again
     * later, bad gateway); 1004 is reserved; 1005, 1006 and 1015 exist
     * only as local signals and must never be on the wire. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static bool append(struct sh__ws_reader *r, const uint8_t *p, size_t len)
{
    size_t need = r->len + len;    /* <= max_message: checked by the parser */

    if (need > r->cap) {
        size_t cap = r->cap < 256 ? 256 : r->cap;
        while (cap < need)
            cap = cap > r->max_message / 2 ? r->max_message : cap * 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (nb == NULL)
            return false;
        r->buf = nb;
        r->cap = cap;
    }
    if (len > 0)
        memcpy(r->buf + r->len, p, len);
    r->len = need;
    return true;
}

static enum sh__ws_status fail(struct sh__ws_reader *r, uint16_t *close_code,
                               uint16_t code)
{
    r->done = true;
    *close_code = code;
    return SH__WS_ERROR;
}

enum sh__ws_status sh__ws_reader_feed(struct sh__ws_reader *r, uint8_t *buf,
                                      size_t n, size_t *consumed,
                                      struct sh__ws_event *ev,
                                      uint16_t *close_code)
{
    size_t off = 0;

    *consumed = 0;
    if (r->done)
        return fail(r, close_code, SH__WS_CLOSE_PROTOCOL);
    if (r->opcode == 0)
        r->len = 0;                /* a message handed out last time */
    for (;;) {
        struct sh__ws_frame_view f;
        uint64_t room = r->max_message - (r->opcode != 0 ? r->len : 0);
        enum sh__ws_status st = sh__ws_parse_frame(buf + off, n - off, room,
                                                   &f, close_code);
        if (st == SH__WS_NEED_MORE) {
            *consumed = off;
            return SH__WS_NEED_MORE;
        }
        if (st == SH__WS_ERROR)
            return fail(r, close_code, *close_code);
        off += f.frame_len;
        *consumed = off;

        switch (f.opcode) {
        case SH__WS_OP_PING:
        case SH__WS_OP_PONG:
            ev->kind = f.opcode == SH__WS_OP_PING ? SH__WS_EV_PING
                                                  : SH__WS_EV_PONG;
            ev->data = f.payload;
            ev->len = f.len;
            ev->close_code = 0;
            return SH__WS_OK;
        case SH__WS_OP_CLOSE: {
            unsigned code = SH__WS_CLOSE_NO_STATUS;
            if (f.len == 1)
                return fail(r, close_code, SH__WS_CLOSE_PROTOCOL);
            if (f.len >= 2) {
                code = (unsigned)f.payload[0] << 8 | f.payload[1];
                if (!sh__ws_close_code_valid(code))
                    return fail(r, close_code, SH__WS_CLOSE_PROTOCOL);
                if (!sh__utf8_validate(f.payload + 2, f.len - 2))
                    return fail(r, close_code, SH__WS_CLOSE_BAD_DATA);
            }
            r->done = true;
            ev->kind = SH__WS_EV_CLOSE;
            ev->data = f.len >= 2 ? f.payload + 2 : f.payload;
            ev->len = f.len >= 2 ? f.len - 2 : 0;
            ev->close_code = (uint16_t)code;
            return SH__WS_OK;
        }
        case SH__WS_OP_BINARY:
            if (r->opcode != 0)
                return fail(r, close_code, SH__WS_CLOSE_PROTOCOL);
            return fail(r, close_code, SH__WS_CLOSE_UNSUPPORTED);
        case SH__WS_OP_TEXT:
            if (r->opcode != 0)
                return fail(r, close_code, SH__WS_CLOSE_PROTOCOL);
            sh__utf8_init(&r->utf8);
            break;
        default: /* SH__WS_OP_CONT */
            if (r->opcode == 0)
                return fail(r, close_code, SH__WS_CLOSE_PROTOCOL);
            break;
        }

        /* A text fragment: check it before keeping it. */
        enum sh__utf8_status u = sh__utf8_feed(&r->utf8, f.payload, f.len,
                                               NULL);
        if (u == SH__UTF8_INVALID || (f.fin && u != SH__UTF8_OK))
            return fail(r, close_code, SH__WS_CLOSE_BAD_DATA);
        if (f.opcode == SH__WS_OP_TEXT && f.fin) {
            ev->kind = SH__WS_EV_TEXT;      /* zero copy */
            ev->data = f.payload;
            ev->len = f.len;
            ev->close_code = 0;
            return SH__WS_OK;
        }
        if (!append(r, f.payload, f.len))
            return fail(r, close_code, SH__WS_CLOSE_INTERNAL);
        r->opcode = SH__WS_OP_TEXT;
        if (f.fin) {
            r->opcode = 0;                  /* r->len reset next call */
            ev->kind = SH__WS_EV_TEXT;
            ev->data = r->buf;
            ev->len = r->len;
            ev->close_code = 0;
            return SH__WS_OK;
        }
    }
}

/* ---- frames out ----------------------------------------------------- */

size_t sh__ws_frame_encode(uint8_t opcode, const void *payload, size_t len,
                           uint8_t *out)
{
    size_t hdr = sh__ws_header_size(len);

    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (hdr == 2) {
        out[1] = (uint8_t)len;
    } else if (hdr == 4) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
    } else {
        uint64_t l = len;
        out[1] = 127;
        for (int i = 9; i >= 2; i--) {
            out[i] = (uint8_t)l;
            l >>= 8;
        }
    }
    if (len > 0)
        memcpy(out + hdr, payload, len);
    return hdr + len;
}

struct sh__ws_frame *sh__ws_frame_new(uint8_t opcode, const void *payload,
                                      size_t len)
{
    struct sh__ws_frame *f;
    size_t hdr = sh__ws_header_size(len);

    if (len > SIZE_MAX - sizeof *f - hdr)
        return NULL;
    f = malloc(sizeof *f + hdr + len);
    if (f == NULL)
        return NULL;
    atomic_init(&f->refs, 1);
    f->len = sh__ws_frame_encode(opcode, payload, len, f->bytes);
    return f;
}

struct sh__ws_frame *sh__ws_frame_ref(struct sh__ws_frame *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void sh__ws_frame_unref(struct sh__ws_frame *f)
{
    if (f != NULL &&
        atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

sh_err_t sh__ws_close_encode(unsigned code, const char *reason,
                             size_t reason_len, uint8_t *out,
                             size_t *out_len)
{
    uint8_t payload[125];

    *out_len = 0;
    if (!sh__ws_close_code_valid(code) || reason_len > 123 ||
        (reason_len > 0 && (reason == NULL ||
         !sh__utf8_validate((const uint8_t *)reason, reason_len))))
        return SH_EINVAL;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (reason_len > 0)
        memcpy(payload + 2, reason, reason_len);
    *out_len = sh__ws_frame_encode(SH__WS_OP_CLOSE, payload, 2 + reason_len,
                                   out);
    return SH_OK;
}

/* ---- opening handshake ---------------------------------------------- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

sh_err_t sh__ws_accept_key(const char *key, size_t key_len,
                           char out[SH__WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    out[0] = '\0';
    if (ctx == NULL)
        return SH_EINTERNAL;
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, key, key_len) == 1 &&
         EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return SH_EINTERNAL;
    /* 20 bytes -> 28 characters + NUL */
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != SH__WS_ACCEPT_LEN)
        return SH_EINTERNAL;
    return SH_OK;
}

/* Next element of a comma-separated list (RFC 9110 5.6.1) in
 * @v[*pos..@len), OWS trimmed; false at the end. */
static bool list_next(const char *v, size_t len, size_t *pos,
                      const char **tok, size_t *tok_len)
{
    while (*pos < len) {
        size_t start = *pos, end;
        while (*pos < len && v[*pos] != ',')
            (*pos)++;
        end = *pos;
        if (*pos < len)
            (*pos)++;              /* skip the comma */
        while (start < end && (v[start] == ' ' || v[start] == '\t'))
            start++;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start) {
            *tok = v + start;
            *tok_len = end - start;
            return true;
        }
    }
    return false;
}

/* True when any header @name holds the token @want (case-insensitive). */
static bool headers_have_token(const struct sh__http_request *req,
                               const char *name, const char *want)
{
    size_t wlen = strlen(want);

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sh__http_header *h = &req->headers[i];
        size_t pos = 0, tl;
        const char *t;
        if (strcasecmp(h->name, name) != 0)
            continue;
        while (list_next(h->value, h->value_len, &pos, &t, &tl))
            if (tl == wlen && strncasecmp(t, want, wlen) == 0)
                return true;
    }
    return false;
}

static int refuse(struct sh__ws_handshake *hs, int status, const char *why)
{
    hs->status = status;
    hs->error = why;
    hs->accept[0] = '\0';
    hs->protocol = NULL;
    return status;
}

int sh__ws_handshake_check(const struct sh__http_request *req,
                           const char *const *protocols, size_t nprotocols,
                           struct sh__ws_handshake *hs)
{
    const struct sh__http_header *h;
    unsigned char key[16];
    size_t count, keylen = 0;
    const char *end = NULL;

    hs->protocol = NULL;
    if (strcmp(req->method, "GET") != 0)
        return refuse(hs, 405, "WebSocket upgrade needs GET");
    if (req->http_major != 1 || req->http_minor != 1)
        return refuse(hs, 400, "WebSocket upgrade needs HTTP/1.1");
    if (!headers_have_token(req, "Upgrade", "websocket"))
        return refuse(hs, 400, "no Upgrade: websocket");
    if (!headers_have_token(req, "Connection", "upgrade"))
        return refuse(hs, 400, "no Connection: upgrade");
    h = sh__http_request_header(req, "Sec-WebSocket-Version", &count);
    if (h == NULL || count != 1 || strcmp(h->value, "13") != 0)
        return refuse(hs, 426, "Sec-WebSocket-Version must be 13");
    h = sh__http_request_header(req, "Sec-WebSocket-Key", &count);
    if (h == NULL || count != 1 || h->value_len != 24 ||
        sodium_base642bin(key, sizeof key, h->value, h->value_len, NULL,
                          &keylen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        keylen != 16 || end != h->value + 24)
        return refuse(hs, 400, "bad Sec-WebSocket-Key");
    if (sh__ws_accept_key(h->value, h->value_len, hs->accept) != SH_OK)
        return refuse(hs, 400, "cannot compute Sec-WebSocket-Accept");

    /* The client's order of preference decides among what we speak. */
    for (size_t i = 0; i < req->nheaders && hs->protocol == NULL; i++) {
        const struct sh__http_header *p = &req->headers[i];
        size_t pos = 0, tl;
        const char *t;
        if (strcasecmp(p->name, "Sec-WebSocket-Protocol") != 0)
            continue;
        while (hs->protocol == NULL &&
               list_next(p->value, p->value_len, &pos, &t, &tl))
            for (size_t k = 0; k < nprotocols; k++)
                if (strlen(protocols[k]) == tl &&
                    memcmp(protocols[k], t, tl) == 0) {
                    hs->protocol = protocols[k];
                    break;
                }
    }
    hs->status = 101;
    hs->error = "";
    return 101;
}

size_t sh__ws_handshake_response(const struct sh__ws_handshake *hs,
                                 char *buf, size_t cap)
{
    int n;

    if (hs->status == 101)
        n = snprintf(buf, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     hs->accept,
                     hs->protocol ? "Sec-WebSocket-Protocol: " : "",
                     hs->protocol ? hs->protocol : "",
                     hs->protocol ? "\r\n" : "");
    else
        n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "Content-Length: 0\r\n"
                     "\r\n",
                     hs->status,
                     hs->status == 426 ? "Upgrade Required"
                     : hs->status == 405 ? "Method Not Allowed"
                     : "Bad Request",
                     hs->status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                                       : "");
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
