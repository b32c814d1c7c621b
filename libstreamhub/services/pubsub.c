/* libstreamhub/services/pubsub.c: the public publish/subscribe calls
 * (bus.h).
 *
 * Thin wrappers over the hub's bus (bus/bus_int.h): they refuse work once
 * the hub is closing and check what the bus does not, the event type and
 * the JSON text of sh_publish(), which json-c parses strictly (valid UTF-8,
 * nothing after the value but white space, bounded depth) so that the
 * event's data is JSON whatever the caller hands us.
 */
#include <string.h>

#include "services_int.h"

#define TYPE_MAX 64          /* bytes of an event type */
#define JSON_DEPTH 64        /* nesting accepted in published data */

static sh_err_t hub_check(const sh_hub_t *hub, char *errbuf,
                          size_t errbuf_len)
{
    sh_err_t rc = sh__hub_live(hub);

    if (rc == SH_EINVAL)
        sh__errbuf(errbuf, errbuf_len, "hub must not be NULL");
    else if (rc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "hub is closing");
    return rc;
}

static bool type_ok(const char *type)
{
    size_t n;

    if (type == NULL)
        return false;
    n = strnlen(type, TYPE_MAX + 1);
    if (n == 0 || n > TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)type[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse exactly one JSON value from @text (@len bytes).  SH_OK with *out
 * a new reference (NULL for JSON null). */
static sh_err_t parse_json(const char *text, size_t len, json_object **out,
                           char *errbuf, size_t errbuf_len)
{
    json_tokener *tok;
    json_object *obj;
    enum json_tokener_error jerr;
    size_t end;

    *out = NULL;
    if (len == 0 || memchr(text, '\0', len) != NULL) {
        sh__errbuf(errbuf, errbuf_len, "data: %s", len == 0 ?
                   "empty, expected one JSON value" : "contains a NUL byte");
        return SH_EINVAL;
    }
    tok = json_tokener_new_ex(JSON_DEPTH);
    if (tok == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                           JSON_TOKENER_VALIDATE_UTF8);
    /* len fits: it was checked against ws.max-message-bytes (<= 16 MiB). */
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* A value that may go on (a number, or a cut text): end it. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
    } else {
        end = json_tokener_get_parse_end(tok);
    }
    if (jerr != json_tokener_success) {
        sh__errbuf(errbuf, errbuf_len, "data is not JSON: %s",
                   json_tokener_error_desc(jerr));
        json_object_put(obj);
        json_tokener_free(tok);
        return SH_EINVAL;
    }
    json_tokener_free(tok);
    while (end < len && json_space(text[end]))
        end++;
    if (end != len) {
        sh__errbuf(errbuf, errbuf_len, "data is not JSON: text after the "
                   "value at byte %zu", end);
        json_object_put(obj);
        return SH_EINVAL;
    }
    *out = obj;
    return SH_OK;
}

SH_API sh_err_t sh_subscribe(sh_hub_t *hub, const char *channel,
                             const sh_position_t *since, sh_event_cb cb,
                             void *arg, sh_subscription_t **out,
                             sh_subscribe_result_t *result, char *errbuf,
                             size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if (result != NULL)
        memset(result, 0, sizeof *result);
    rc = hub_check(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    return sh__bus_subscribe_held(hub->bus, channel, since, cb, arg, out,
                                  result, errbuf, errbuf_len);
}

SH_API void sh_unsubscribe(sh_subscription_t *sub)
{
    sh__bus_unsubscribe(sub);
}

SH_API void sh_subscription_free(sh_subscription_t *sub)
{
    sh__bus_sub_release(sub);
}

SH_API sh_err_t sh_publish(sh_hub_t *hub, const char *channel,
                           const char *type, const char *data_json,
                           size_t len, uint64_t *offset_out, char *errbuf,
                           size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    json_object *data = NULL;
    int64_t max;
    sh_err_t rc;

    if (offset_out != NULL)
        *offset_out = 0;
    rc = hub_check(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (!type_ok(type)) {
        sh__errbuf(errbuf, errbuf_len, "type: expected 1..%d bytes of "
                   "[A-Za-z0-9._-]", TYPE_MAX);
        return SH_EINVAL;
    }
    if (data_json == NULL) {
        sh__errbuf(errbuf, errbuf_len, "data must not be NULL");
        return SH_EINVAL;
    }
    max = sh__config_int(hub->conf, "ws.max-message-bytes");
    if (len > (uint64_t)max) {
        sh__errbuf(errbuf, errbuf_len, "data: %zu bytes, over "
                   "ws.max-message-bytes (%lld)", len, (long long)max);
        return SH_ETOOBIG;
    }
    rc = parse_json(data_json, len, &data, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    return sh__bus_publish(hub->bus, channel, type, data, offset_out, errbuf,
                           errbuf_len);
}

SH_API sh_err_t sh_channel_position(sh_hub_t *hub, const char *channel,
                                    sh_position_t *out, char *errbuf,
                                    size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    sh_err_t rc;

    if (out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out must not be NULL");
        return SH_EINVAL;
    }
    memset(out, 0, sizeof *out);
    rc = hub_check(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = sh__bus_position(hub->bus, channel, out);
    if (rc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "bus: %s", sh_strerror(rc));
    return rc;
}
