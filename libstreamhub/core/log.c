/* libstreamhub/core/log.c: JSON-lines logging (log.h).
 *
 * Each line is built with json-c, so field values are escaped correctly
 * whatever they hold, and handed whole to the sink: one write(2) per line on
 * stderr, so that lines from several threads never interleave.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_int.h"

bool sh__log_level_parse(const char *s, sh_log_level_t *out)
{
    static const struct {
        const char *name;
        sh_log_level_t level;
    } levels[] = {
        { "debug", SH_LOG_DEBUG }, { "info", SH_LOG_INFO },
        { "warn", SH_LOG_WARN },   { "error", SH_LOG_ERROR },
    };

    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (strcmp(s, levels[i].name) == 0) {
            *out = levels[i].level;
            return true;
        }
    }
    return false;
}

const char *sh__log_level_name(sh_log_level_t level)
{
    switch (level) {
    case SH_LOG_DEBUG: return "debug";
    case SH_LOG_INFO: return "info";
    case SH_LOG_WARN: return "warn";
    case SH_LOG_ERROR: return "error";
    }
    return "info";
}

void sh__log_init(struct sh__log *lg, const sh_config_t *conf)
{
    lg->level = SH_LOG_INFO;
    lg->cb = NULL;
    lg->cb_arg = NULL;
    if (conf == NULL)
        return;
    (void)sh__log_level_parse(sh__config_str(conf, "log-level"), &lg->level);
    lg->cb = sh__config_log_cb(conf, &lg->cb_arg);
}

static void emit(const struct sh__log *lg, sh_log_level_t level,
                 const char *line, size_t len)
{
    if (lg->cb != NULL) {
        lg->cb(lg->cb_arg, level, line, len);
        return;
    }
    /* One writev-free write: copy the line and its newline together. */
    char stackbuf[1024];
    char *buf = len + 1 <= sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (buf == NULL)
        return;
    memcpy(buf, line, len);
    buf[len] = '\n';
    ssize_t off = 0, total = (ssize_t)len + 1;
    while (off < total) {
        ssize_t w = write(STDERR_FILENO, buf + off, (size_t)(total - off));
        if (w <= 0)
            break;
        off += w;
    }
    if (buf != stackbuf)
        free(buf);
}

void sh__log(const struct sh__log *lg, sh_log_level_t level, const char *msg,
             json_object *fields)
{
    char ts[SH__TS_LEN + 1];
    json_object *line;
    const char *text;
    size_t len;

    if (lg == NULL || !sh__log_on(lg, level)) {
        json_object_put(fields);
        return;
    }
    line = json_object_new_object();
    if (line == NULL) {
        json_object_put(fields);
        return;
    }
    sh__ts_format(sh__now_ms(), ts);
    json_object_object_add(line, "ts", json_object_new_string(ts));
    json_object_object_add(line, "level",
                           json_object_new_string(sh__log_level_name(level)));
    json_object_object_add(line, "msg", json_object_new_string(msg));
    if (fields != NULL && json_object_is_type(fields, json_type_object)) {
        json_object_object_foreach(fields, k, v) {
            if (strcmp(k, "ts") == 0 || strcmp(k, "level") == 0 ||
                strcmp(k, "msg") == 0)
                continue;
            json_object_object_add(line, k, json_object_get(v));
        }
    }
    json_object_put(fields);
    text = json_object_to_json_string_length(
        line, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (text != NULL)
        emit(lg, level, text, len);
    json_object_put(line);
}

void sh__log_kv(const struct sh__log *lg, sh_log_level_t level,
                const char *msg, ...)
{
    json_object *fields;
    va_list ap;

    if (lg == NULL || !sh__log_on(lg, level))
        return;
    fields = json_object_new_object();
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        const char *v;
        if (k == NULL)
            break;
        v = va_arg(ap, const char *);
        if (fields != NULL)
            json_object_object_add(fields, k,
                                   v != NULL ? json_object_new_string(v)
                                             : NULL);
    }
    va_end(ap);
    sh__log(lg, level, msg, fields);
}
