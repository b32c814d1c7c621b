/* libstreamhub/services/services_util.c: json-backed handles, lists,
 * cursors, page sizes, UTF-8 counting and user/role look-ups shared by the
 * service areas (services_int.h).
 *
 * Cursors are base64url (libsodium, no padding) of the JSON text of an
 * array of sort keys; decoding re-parses that JSON with json-c and checks
 * its shape, so a forged cursor can at worst point at another position of
 * the same ordering, never inject anything into SQL (the keys are bound).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/utf8_int.h"
#include "services_int.h"

#define SH__CURSOR_MAX 512   /* bytes of encoded cursor we accept */

/* ---- json-backed handles ---------------------------------------------- */

const char *sh__jstr(const json_object *obj, const char *key)
{
    json_object *v;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

int64_t sh__jint(const json_object *obj, const char *key)
{
    json_object *v;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_int64(v);
}

bool sh__jbool(const json_object *obj, const char *key)
{
    json_object *v;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_boolean))
        return false;
    return json_object_get_boolean(v) != 0;
}

const char *sh__jtext(json_object *obj, size_t *len)
{
    const char *s;
    size_t n = 0;

    if (obj == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    s = json_object_to_json_string_length(obj,
            JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (len != NULL)
        *len = s != NULL ? n : 0;
    return s;
}

struct sh__jh *sh__jh_new(json_object *obj)
{
    struct sh__jh *h;

    if (obj == NULL)
        return NULL;
    h = malloc(sizeof *h);
    if (h == NULL) {
        json_object_put(obj);
        return NULL;
    }
    h->obj = obj;
    return h;
}

void sh__jh_free(struct sh__jh *h)
{
    if (h == NULL)
        return;
    json_object_put(h->obj);
    free(h);
}

bool sh__jset(json_object *obj, const char *key, json_object *val)
{
    if (obj == NULL) {
        json_object_put(val);
        return false;
    }
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        return false;
    }
    return true;
}

bool sh__jset_str(json_object *obj, const char *key, const char *s)
{
    json_object *v = NULL;

    if (s != NULL) {
        v = json_object_new_string(s);
        if (v == NULL)
            return false;
    }
    return sh__jset(obj, key, v);
}

bool sh__jset_int(json_object *obj, const char *key, int64_t i)
{
    json_object *v = json_object_new_int64(i);

    return v != NULL && sh__jset(obj, key, v);
}

bool sh__jset_bool(json_object *obj, const char *key, bool b)
{
    json_object *v = json_object_new_boolean(b ? 1 : 0);

    return v != NULL && sh__jset(obj, key, v);
}

bool sh__jset_time(json_object *obj, const char *key, int64_t ms,
                   bool null_if_zero)
{
    char ts[SH__TS_LEN + 1];

    if (null_if_zero && ms <= 0)
        return sh__jset(obj, key, NULL);
    sh__ts_format(ms, ts);
    return sh__jset_str(obj, key, ts);
}

json_object *sh__juser_ref(const char *id, const char *username)
{
    json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    if (!sh__jset_str(o, "id", id) || !sh__jset_str(o, "username", username)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* ---- lists -------------------------------------------------------------- */

json_object *sh__list_obj_new(void)
{
    json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    if (!sh__jset(o, "items", json_object_new_array()) ||
        !json_object_is_type(json_object_object_get(o, "items"),
                             json_type_array) ||
        !sh__jset(o, "nextCursor", NULL) ||
        !sh__jset_int(o, "totalCount", 0)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static json_object *list_items(json_object *list)
{
    json_object *a;

    if (list == NULL || !json_object_object_get_ex(list, "items", &a))
        return NULL;
    return a;
}

bool sh__list_obj_append(json_object *list, json_object *item)
{
    json_object *a = list_items(list);

    if (a == NULL || item == NULL || json_object_array_add(a, item) != 0) {
        json_object_put(item);
        return false;
    }
    return true;
}

size_t sh__list_obj_len(json_object *list)
{
    json_object *a = list_items(list);

    return a != NULL ? json_object_array_length(a) : 0;
}

json_object *sh__list_obj_last(json_object *list)
{
    json_object *a = list_items(list);
    size_t n = a != NULL ? json_object_array_length(a) : 0;

    return n > 0 ? json_object_array_get_idx(a, n - 1) : NULL;
}

struct sh__list *sh__list_new(json_object *list)
{
    struct sh__list *l;
    json_object *a = list_items(list);
    size_t n;

    if (a == NULL) {
        json_object_put(list);
        return NULL;
    }
    n = json_object_array_length(a);
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        json_object_put(list);
        return NULL;
    }
    if (n > 0) {
        l->items = calloc(n, sizeof *l->items);
        if (l->items == NULL) {
            free(l);
            json_object_put(list);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        l->items[i].obj = json_object_array_get_idx(a, i);
    l->obj = list;
    l->n = n;
    return l;
}

void sh__list_free(struct sh__list *l)
{
    if (l == NULL)
        return;
    free(l->items);
    json_object_put(l->cursors);
    json_object_put(l->obj);
    free(l);
}

size_t sh__list_count(const struct sh__list *l)
{
    return l != NULL ? l->n : 0;
}

const struct sh__jh *sh__list_at(const struct sh__list *l, size_t i)
{
    if (l == NULL || i >= l->n)
        return NULL;
    return &l->items[i];
}

const char *sh__list_next_cursor(const struct sh__list *l)
{
    return l != NULL ? sh__jstr(l->obj, "nextCursor") : NULL;
}

const char *sh__list_cursor_at(const struct sh__list *l, size_t i)
{
    if (l == NULL || l->cursors == NULL || i >= l->n)
        return NULL;
    return json_object_get_string(json_object_array_get_idx(l->cursors, i));
}

bool sh__page_init(struct sh__page *p, int first)
{
    memset(p, 0, sizeof *p);
    p->first = first;
    p->list = sh__list_obj_new();
    p->cursors = json_object_new_array();
    if (p->list == NULL || p->cursors == NULL) {
        sh__page_drop(p);
        return false;
    }
    return true;
}

void sh__page_add(struct sh__page *p, json_object *item, char *cursor)
{
    json_object *c;

    if (p->list == NULL || item == NULL || cursor == NULL) {
        p->oom = true;
        json_object_put(item);
        free(cursor);
        return;
    }
    if (sh__list_obj_len(p->list) >= (size_t)p->first) {
        p->more = true;
        json_object_put(item);
        free(cursor);
        return;
    }
    c = json_object_new_string(cursor);
    free(cursor);
    if (c == NULL || json_object_array_add(p->cursors, c) != 0) {
        json_object_put(c);
        json_object_put(item);
        p->oom = true;
        return;
    }
    if (!sh__list_obj_append(p->list, item)) {
        p->oom = true;
        /* keep the arrays aligned: drop the cursor again */
        json_object_array_del_idx(p->cursors,
            json_object_array_length(p->cursors) - 1, 1);
    }
}

sh_err_t sh__page_finish(struct sh__page *p, int64_t total,
                         struct sh__list **out)
{
    struct sh__list *l;
    size_t n;

    *out = NULL;
    if (p->oom || p->list == NULL) {
        sh__page_drop(p);
        return SH_ENOMEM;
    }
    n = sh__list_obj_len(p->list);
    if (p->more && n > 0) {
        json_object *last = json_object_array_get_idx(p->cursors, n - 1);
        if (!sh__jset_str(p->list, "nextCursor",
                          json_object_get_string(last))) {
            sh__page_drop(p);
            return SH_ENOMEM;
        }
    }
    if (!sh__jset_int(p->list, "totalCount", total)) {
        sh__page_drop(p);
        return SH_ENOMEM;
    }
    l = sh__list_new(p->list);
    p->list = NULL;
    if (l == NULL) {
        sh__page_drop(p);
        return SH_ENOMEM;
    }
    l->cursors = p->cursors;
    p->cursors = NULL;
    *out = l;
    return SH_OK;
}

void sh__page_drop(struct sh__page *p)
{
    json_object_put(p->list);
    json_object_put(p->cursors);
    p->list = NULL;
    p->cursors = NULL;
}

/* ---- pagination and cursors ------------------------------------------- */

sh_err_t sh__page_first(int first, int *out, char *errbuf,
                        size_t errbuf_len)
{
    if (first < 1) {
        *out = 0;
        sh__errbuf(errbuf, errbuf_len, "first: %d is out of range 1..%d",
                   first, SH__PAGE_MAX);
        return SH_EINVAL;
    }
    *out = first > SH__PAGE_MAX ? SH__PAGE_MAX : first;
    return SH_OK;
}

sh_err_t sh__cursor_encode(json_object *keys, char **out)
{
    const char *txt;
    size_t n = 0, cap;
    char *buf;

    *out = NULL;
    if (keys == NULL)
        return SH_ENOMEM;
    txt = json_object_to_json_string_length(keys, JSON_C_TO_STRING_PLAIN,
                                            &n);
    if (txt == NULL) {
        json_object_put(keys);
        return SH_ENOMEM;
    }
    cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    buf = malloc(cap);
    if (buf == NULL) {
        json_object_put(keys);
        return SH_ENOMEM;
    }
    sodium_bin2base64(buf, cap, (const unsigned char *)txt, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    json_object_put(keys);
    *out = buf;
    return SH_OK;
}

sh_err_t sh__cursor_decode(const char *cursor, size_t nkeys,
                           json_object **out, char *errbuf,
                           size_t errbuf_len)
{
    unsigned char bin[SH__CURSOR_MAX];
    size_t clen, blen = 0;
    json_tokener *tok;
    json_object *v;

    *out = NULL;
    if (cursor == NULL || cursor[0] == '\0')
        return SH_OK;
    clen = strlen(cursor);
    if (clen > SH__CURSOR_MAX ||
        sodium_base642bin(bin, sizeof bin - 1, cursor, clen, NULL, &blen,
                          NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0
        || blen == 0 || memchr(bin, '\0', blen) != NULL)
        goto bad;
    bin[blen] = '\0';
    tok = json_tokener_new_ex(4);
    if (tok == NULL)
        return SH_ENOMEM;
    v = json_tokener_parse_ex(tok, (const char *)bin, (int)blen);
    if (v != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
                      json_tokener_get_parse_end(tok) != blen)) {
        json_object_put(v);
        v = NULL;
    }
    json_tokener_free(tok);
    if (v == NULL || !json_object_is_type(v, json_type_array) ||
        json_object_array_length(v) != nkeys) {
        json_object_put(v);
        goto bad;
    }
    *out = v;
    return SH_OK;
bad:
    sh__errbuf(errbuf, errbuf_len, "after: not a valid cursor");
    return SH_EINVAL;
}

sh_err_t sh__cursor_ti_encode(int64_t t, const char *id, char **out)
{
    json_object *a = json_object_new_array();

    *out = NULL;
    if (a == NULL)
        return SH_ENOMEM;
    if (json_object_array_add(a, json_object_new_int64(t)) != 0 ||
        json_object_array_add(a, json_object_new_string(id)) != 0) {
        json_object_put(a);
        return SH_ENOMEM;
    }
    return sh__cursor_encode(a, out);
}

sh_err_t sh__cursor_ti_decode(const char *cursor, bool *have, int64_t *t,
                              char id[SH__UUID_LEN + 1], char *errbuf,
                              size_t errbuf_len)
{
    json_object *a = NULL, *e0, *e1;
    sh_err_t rc;

    *have = false;
    *t = 0;
    id[0] = '\0';
    rc = sh__cursor_decode(cursor, 2, &a, errbuf, errbuf_len);
    if (rc != SH_OK || a == NULL)
        return rc;
    e0 = json_object_array_get_idx(a, 0);
    e1 = json_object_array_get_idx(a, 1);
    if (!json_object_is_type(e0, json_type_int) ||
        !json_object_is_type(e1, json_type_string) ||
        !sh__uuid_valid(json_object_get_string(e1))) {
        json_object_put(a);
        sh__errbuf(errbuf, errbuf_len, "after: not a valid cursor");
        return SH_EINVAL;
    }
    *t = json_object_get_int64(e0);
    memcpy(id, json_object_get_string(e1), SH__UUID_LEN + 1);
    *have = true;
    json_object_put(a);
    return SH_OK;
}

/* ---- text -------------------------------------------------------------- */

bool sh__text_count(const char *s, size_t n, size_t *cps)
{
    *cps = 0;
    if (s == NULL)
        return n == 0;
    if (memchr(s, '\0', n) != NULL ||
        !sh__utf8_validate((const uint8_t *)s, n))
        return false;
    *cps = sh__utf8_count((const uint8_t *)s, n);
    return true;
}

/* ---- users and roles --------------------------------------------------- */

static const struct sh__sql q_user_role = {
    "SELECT role, username FROM users WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_user_by_name = {
    "SELECT id FROM users WHERE username_lc = lower(?)", NULL, NULL
};

struct user_row {
    bool found;
    unsigned roles;
    char name[64];
};

static int user_row_cb(void *arg, const struct sh__row *row)
{
    struct user_row *u = arg;
    const char *role = sh__row_text(row, 0, NULL);
    const char *name = sh__row_text(row, 1, NULL);

    u->found = true;
    u->roles = SH__ROLE_VIEWER;
    if (role != NULL && strcmp(role, "ADMIN") == 0)
        u->roles |= SH__ROLE_ADMIN | SH__ROLE_MODERATOR;
    else if (role != NULL && strcmp(role, "MODERATOR") == 0)
        u->roles |= SH__ROLE_MODERATOR;
    snprintf(u->name, sizeof u->name, "%s", name != NULL ? name : "");
    return 1;
}

static sh_err_t user_row_get(struct sh__conn *c, const char *user_id,
                             struct user_row *u, char *errbuf,
                             size_t errbuf_len)
{
    struct sh__val p[1];
    sh_err_t rc;

    memset(u, 0, sizeof *u);
    if (!sh__uuid_valid(user_id)) {
        sh__errbuf(errbuf, errbuf_len, "no such user");
        return SH_ENOTFOUND;
    }
    p[0] = sh__v_text(user_id);
    rc = sh__store_exec(c, &q_user_role, p, 1, user_row_cb, u, NULL,
                        errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (!u->found) {
        sh__errbuf(errbuf, errbuf_len, "no such user");
        return SH_ENOTFOUND;
    }
    return SH_OK;
}

sh_err_t sh__user_roles_c(struct sh__conn *c, const char *user_id,
                          unsigned *roles, char *errbuf, size_t errbuf_len)
{
    struct user_row u;
    sh_err_t rc = user_row_get(c, user_id, &u, errbuf, errbuf_len);

    *roles = rc == SH_OK ? u.roles : 0;
    return rc;
}

sh_err_t sh__acquire_read_many(sh_hub_t *hub, const char *const *ids,
                               size_t n, struct sh__conn **out)
{
    for (size_t i = 0; i < n; i++)
        if (sh__store_fresh(hub->store, ids[i]))
            return sh__store_acquire(hub->store, out);
    return sh__store_acquire_read(hub->store, NULL, out);
}

void sh__reads_primary_begin(void)
{
    sh__store_pin_primary(true);
}

void sh__reads_primary_end(void)
{
    sh__store_pin_primary(false);
}

static _Thread_local int results_stay;

void sh__results_stay_begin(void)
{
    results_stay++;
}

void sh__results_stay_end(void)
{
    if (results_stay > 0)
        results_stay--;
}

bool sh__results_stay(void)
{
    return results_stay > 0;
}

sh_err_t sh__user_roles(sh_hub_t *hub, const char *user_id, unsigned *roles)
{
    struct sh__conn *c;
    sh_err_t rc;

    *roles = 0;
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    rc = sh__user_roles_c(c, user_id, roles, NULL, 0);
    sh__store_release(c);
    return rc;
}

sh_err_t sh__user_name_c(struct sh__conn *c, const char *user_id,
                         char *name, size_t name_len, char *errbuf,
                         size_t errbuf_len)
{
    struct user_row u;
    sh_err_t rc = user_row_get(c, user_id, &u, errbuf, errbuf_len);

    if (name_len > 0)
        snprintf(name, name_len, "%s", rc == SH_OK ? u.name : "");
    return rc;
}

sh_err_t sh__actor_c(struct sh__conn *c, const char *actor_id,
                     unsigned *roles, char *errbuf, size_t errbuf_len)
{
    struct user_row u;
    sh_err_t rc;

    if (roles != NULL)
        *roles = 0;
    if (actor_id == NULL) {
        sh__errbuf(errbuf, errbuf_len, "authentication required");
        return SH_EUNAUTHENTICATED;
    }
    rc = user_row_get(c, actor_id, &u, errbuf, errbuf_len);
    if (rc == SH_ENOTFOUND) {
        sh__errbuf(errbuf, errbuf_len, "authentication required");
        return SH_EUNAUTHENTICATED;
    }
    if (rc == SH_OK && roles != NULL)
        *roles = u.roles;
    return rc;
}

static int id_row_cb(void *arg, const struct sh__row *row)
{
    char *id = arg;
    const char *s = sh__row_text(row, 0, NULL);

    if (s != NULL && strlen(s) == SH__UUID_LEN)
        memcpy(id, s, SH__UUID_LEN + 1);
    return 1;
}

sh_err_t sh__user_by_username(sh_hub_t *hub, const char *username,
                              char id[SH__UUID_LEN + 1])
{
    struct sh__conn *c;
    struct sh__val p[1];
    sh_err_t rc;

    id[0] = '\0';
    if (username == NULL || username[0] == '\0' || strlen(username) > 64)
        return SH_EINVAL;
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    p[0] = sh__v_text(username);
    rc = sh__store_exec(c, &q_user_by_name, p, 1, id_row_cb, id, NULL,
                        NULL, 0);
    sh__store_release(c);
    if (rc == SH_OK && id[0] == '\0')
        rc = SH_ENOTFOUND;
    return rc;
}
