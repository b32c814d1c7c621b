/* libstreamhub/services/users_batch.c: sh_user_get_many() (users.h).
 *
 * One SELECT ... WHERE id IN (?, ...) per chunk of CHUNK distinct ids.  The
 * statement text is fixed (the store caches prepared statements by their
 * struct sh__sql), so a short chunk binds NULL in the unused places: `id
 * IN (..., NULL)` matches nothing more.  Ids that are not UUIDs are
 * dropped before the query (they name no user).
 */
#include <stdlib.h>
#include <string.h>

#include "streamhub/users.h"
#include "services_int.h"

/* The layout of follows.c's list handle. */
struct sh_user_list { struct sh__list l; };

#define CHUNK 50

#define P5 "?, ?, ?, ?, ?"
#define P25 P5 ", " P5 ", " P5 ", " P5 ", " P5
static const struct sh__sql q_users_in = {
    "SELECT id, username, email, created_at FROM users WHERE id IN ("
    P25 ", " P25 ")", NULL, NULL
};

struct fill {
    json_object *list;     /* the list builder */
    const char *viewer_id;
    bool oom;
};

static int row_cb(void *arg, const struct sh__row *row)
{
    struct fill *f = arg;
    const char *id = sh__row_text(row, 0, NULL);
    const char *email = sh__row_text(row, 2, NULL);
    json_object *o = json_object_new_object();
    bool own = f->viewer_id != NULL && id != NULL &&
               strcmp(f->viewer_id, id) == 0;

    if (o == NULL ||
        !sh__jset_str(o, "id", id) ||
        !sh__jset_str(o, "username", sh__row_text(row, 1, NULL)) ||
        !sh__jset_str(o, "email", own ? email : NULL) ||
        !sh__jset_time(o, "createdAt", sh__row_int(row, 3), false)) {
        json_object_put(o);
        f->oom = true;
        return 1;
    }
    if (!sh__list_obj_append(f->list, o)) {
        f->oom = true;
        return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

SH_API sh_err_t sh_user_get_many(sh_hub_t *hub, const char *viewer_id,
                                 const char *const *ids, size_t n,
                                 sh_user_list_t **out, char *errbuf,
                                 size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct fill f = { NULL, viewer_id, false };
    const char **uniq = NULL;
    struct sh__conn *c = NULL;
    struct sh__list *l;
    size_t nu = 0;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = sh__hub_live(hub);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        return rc;
    }
    if (out == NULL || (ids == NULL && n > 0) || n > SH_USER_GET_MANY_MAX) {
        sh__errbuf(errbuf, errbuf_len, "bad arguments");
        return SH_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == NULL) {
            sh__errbuf(errbuf, errbuf_len, "ids[%zu] is NULL", i);
            return SH_EINVAL;
        }
    }
    f.list = sh__list_obj_new();
    if (n > 0)
        uniq = malloc(n * sizeof *uniq);
    if (f.list == NULL || (n > 0 && uniq == NULL)) {
        rc = SH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (sh__uuid_valid(ids[i]))
            uniq[nu++] = ids[i];
    if (nu > 1)
        qsort(uniq, nu, sizeof *uniq, cmp_str);
    {
        size_t w = 0;
        for (size_t i = 0; i < nu; i++)
            if (w == 0 || strcmp(uniq[w - 1], uniq[i]) != 0)
                uniq[w++] = uniq[i];
        nu = w;
    }
    if (nu > 0) {
        rc = sh__acquire_read_many(hub, uniq, nu, &c);
        if (rc != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "the hub is closing");
            goto out;
        }
        for (size_t at = 0; at < nu && rc == SH_OK && !f.oom; at += CHUNK) {
            struct sh__val p[CHUNK];
            for (size_t k = 0; k < CHUNK; k++)
                p[k] = at + k < nu ? sh__v_text(uniq[at + k]) : sh__v_null();
            rc = sh__store_exec(c, &q_users_in, p, CHUNK, row_cb, &f, NULL,
                                errbuf, errbuf_len);
        }
        sh__store_release(c);
        if (rc != SH_OK)
            goto out;
    }
    if (f.oom) {
        rc = SH_ENOMEM;
        goto out;
    }
    if (!sh__jset_int(f.list, "totalCount", (int64_t)sh__list_obj_len(f.list))) {
        rc = SH_ENOMEM;
        goto out;
    }
    l = sh__list_new(f.list);
    f.list = NULL;              /* taken, even on error */
    if (l == NULL) {
        rc = SH_ENOMEM;
        goto out;
    }
    *out = (sh_user_list_t *)l;
    rc = SH_OK;
out:
    if (rc == SH_ENOMEM)
        sh__errbuf(errbuf, errbuf_len, "out of memory");
    json_object_put(f.list);
    free(uniq);
    return rc;
}
