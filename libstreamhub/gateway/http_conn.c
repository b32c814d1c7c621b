/* libstreamhub/gateway/http_conn.c: the HTTP/1.1 request layer.
 *
 * Parsing is http-parser's (the nodejs project's, widely fuzzed); this file
 * adds what a front door needs on top: limits, ordered pipelining, the
 * upgrade hand-off, and the RFC 9112 framing refusals that http-parser
 * 2.9 leaves to its user.  What http-parser's strict build refuses itself:
 * bad tokens in methods, targets and field names (so whitespace before the
 * colon), control characters in values, CR not followed by LF at line
 * ends, bad chunk-size digits and chunk-size overflow, malformed, signed or
 * overflowing Content-Length, duplicate Content-Length, Content-Length
 * together with Transfer-Encoding.  What it accepts and we refuse:
 *
 *  - bare LF line ends, CR inside a line, NUL, and obsolete line folding in
 *    the header and trailer sections: a byte scanner (scan_head) runs over
 *    exactly those sections before the parser sees them, and also finds
 *    where the header section ends, which bounds http.max-header-bytes
 *    before anything is stored;
 *  - chunk extensions (http-parser skips anything, LF and NUL included, up
 *    to the CR): chunk_line() checks each chunk-size line against the
 *    chunk-ext grammar;
 *  - Transfer-Encoding other than exactly "chunked", several TE fields, TE
 *    in HTTP/1.0, several Content-Length fields even when equal, a missing
 *    or repeated Host in HTTP/1.1, CONNECT.
 *
 * To know which bytes belong to which section, the parser is paused at
 * every section boundary (chunk header, chunk end, message end): each
 * http_parser_execute() call then covers bytes of one kind only, which are
 * checked right after it, before any request is handed out.
 *
 *   HEAD --scan to CRLFCRLF, execute--> BODY (or HEAD when bodiless)
 *   BODY: SIZE_LINE --chunk_header--> DATA --chunk_complete--> SIZE_LINE
 *         SIZE_LINE --last chunk--> TRAILER --message_complete--> HEAD
 *   any --upgrade--> UPGRADED      any --refusal--> ERROR
 *   a request without keep-alive --> DRAIN (later bytes are dropped)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "gateway_int.h"

enum phase { PH_HEAD, PH_BODY, PH_UPGRADED, PH_ERROR, PH_DRAIN };
enum seg { SEG_SIZE_LINE, SEG_DATA, SEG_TRAILER, SEG_PLAIN };

/* scan_head states */
enum { HS_PRE, HS_PRE_CR, HS_LINE, HS_CR, HS_BOL, HS_END_CR, HS_DONE,
       HS_BAD };
/* chunk_line states */
enum { CL_SIZE0, CL_SIZE, CL_SIZE_WS, CL_NAME0, CL_NAME, CL_NAME_WS, CL_VAL0,
       CL_VAL, CL_QS, CL_QP, CL_AFTER, CL_END, CL_DONE, CL_BAD };

struct hdr_ref {
    size_t name_off, name_len, val_off, val_len;
};

struct sh__http_conn {
    struct sh__http_limits lim;
    http_parser parser;
    http_parser_settings settings;
    enum phase phase;
    enum seg seg;
    int hs;                    /* scan_head state */
    int cl;                    /* chunk_line state */
    size_t head_bytes;         /* of this request's header+trailer sections */
    bool trailing;
    uint64_t data_left;        /* chunk data bytes before its CRLF */
    int crlf;                  /* bytes of that CRLF seen */
    bool completed;            /* a message completed in this execute */
    int last_cb;               /* 0, 1 field, 2 value (the usual pattern) */
    /* the request being built */
    char *arena;               /* owned: target\0 name\0 value\0 ... */
    size_t alen, acap;
    struct hdr_ref *hdr;       /* owned, lim.max_headers slots */
    size_t nh;
    size_t url_len;
    uint8_t *body;             /* owned */
    size_t blen, bcap;
    /* complete requests, oldest at qhead */
    struct sh__http_request **queue;
    size_t qhead, qlen;
    int err_status;
    const char *err_why;
};

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~",
                                                       c) != NULL);
}

/* Advance the header-section scanner over @p[0..@n); returns how many bytes
 * belong to the section (all of them unless its end is among them). */
static size_t scan_head(int *st, const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && *st != HS_DONE && *st != HS_BAD; i++) {
        uint8_t c = p[i];
        switch (*st) {
        case HS_PRE:
            *st = c == '\r' ? HS_PRE_CR : c == '\n' || c == 0 ? HS_BAD
                : HS_LINE;
            break;
        case HS_PRE_CR:
            *st = c == '\n' ? HS_PRE : HS_BAD;
            break;
        case HS_LINE:
            *st = c == '\r' ? HS_CR : c == '\n' || c == 0 ? HS_BAD : HS_LINE;
            break;
        case HS_CR:
            *st = c == '\n' ? HS_BOL : HS_BAD;
            break;
        case HS_BOL:                       /* SP/HT here: obs-fold */
            *st = c == '\r' ? HS_END_CR
                : (c == ' ' || c == '\t' || c == '\n' || c == 0) ? HS_BAD
                : HS_LINE;
            break;
        case HS_END_CR:
            *st = c == '\n' ? HS_DONE : HS_BAD;
            break;
        }
    }
    return i;
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* chunk = chunk-size [ chunk-ext ] CRLF;
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted ) ] ) */
static void chunk_line(int *st, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && *st != CL_BAD; i++) {
        uint8_t c = p[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                   (c >= 'A' && c <= 'F');
        int s = *st;
        switch (s) {
        case CL_SIZE0:
            s = hex ? CL_SIZE : CL_BAD;
            break;
        case CL_SIZE:
            s = hex ? CL_SIZE : c == ';' ? CL_NAME0 : is_ws(c) ? CL_SIZE_WS
                : c == '\r' ? CL_END : CL_BAD;
            break;
        case CL_SIZE_WS:
            s = is_ws(c) ? CL_SIZE_WS : c == ';' ? CL_NAME0 : CL_BAD;
            break;
        case CL_NAME0:
            s = is_ws(c) ? CL_NAME0 : is_tchar(c) ? CL_NAME : CL_BAD;
            break;
        case CL_NAME:
            s = is_tchar(c) ? CL_NAME : is_ws(c) ? CL_NAME_WS
                : c == '=' ? CL_VAL0 : c == ';' ? CL_NAME0
                : c == '\r' ? CL_END : CL_BAD;
            break;
        case CL_NAME_WS:
            s = is_ws(c) ? CL_NAME_WS : c == '=' ? CL_VAL0
                : c == ';' ? CL_NAME0 : CL_BAD;
            break;
        case CL_VAL0:
            s = is_ws(c) ? CL_VAL0 : is_tchar(c) ? CL_VAL
                : c == '"' ? CL_QS : CL_BAD;
            break;
        case CL_VAL:
            s = is_tchar(c) ? CL_VAL : is_ws(c) ? CL_AFTER
                : c == ';' ? CL_NAME0 : c == '\r' ? CL_END : CL_BAD;
            break;
        case CL_QS:
            s = c == '"' ? CL_AFTER : c == '\\' ? CL_QP
                : (c == '\t' || c >= 0x20) && c != 0x7F ? CL_QS : CL_BAD;
            break;
        case CL_QP:
            s = (c == '\t' || c >= 0x20) && c != 0x7F ? CL_QS : CL_BAD;
            break;
        case CL_AFTER:
            s = is_ws(c) ? CL_AFTER : c == ';' ? CL_NAME0
                : c == '\r' ? CL_END : CL_BAD;
            break;
        case CL_END:
            s = c == '\n' ? CL_DONE : CL_BAD;
            break;
        default:                      /* a byte after the line: a bug */
            s = CL_BAD;
            break;
        }
        *st = s;
    }
}

/* ---- the request under construction -------------------------------- */

static int refuse(struct sh__http_conn *c, int status, const char *why)
{
    if (c->err_status == 0) {
        c->err_status = status;
        c->err_why = why;
    }
    return -1;                         /* stops http-parser */
}

static bool arena_add(struct sh__http_conn *c, const char *p, size_t n)
{
    if (c->alen + n + 1 > c->acap) {
        size_t cap = c->acap ? c->acap : 256;
        while (cap < c->alen + n + 1)
            cap *= 2;
        char *a = realloc(c->arena, cap);
        if (a == NULL)
            return false;
        c->arena = a;
        c->acap = cap;
    }
    memcpy(c->arena + c->alen, p, n);
    c->alen += n;
    return true;
}

static void build_reset(struct sh__http_conn *c)
{
    c->alen = 0;
    c->nh = 0;
    c->url_len = 0;
    free(c->body);
    c->body = NULL;
    c->blen = c->bcap = 0;
    c->last_cb = 0;
    c->trailing = false;
    c->head_bytes = 0;
    c->hs = HS_PRE;
    c->seg = SEG_PLAIN;
}

static struct sh__http_conn *conn_of(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct sh__http_conn *c = conn_of(p);
    int hs = c->hs;                    /* the scanner ran ahead: keep it */
    size_t head = c->head_bytes;

    build_reset(c);
    c->hs = hs;
    c->head_bytes = head;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct sh__http_conn *c = conn_of(p);

    if (!arena_add(c, at, len))
        return refuse(c, 500, "out of memory");
    c->url_len += len;
    return 0;
}

/* Close the element in progress with a NUL before the next one starts. */
static bool end_element(struct sh__http_conn *c)
{
    if (c->last_cb == 0 && !arena_add(c, "", 1))   /* after the target */
        return false;
    if (c->last_cb == 2 && !arena_add(c, "", 1))
        return false;
    if (c->last_cb == 2) {
        struct hdr_ref *h = &c->hdr[c->nh - 1];
        h->val_len = c->alen - 1 - h->val_off;
    }
    return true;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct sh__http_conn *c = conn_of(p);

    /* A non-strict http-parser build takes SP inside names, which would
     * let "Content-Length : 5" slip past our framing checks. */
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i]))
            return refuse(c, 400, "bad character in a field name");
    if (c->trailing)                   /* trailers are checked, not kept */
        return 0;
    if (c->last_cb != 1) {
        if (!end_element(c))
            return refuse(c, 500, "out of memory");
        if (c->nh == c->lim.max_headers)
            return refuse(c, 431, "too many header fields");
        c->hdr[c->nh].name_off = c->alen;
        c->hdr[c->nh].name_len = 0;
        c->nh++;
        c->last_cb = 1;
    }
    if (!arena_add(c, at, len))
        return refuse(c, 500, "out of memory");
    c->hdr[c->nh - 1].name_len += len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct sh__http_conn *c = conn_of(p);

    if (c->trailing)
        return 0;
    if (c->last_cb != 2) {
        if (!arena_add(c, "", 1))
            return refuse(c, 500, "out of memory");
        c->hdr[c->nh - 1].val_off = c->alen;
        c->last_cb = 2;
    }
    if (!arena_add(c, at, len))
        return refuse(c, 500, "out of memory");
    return 0;
}

static const char *val(const struct sh__http_conn *c, size_t i)
{
    return c->arena + c->hdr[i].val_off;
}

static bool name_is(const struct sh__http_conn *c, size_t i, const char *n)
{
    return strcasecmp(c->arena + c->hdr[i].name_off, n) == 0;
}

static void trim_values(struct sh__http_conn *c)
{
    for (size_t i = 0; i < c->nh; i++) {
        struct hdr_ref *h = &c->hdr[i];
        while (h->val_len > 0 && is_ws((uint8_t)c->arena[h->val_off +
                                                          h->val_len - 1]))
            c->arena[h->val_off + --h->val_len] = '\0';
    }
}

static int on_headers_complete(http_parser *p)
{
    struct sh__http_conn *c = conn_of(p);
    size_t ncl = 0, nte = 0, nhost = 0, icl = 0, ite = 0;

    if (c->last_cb == 1) {             /* "Name:" then CRLF: empty value */
        if (!arena_add(c, "", 1))
            return refuse(c, 500, "out of memory");
        c->hdr[c->nh - 1].val_off = c->alen;
        c->last_cb = 2;
    }
    if (!end_element(c))
        return refuse(c, 500, "out of memory");
    trim_values(c);
    if (p->http_major != 1 || p->http_minor > 1)
        return refuse(c, 505, "HTTP version not supported");
    if (p->method == HTTP_CONNECT)
        return refuse(c, 405, "CONNECT is not supported");
    for (size_t i = 0; i < c->nh; i++) {
        if (name_is(c, i, "Content-Length")) {
            ncl++;
            icl = i;
        } else if (name_is(c, i, "Transfer-Encoding")) {
            nte++;
            ite = i;
        } else if (name_is(c, i, "Host")) {
            nhost++;
        }
    }
    if (p->http_minor == 1 && nhost != 1)
        return refuse(c, 400, "HTTP/1.1 needs exactly one Host");
    if (ncl > 1)
        return refuse(c, 400, "several Content-Length fields");
    if (nte > 0) {
        if (ncl > 0)
            return refuse(c, 400, "Content-Length with Transfer-Encoding");
        if (p->http_minor == 0)
            return refuse(c, 400, "Transfer-Encoding in HTTP/1.0");
        if (nte > 1)
            return refuse(c, 400, "several Transfer-Encoding fields");
        if (strcasecmp(val(c, ite), "chunked") != 0) {
            size_t l = c->hdr[ite].val_len;
            if (l > 9 && strcasecmp(val(c, ite) + l - 7, "chunked") == 0 &&
                (val(c, ite)[l - 8] == ',' || is_ws((uint8_t)val(c, ite)[l - 8])))
                return refuse(c, 501, "transfer coding not implemented");
            return refuse(c, 400, "Transfer-Encoding is not chunked");
        }
        c->seg = SEG_SIZE_LINE;
        c->cl = CL_SIZE0;
    }
    if (ncl == 1) {
        const char *v = val(c, icl);
        size_t l = c->hdr[icl].val_len;
        uint64_t cl = 0;
        if (l == 0 || l > 19)
            return refuse(c, 400, "bad Content-Length");
        for (size_t i = 0; i < l; i++) {
            if (v[i] < '0' || v[i] > '9')
                return refuse(c, 400, "bad Content-Length");
            cl = cl * 10 + (uint64_t)(v[i] - '0');
        }
        if (cl > c->lim.max_body_bytes)
            return refuse(c, 413, "body over http.max-body-bytes");
    }
    c->phase = PH_BODY;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct sh__http_conn *c = conn_of(p);

    if (len > c->lim.max_body_bytes - c->blen)
        return refuse(c, 413, "body over http.max-body-bytes");
    if (c->blen + len > c->bcap) {
        size_t cap = c->bcap ? c->bcap : 1024;
        while (cap < c->blen + len)
            cap *= 2;
        if (cap > c->lim.max_body_bytes)
            cap = c->lim.max_body_bytes;
        uint8_t *b = realloc(c->body, cap);
        if (b == NULL)
            return refuse(c, 500, "out of memory");
        c->body = b;
        c->bcap = cap;
    }
    memcpy(c->body + c->blen, at, len);
    c->blen += len;
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    struct sh__http_conn *c = conn_of(p);

    if (p->content_length == 0) {
        c->trailing = true;
        c->seg = SEG_TRAILER;
        c->hs = HS_BOL;
    } else {
        c->seg = SEG_DATA;
        c->data_left = p->content_length;
        c->crlf = 0;
    }
    http_parser_pause(p, 1);
    return 0;
}

static int on_chunk_complete(http_parser *p)
{
    struct sh__http_conn *c = conn_of(p);

    if (!c->trailing) {
        c->seg = SEG_SIZE_LINE;
        c->cl = CL_SIZE0;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct sh__http_conn *c = conn_of(p);
    struct sh__http_request *r;
    size_t hsize = c->nh * sizeof(struct sh__http_header);

    r = calloc(1, sizeof *r + hsize + c->alen);
    if (r == NULL)
        return refuse(c, 500, "out of memory");
    r->headers = (struct sh__http_header *)(r + 1);
    char *a = (char *)r->headers + hsize;
    memcpy(a, c->arena, c->alen);
    r->method = http_method_str((enum http_method)p->method);
    r->target = a;
    r->target_len = c->url_len;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->nheaders = c->nh;
    for (size_t i = 0; i < c->nh; i++) {
        r->headers[i].name = a + c->hdr[i].name_off;
        r->headers[i].name_len = c->hdr[i].name_len;
        r->headers[i].value = a + c->hdr[i].val_off;
        r->headers[i].value_len = c->hdr[i].val_len;
    }
    r->body = c->body;
    r->body_len = c->blen;
    c->body = NULL;
    c->blen = c->bcap = 0;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade != 0;
    c->queue[(c->qhead + c->qlen) % c->lim.max_pipelined] = r;
    c->qlen++;
    c->completed = true;
    c->phase = !r->keep_alive && !r->upgrade ? PH_DRAIN : PH_HEAD;
    build_reset(c);
    http_parser_pause(p, 1);
    return 0;
}

/* ---- the connection -------------------------------------------------- */

sh_err_t sh__http_conn_new(const struct sh__http_limits *lim,
                           struct sh__http_conn **out)
{
    struct sh__http_conn *c;

    *out = NULL;
    if (lim->max_header_bytes == 0 || lim->max_headers == 0 ||
        lim->max_pipelined == 0)
        return SH_EINVAL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return SH_ENOMEM;
    c->lim = *lim;
    c->hdr = calloc(lim->max_headers, sizeof *c->hdr);
    c->queue = calloc(lim->max_pipelined, sizeof *c->queue);
    if (c->hdr == NULL || c->queue == NULL) {
        sh__http_conn_free(c);
        return SH_ENOMEM;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    http_parser_settings_init(&c->settings);
    c->settings.on_message_begin = on_message_begin;
    c->settings.on_url = on_url;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_value = on_header_value;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    c->settings.on_chunk_header = on_chunk_header;
    c->settings.on_chunk_complete = on_chunk_complete;
    c->phase = PH_HEAD;
    build_reset(c);
    *out = c;
    return SH_OK;
}

void sh__http_conn_free(struct sh__http_conn *c)
{
    if (c == NULL)
        return;
    while (c->qlen > 0)
        sh__http_request_free(sh__http_conn_next(c));
    free(c->queue);
    free(c->hdr);
    free(c->arena);
    free(c->body);
    free(c);
}

struct sh__http_request *sh__http_conn_next(struct sh__http_conn *c)
{
    struct sh__http_request *r;

    if (c->qlen == 0)
        return NULL;
    r = c->queue[c->qhead];
    c->qhead = (c->qhead + 1) % c->lim.max_pipelined;
    c->qlen--;
    return r;
}

int sh__http_conn_error(const struct sh__http_conn *c, const char **why)
{
    if (why != NULL)
        *why = c->phase == PH_ERROR ? c->err_why : "";
    return c->phase == PH_ERROR ? c->err_status : 0;
}

static enum sh__http_status fail(struct sh__http_conn *c, int status,
                                 const char *why)
{
    refuse(c, status, why);
    c->phase = PH_ERROR;
    return SH__HTTP_ERROR;
}

/* Run http-parser over @p[0..@n); returns the bytes it took, or SIZE_MAX
 * after a refusal. */
static size_t execute(struct sh__http_conn *c, const uint8_t *p, size_t n)
{
    size_t used;
    enum http_errno e;

    c->completed = false;
    used = http_parser_execute(&c->parser, &c->settings, (const char *)p, n);
    e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
    } else if (e != HPE_OK) {
        /* http-parser reports an overflowing chunk size with the
         * Content-Length errno; say what it really was. */
        const char *why = e == HPE_INVALID_CONTENT_LENGTH &&
                                  (c->parser.flags & F_CHUNKED)
                              ? "invalid chunk size"
                              : http_errno_description(e);
        if (c->err_status == 0)
            refuse(c, e == HPE_HEADER_OVERFLOW ? 431 : 400, why);
        return SIZE_MAX;
    }
    return used;
}

enum sh__http_status sh__http_conn_feed(struct sh__http_conn *c,
                                        const uint8_t *data, size_t n,
                                        size_t *consumed)
{
    size_t off = 0;

    *consumed = 0;
    while (off < n) {
        size_t k, used;
        if (c->phase == PH_ERROR)
            return SH__HTTP_ERROR;
        if (c->phase == PH_UPGRADED)
            return SH__HTTP_UPGRADE;
        if (c->phase == PH_DRAIN) {
            off = n;                     /* the peer asked to close */
            break;
        }
        if (c->qlen == c->lim.max_pipelined)
            break;                       /* pop first: backpressure */
        if (c->phase == PH_HEAD) {
            /* The parser first sees the bytes before the first refusal
             * of ours, so that the verdict does not depend on how the
             * input was cut (the fuzzer checks it). */
            size_t room = c->lim.max_header_bytes - c->head_bytes;
            size_t good;
            k = scan_head(&c->hs, data + off, n - off);
            good = c->hs == HS_BAD ? k - 1 : k;
            if (good > room)
                good = room;
            /* http-parser reads a zero length as the end of the stream:
             * never hand it one (the header section may have filled the
             * limit exactly on an earlier read). */
            used = good > 0 ? execute(c, data + off, good) : 0;
            if (used == SIZE_MAX)
                return fail(c, c->err_status, c->err_why);
            if (c->hs == HS_BAD && k - 1 <= room)
                return fail(c, 400, "bad line end, NUL or folded header");
            if (k > room)
                return fail(c, 431, "header section over "
                            "http.max-header-bytes");
            c->head_bytes += k;
        } else {
            enum seg seg = c->seg;
            int hs = c->hs;     /* a completion resets c->hs */
            used = execute(c, data + off, n - off);
            if (used == SIZE_MAX)
                return fail(c, c->err_status, c->err_why);
            if (seg == SEG_SIZE_LINE) {
                chunk_line(&c->cl, data + off, used);
                if (c->cl == CL_BAD)
                    goto bad_chunk;
                if (c->seg != SEG_SIZE_LINE && c->cl != CL_DONE)
                    goto bad_chunk;
            } else if (seg == SEG_DATA) {
                /* non-strict builds take any 2 bytes after chunk data */
                size_t skip = c->data_left < used ? (size_t)c->data_left
                                                  : used;
                c->data_left -= skip;
                for (size_t i = skip; i < used; i++, c->crlf++)
                    if (c->crlf > 1 || data[off + i] != "\r\n"[c->crlf])
                        goto bad_chunk;
            } else if (seg == SEG_TRAILER) {
                if (!c->completed) {
                    c->head_bytes += used;
                    if (c->head_bytes > c->lim.max_header_bytes)
                        return fail(c, 431, "trailers over "
                                    "http.max-header-bytes");
                }
                scan_head(&hs, data + off, used);
                if (hs == HS_BAD) {
                    if (c->completed)     /* unqueue the bad message */
                        sh__http_request_free(c->queue[(c->qhead +
                            --c->qlen) % c->lim.max_pipelined]);
                    return fail(c, 400, "bad trailer section");
                }
                if (!c->completed)
                    c->hs = hs;
            }
        }
        off += used;
        if (c->completed && c->parser.upgrade) {
            c->phase = PH_UPGRADED;
            *consumed = off;
            return SH__HTTP_UPGRADE;
        }
        if (used == 0 && !c->completed && c->phase != PH_DRAIN)
            break;                        /* should not happen: no loop */
    }
    *consumed = off;
    return SH__HTTP_OK;
bad_chunk:
    /* No message completes in the execute that ends a chunk-size line (the
     * parser pauses at the chunk header), so nothing of it was queued. */
    return fail(c, 400, "bad chunk-size line");
}

/* ---- requests ------------------------------------------------------- */

void sh__http_request_free(struct sh__http_request *req)
{
    if (req == NULL)
        return;
    free(req->body);
    free(req);
}

const struct sh__http_header *sh__http_request_header(
    const struct sh__http_request *req, const char *name, size_t *count)
{
    const struct sh__http_header *first = NULL;
    size_t k = 0;

    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) {
            if (first == NULL)
                first = &req->headers[i];
            k++;
        }
    if (count != NULL)
        *count = k;
    return first;
}
