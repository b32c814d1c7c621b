/* libstreamhub/core/config.c: the key/value configuration (config.h).
 *
 * A config holds one text value per key of sh__conf_keys, in table order;
 * NULL means "the default".  Values are validated when set, so that the
 * typed readers (sh__config_int() ...) never fail.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr_int.h"
#include "core_int.h"

struct sh_config {
    char **values;          /* sh__conf_nkeys slots; NULL: default */
    sh_log_cb log_cb;
    void *log_arg;
};

static const struct sh__conf_key *find_key(const char *name, size_t *index)
{
    for (size_t i = 0; i < sh__conf_nkeys; i++) {
        if (strcmp(sh__conf_keys[i].name, name) == 0) {
            if (index != NULL)
                *index = i;
            return &sh__conf_keys[i];
        }
    }
    return NULL;
}

SH_API sh_err_t sh_config_new(sh_config_t **out)
{
    sh_config_t *c;

    if (out == NULL)
        return SH_EINVAL;
    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return SH_ENOMEM;
    c->values = calloc(sh__conf_nkeys, sizeof *c->values);
    if (c->values == NULL) {
        free(c);
        return SH_ENOMEM;
    }
    *out = c;
    return SH_OK;
}

SH_API void sh_config_free(sh_config_t *conf)
{
    if (conf == NULL)
        return;
    for (size_t i = 0; i < sh__conf_nkeys; i++) {
        if (conf->values[i] != NULL &&
            sh__conf_keys[i].type == SH__CONF_SECRET)
            memset(conf->values[i], 0, strlen(conf->values[i]));
        free(conf->values[i]);
    }
    free(conf->values);
    free(conf);
}

SH_API sh_err_t sh_config_dup(const sh_config_t *conf, sh_config_t **out)
{
    sh_config_t *c;
    sh_err_t rc;

    if (conf == NULL || out == NULL)
        return SH_EINVAL;
    rc = sh_config_new(&c);
    if (rc != SH_OK) {
        *out = NULL;
        return rc;
    }
    for (size_t i = 0; i < sh__conf_nkeys; i++) {
        if (conf->values[i] == NULL)
            continue;
        c->values[i] = strdup(conf->values[i]);
        if (c->values[i] == NULL) {
            sh_config_free(c);
            *out = NULL;
            return SH_ENOMEM;
        }
    }
    c->log_cb = conf->log_cb;
    c->log_arg = conf->log_arg;
    *out = c;
    return SH_OK;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *yes[] = { "true", "1", "yes", "on" };
    static const char *no[] = { "false", "0", "no", "off" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (*s == '\0' || *s == ' ' || *s == '+')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;

    while (*p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p += len;
        if (*p == '|')
            p++;
    }
    return false;
}

/* Check @value for @k; on error fill errbuf naming the key. */
static sh_err_t validate(const struct sh__conf_key *k, const char *value,
                         char *errbuf, size_t errbuf_len)
{
    int64_t iv;
    bool bv;

    switch (k->type) {
    case SH__CONF_STRING:
    case SH__CONF_SECRET:
        if (strcmp(k->name, "jwt-secret") == 0 && value[0] != '\0' &&
            strlen(value) < 32) {
            sh__errbuf(errbuf, errbuf_len,
                       "%s: must be at least 32 bytes", k->name);
            return SH_EINVAL;
        }
        if (strcmp(k->name, "store") == 0 &&
            strncmp(value, "sqlite:", 7) != 0 &&
            strncmp(value, "postgres://", 11) != 0 &&
            strncmp(value, "postgresql://", 13) != 0) {
            sh__errbuf(errbuf, errbuf_len,
                       "store: '%s' is not sqlite:PATH, sqlite::memory: "
                       "or a postgres:// URI", value);
            return SH_EINVAL;
        }
        if (strcmp(k->name, "store") == 0 && strcmp(value, "sqlite:") == 0) {
            sh__errbuf(errbuf, errbuf_len, "store: sqlite: needs a path");
            return SH_EINVAL;
        }
        if (strcmp(k->name, "store-read") == 0 && value[0] != '\0' &&
            ((strncmp(value, "sqlite:", 7) != 0 &&
              strncmp(value, "postgres://", 11) != 0 &&
              strncmp(value, "postgresql://", 13) != 0) ||
             strcmp(value, "sqlite:") == 0 ||
             strcmp(value, "sqlite::memory:") == 0)) {
            sh__errbuf(errbuf, errbuf_len,
                       "store-read: '%s' is not empty, sqlite:PATH or a "
                       "postgres:// URI", value);
            return SH_EINVAL;
        }
        if (strcmp(k->name, "bus") == 0 && strcmp(value, "local") != 0 &&
            strncmp(value, "redis://", 8) != 0) {
            sh__errbuf(errbuf, errbuf_len,
                       "bus: '%s' is not local or a redis:// URI", value);
            return SH_EINVAL;
        }
        if (strcmp(k->name, "trusted-proxies") == 0) {
            struct sh__cidr *list;
            size_t n;
            char why[128];
            sh_err_t rc = sh__cidr_list_parse(value, &list, &n, why,
                                              sizeof why);
            free(list);
            if (rc != SH_OK) {
                sh__errbuf(errbuf, errbuf_len, "trusted-proxies: %s", why);
                return rc;
            }
        }
        if (strcmp(k->name, "redis") == 0 && value[0] != '\0' &&
            strncmp(value, "redis://", 8) != 0) {
            sh__errbuf(errbuf, errbuf_len,
                       "redis: expected empty or a redis:// URI");
            return SH_EINVAL;
        }
        if (strcmp(k->name, "listen") == 0) {
            const char *colon = strrchr(value, ':');
            int64_t port;
            if (colon == NULL || colon == value ||
                !parse_int(colon + 1, &port) || port < 0 || port > 65535) {
                sh__errbuf(errbuf, errbuf_len,
                           "listen: '%s' is not HOST:PORT with a port "
                           "0..65535", value);
                return SH_EINVAL;
            }
        }
        return SH_OK;
    case SH__CONF_INT:
        if (!parse_int(value, &iv)) {
            sh__errbuf(errbuf, errbuf_len, "%s: '%s' is not an integer",
                       k->name, value);
            return SH_EINVAL;
        }
        if (iv < k->min || iv > k->max) {
            sh__errbuf(errbuf, errbuf_len,
                       "%s: %" PRId64 " is out of range %" PRId64
                       "..%" PRId64, k->name, iv, k->min, k->max);
            return SH_EINVAL;
        }
        return SH_OK;
    case SH__CONF_BOOL:
        if (!parse_bool(value, &bv)) {
            sh__errbuf(errbuf, errbuf_len, "%s: '%s' is not a boolean "
                       "(true or false)", k->name, value);
            return SH_EINVAL;
        }
        return SH_OK;
    case SH__CONF_ENUM:
        if (!enum_has(k->choices, value)) {
            sh__errbuf(errbuf, errbuf_len, "%s: '%s' is not one of %s",
                       k->name, value, k->choices);
            return SH_EINVAL;
        }
        return SH_OK;
    }
    return SH_EINTERNAL;
}

SH_API sh_err_t sh_config_set(sh_config_t *conf, const char *key,
                              const char *value, char *errbuf,
                              size_t errbuf_len)
{
    const struct sh__conf_key *k;
    size_t idx;
    char *copy;
    sh_err_t rc;

    if (conf == NULL || key == NULL || value == NULL) {
        sh__errbuf(errbuf, errbuf_len, "configuration, key and value "
                   "must not be NULL");
        return SH_EINVAL;
    }
    k = find_key(key, &idx);
    if (k == NULL) {
        sh__errbuf(errbuf, errbuf_len, "unknown configuration key '%s'",
                   key);
        return SH_EINVAL;
    }
    rc = validate(k, value, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    copy = strdup(value);
    if (copy == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    if (conf->values[idx] != NULL && k->type == SH__CONF_SECRET)
        memset(conf->values[idx], 0, strlen(conf->values[idx]));
    free(conf->values[idx]);
    conf->values[idx] = copy;
    return SH_OK;
}

static const char *value_of(const sh_config_t *conf, size_t idx)
{
    return conf->values[idx] != NULL ? conf->values[idx]
                                     : sh__conf_keys[idx].def;
}

SH_API sh_err_t sh_config_get(const sh_config_t *conf, const char *key,
                              char *buf, size_t *buf_len)
{
    size_t idx, n;
    const char *v;

    if (conf == NULL || key == NULL || buf_len == NULL ||
        find_key(key, &idx) == NULL)
        return SH_EINVAL;
    v = value_of(conf, idx);
    n = strlen(v);
    if (buf == NULL || *buf_len <= n) {
        *buf_len = n;
        return SH_ETOOBIG;
    }
    memcpy(buf, v, n + 1);
    *buf_len = n;
    return SH_OK;
}

/* Trim ASCII spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
                     e[-1] == '\n'))
        *--e = '\0';
    return s;
}

SH_API sh_err_t sh_config_load_file(sh_config_t *conf, const char *path,
                                    char *errbuf, size_t errbuf_len)
{
    char line[4096], inner[SH_ERRBUF_SIZE];
    unsigned lineno = 0;
    sh_err_t rc = SH_OK;
    FILE *f;

    if (conf == NULL || path == NULL)
        return SH_EINVAL;
    f = fopen(path, "re");
    if (f == NULL) {
        sh__errbuf(errbuf, errbuf_len, "%s: %s", path, strerror(errno));
        return SH_EIO;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *s, *eq;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            sh__errbuf(errbuf, errbuf_len, "%s:%u: line too long", path,
                       lineno);
            rc = SH_EINVAL;
            break;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (eq == NULL) {
            sh__errbuf(errbuf, errbuf_len, "%s:%u: expected key = value",
                       path, lineno);
            rc = SH_EINVAL;
            break;
        }
        *eq = '\0';
        rc = sh_config_set(conf, trim(s), trim(eq + 1), inner, sizeof inner);
        if (rc != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "%s:%u: %s", path, lineno, inner);
            break;
        }
    }
    if (rc == SH_OK && ferror(f)) {
        sh__errbuf(errbuf, errbuf_len, "%s: read error", path);
        rc = SH_EIO;
    }
    fclose(f);
    return rc;
}

SH_API sh_err_t sh_config_load_env(sh_config_t *conf, char *errbuf,
                                   size_t errbuf_len)
{
    char var[128], inner[SH_ERRBUF_SIZE];

    if (conf == NULL)
        return SH_EINVAL;
    for (size_t i = 0; i < sh__conf_nkeys; i++) {
        const char *name = sh__conf_keys[i].name, *v;
        size_t n = 0;
        sh_err_t rc;

        n = (size_t)snprintf(var, sizeof var, "STREAMHUB_");
        for (const char *p = name; *p != '\0' && n + 1 < sizeof var; p++) {
            char ch = *p;
            if (ch == '-' || ch == '.')
                ch = '_';
            else if (ch >= 'a' && ch <= 'z')
                ch = (char)(ch - 'a' + 'A');
            var[n++] = ch;
        }
        var[n] = '\0';
        v = getenv(var);
        if (v == NULL)
            continue;
        rc = sh_config_set(conf, name, v, inner, sizeof inner);
        if (rc != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "%s: %s", var, inner);
            return rc;
        }
    }
    return SH_OK;
}

SH_API void sh_config_set_log_cb(sh_config_t *conf, sh_log_cb cb, void *arg)
{
    if (conf == NULL)
        return;
    conf->log_cb = cb;
    conf->log_arg = arg;
}

SH_API sh_err_t sh_config_describe(size_t index, const char **name,
                                   const char **default_value,
                                   const char **doc)
{
    if (index >= sh__conf_nkeys)
        return SH_ENOTFOUND;
    if (name != NULL)
        *name = sh__conf_keys[index].name;
    if (default_value != NULL)
        *default_value = sh__conf_keys[index].def;
    if (doc != NULL)
        *doc = sh__conf_keys[index].doc;
    return SH_OK;
}

const char *sh__config_str(const sh_config_t *conf, const char *key)
{
    size_t idx = 0;
    const struct sh__conf_key *k = find_key(key, &idx);

    assert(k != NULL && k->type != SH__CONF_INT && k->type != SH__CONF_BOOL);
    (void)k;
    return value_of(conf, idx);
}

int64_t sh__config_int(const sh_config_t *conf, const char *key)
{
    size_t idx = 0;
    const struct sh__conf_key *k = find_key(key, &idx);
    int64_t v = 0;

    assert(k != NULL && k->type == SH__CONF_INT);
    (void)k;
    (void)parse_int(value_of(conf, idx), &v);
    return v;
}

bool sh__config_bool(const sh_config_t *conf, const char *key)
{
    size_t idx = 0;
    const struct sh__conf_key *k = find_key(key, &idx);
    bool v = false;

    assert(k != NULL && k->type == SH__CONF_BOOL);
    (void)k;
    (void)parse_bool(value_of(conf, idx), &v);
    return v;
}

bool sh__config_is_set(const sh_config_t *conf, const char *key)
{
    size_t idx = 0;

    if (find_key(key, &idx) == NULL)
        return false;
    return conf->values[idx] != NULL;
}

sh_log_cb sh__config_log_cb(const sh_config_t *conf, void **arg)
{
    *arg = conf->log_arg;
    return conf->log_cb;
}
