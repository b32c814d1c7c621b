/* libstreamhub/graphql/util.c: the engine's arena, error list, limits and
 * printers.
 *
 * The arena is a chain of blocks; allocations bump a pointer, nothing is
 * freed alone, the whole chain goes at once.  Errors are malloc'ed (they
 * outlive documents) and capped at SH__GQL_MAX_ERRORS, so that a hostile
 * document cannot make the error list grow without bound.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql_int.h"

/* ---- arena ----------------------------------------------------------- */

#define ARENA_BLOCK 8192
#define ARENA_ALIGN 16

struct block {
    struct block *next;
    size_t used, cap;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct sh__gql_arena {
    struct block *head;   /* the block being filled; older ones follow */
};

struct sh__gql_arena *sh__gql_arena_new(void)
{
    return calloc(1, sizeof(struct sh__gql_arena));
}

void sh__gql_arena_free(struct sh__gql_arena *a)
{
    if (a == NULL)
        return;
    struct block *b = a->head;
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void *sh__gql_arena_alloc(struct sh__gql_arena *a, size_t n)
{
    size_t need = (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    struct block *b = a->head;

    if (need < n)
        return NULL;
    if (b == NULL || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        if (cap > SIZE_MAX - sizeof *b)
            return NULL;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        /* A big allocation gets its own block behind the current one, so
         * that the current block's free space is not wasted. */
        if (cap > ARENA_BLOCK && a->head != NULL) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, n);
    return p;
}

char *sh__gql_arena_strndup(struct sh__gql_arena *a, const char *s,
                            size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = sh__gql_arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---- errors ---------------------------------------------------------- */

void sh__gql_error_add(struct sh__gql_errors *errs, const char *code,
                       const struct sh__gql_loc *locs, size_t nlocs,
                       const char *fmt, ...)
{
    va_list ap;
    int n;

    if (errs->count >= SH__GQL_MAX_ERRORS) {
        errs->full = true;
        return;
    }
    struct sh__gql_error *e = calloc(1, sizeof *e);
    if (e == NULL) {
        errs->oom = true;
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (e->message = malloc((size_t)n + 1)) == NULL) {
        free(e);
        errs->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(e->message, (size_t)n + 1, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < nlocs && i < SH__GQL_MAX_LOCS; i++) {
        if (locs[i].line == 0)
            continue;
        e->locs[e->nlocs++] = locs[i];
    }
    e->code = code;
    if (errs->tail != NULL)
        errs->tail->next = e;
    else
        errs->head = e;
    errs->tail = e;
    errs->count++;
}

void sh__gql_errors_clear(struct sh__gql_errors *errs)
{
    struct sh__gql_error *e = errs->head;
    while (e != NULL) {
        struct sh__gql_error *next = e->next;
        free(e->message);
        free(e);
        e = next;
    }
    memset(errs, 0, sizeof *errs);
}

/* json-c's add calls fail only on ENOMEM; they take the value either way
 * in 0.15+ only on success, so put it ourselves on failure. */
static bool obj_add(json_object *o, const char *k, json_object *v)
{
    if (v == NULL)
        return false;
    if (json_object_object_add(o, k, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static bool arr_add(json_object *a, json_object *v)
{
    if (v == NULL)
        return false;
    if (json_object_array_add(a, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static json_object *error_json(const struct sh__gql_error *e)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    if (!obj_add(o, "message", json_object_new_string(e->message)))
        goto fail;
    if (e->nlocs > 0) {
        json_object *locs = json_object_new_array();
        if (!obj_add(o, "locations", locs))
            goto fail;
        for (size_t i = 0; i < e->nlocs; i++) {
            json_object *l = json_object_new_object();
            if (!arr_add(locs, l) ||
                !obj_add(l, "line", json_object_new_int64(e->locs[i].line)) ||
                !obj_add(l, "column",
                         json_object_new_int64(e->locs[i].column)))
                goto fail;
        }
    }
    if (e->code != NULL) {
        json_object *ext = json_object_new_object();
        if (!obj_add(o, "extensions", ext) ||
            !obj_add(ext, "code", json_object_new_string(e->code)))
            goto fail;
    }
    return o;
fail:
    json_object_put(o);
    return NULL;
}

json_object *sh__gql_errors_to_json(const struct sh__gql_errors *errs)
{
    json_object *arr = json_object_new_array();
    if (arr == NULL)
        return NULL;
    for (const struct sh__gql_error *e = errs->head; e != NULL; e = e->next) {
        if (!arr_add(arr, error_json(e))) {
            json_object_put(arr);
            return NULL;
        }
    }
    return arr;
}

/* ---- limits ---------------------------------------------------------- */

void sh__gql_limits_default(struct sh__gql_limits *lim)
{
    lim->max_document_bytes = 65536;
    lim->max_depth = 12;
    lim->max_cost = 5000;
    lim->max_aliases = 50;
    lim->max_nesting = SH__GQL_MAX_NESTING;
}

void sh__gql_limits_from_config(struct sh__gql_limits *lim,
                                const sh_config_t *conf)
{
    sh__gql_limits_default(lim);
    lim->max_document_bytes =
        (size_t)sh__config_int(conf, "graphql.max-document-bytes");
    lim->max_depth = sh__config_int(conf, "graphql.max-depth");
    lim->max_cost = sh__config_int(conf, "graphql.max-cost");
    lim->max_aliases = sh__config_int(conf, "graphql.max-aliases");
}

/* ---- printers -------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len <= n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* graphql-js printString: JSON-like, control and C1 characters escaped. */
static void print_string(struct buf *b, const char *s, size_t len)
{
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"') {
            buf_put(b, "\\\"", 2);
        } else if (c == '\\') {
            buf_put(b, "\\\\", 2);
        } else if (c == '\b') {
            buf_put(b, "\\b", 2);
        } else if (c == '\t') {
            buf_put(b, "\\t", 2);
        } else if (c == '\n') {
            buf_put(b, "\\n", 2);
        } else if (c == '\f') {
            buf_put(b, "\\f", 2);
        } else if (c == '\r') {
            buf_put(b, "\\r", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04X", c);
            buf_put(b, esc, 6);
        } else if (c == 0xC2 && i + 1 < len &&
                   (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] <= 0x9F) {
            snprintf(esc, sizeof esc, "\\u%04X", (unsigned char)s[i + 1]);
            buf_put(b, esc, 6);
            i++;
        } else {
            buf_put(b, s + i, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static void print_value(struct buf *b, const struct sh__gql_value *v,
                        unsigned depth)
{
    if (depth > SH__GQL_MAX_NESTING + 2) {
        buf_str(b, "...");
        return;
    }
    switch (v->kind) {
    case SH__GQL_V_VARIABLE:
        buf_put(b, "$", 1);
        buf_str(b, v->str);
        break;
    case SH__GQL_V_INT:
    case SH__GQL_V_FLOAT:
    case SH__GQL_V_ENUM:
        buf_str(b, v->str);
        break;
    case SH__GQL_V_STRING:
        if (v->block) {
            buf_put(b, "\"\"\"", 3);
            buf_put(b, v->str, v->len);
            buf_put(b, "\"\"\"", 3);
        } else {
            print_string(b, v->str, v->len);
        }
        break;
    case SH__GQL_V_BOOLEAN:
        buf_str(b, v->boolean ? "true" : "false");
        break;
    case SH__GQL_V_NULL:
        buf_str(b, "null");
        break;
    case SH__GQL_V_LIST:
        buf_put(b, "[", 1);
        for (const struct sh__gql_value *i = v->items; i != NULL; i = i->next) {
            print_value(b, i, depth + 1);
            if (i->next != NULL)
                buf_put(b, ", ", 2);
        }
        buf_put(b, "]", 1);
        break;
    case SH__GQL_V_OBJECT:
        buf_put(b, "{", 1);
        for (const struct sh__gql_object_field *f = v->fields; f != NULL;
             f = f->next) {
            buf_str(b, f->name);
            buf_put(b, ": ", 2);
            print_value(b, f->value, depth + 1);
            if (f->next != NULL)
                buf_put(b, ", ", 2);
        }
        buf_put(b, "}", 1);
        break;
    }
}

char *sh__gql_value_print(const struct sh__gql_value *v)
{
    struct buf b = { 0 };
    print_value(&b, v, 0);
    buf_put(&b, "", 0);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (b.p == NULL)
        return calloc(1, 1);
    return b.p;
}

void sh__gql_typeref_print(const struct sh__gql_typeref *t, char *buf,
                           size_t len)
{
    struct buf b = { 0 };
    const struct sh__gql_typeref *stack[SH__GQL_MAX_NESTING + 2];
    size_t n = 0;

    /* Iterative: opening brackets on the way down, closers on the way up. */
    while (t != NULL && n < sizeof stack / sizeof stack[0]) {
        stack[n++] = t;
        if (t->kind == SH__GQL_T_LIST)
            buf_put(&b, "[", 1);
        else if (t->kind == SH__GQL_T_NAMED)
            buf_str(&b, t->name);
        t = t->of;
    }
    while (n-- > 0) {
        if (stack[n]->kind == SH__GQL_T_LIST)
            buf_put(&b, "]", 1);
        else if (stack[n]->kind == SH__GQL_T_NONNULL)
            buf_put(&b, "!", 1);
    }
    if (len > 0)
        snprintf(buf, len, "%s", b.p != NULL && !b.oom ? b.p : "");
    free(b.p);
}
