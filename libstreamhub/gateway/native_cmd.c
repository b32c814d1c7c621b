/* libstreamhub/gateway/native_cmd.c: see native_cmd.h. */
#include <stdint.h>
#include <string.h>

#include "native_cmd.h"

#define MAX_DEPTH 64

static const char *str_field(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static json_object *parse_one(const char *text, size_t len)
{
    json_tokener *tok;
    json_object *obj;
    size_t off;

    if (len > (size_t)INT32_MAX)
        return NULL;
    tok = json_tokener_new_ex(MAX_DEPTH);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, text, (int)len);
    if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(obj);
        json_tokener_free(tok);
        return NULL;
    }
    /* Only whitespace may follow the value. */
    off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    for (; off < len; off++) {
        if (text[off] != ' ' && text[off] != '\t' && text[off] != '\r' &&
            text[off] != '\n') {
            json_object_put(obj);
            return NULL;
        }
    }
    return obj;
}

/* Whether @v is an integer that json-c holds exactly.  json-c saturates
 * an integer literal beyond its range (to INT64_MIN below, UINT64_MAX
 * above) without telling, so a command whose id is out of range would be
 * answered under another id; those two values are refused instead. */
static bool exact_int(json_object *v)
{
    if (!json_object_is_type(v, json_type_int))
        return false;
    if (json_object_get_int64(v) == INT64_MIN)
        return false;
    return json_object_get_uint64(v) != UINT64_MAX;
}

static bool parse_since(json_object *o, struct sh__native_cmd *cmd)
{
    json_object *since, *e, *off;
    const char *epoch;

    if (!json_object_object_get_ex(o, "since", &since) ||
        json_object_is_type(since, json_type_null))
        return true;
    if (!json_object_is_type(since, json_type_object) ||
        !json_object_object_get_ex(since, "epoch", &e) ||
        !json_object_is_type(e, json_type_string) ||
        !json_object_object_get_ex(since, "offset", &off) ||
        !exact_int(off) || json_object_get_int64(off) < 0)
        return false;
    epoch = json_object_get_string(e);
    if (strlen(epoch) != (size_t)json_object_get_string_len(e) ||
        strlen(epoch) >= SH_EPOCH_SIZE)
        return false;
    memset(&cmd->since, 0, sizeof cmd->since);
    memcpy(cmd->since.epoch, epoch, strlen(epoch) + 1);
    cmd->since.offset = (uint64_t)json_object_get_int64(off);
    cmd->has_since = true;
    return true;
}

enum sh__native_verdict sh__native_parse(const char *text, size_t len,
                                         struct sh__native_cmd *cmd,
                                         const char **why)
{
    static const struct {
        const char *name;
        enum sh__native_op op;
    } ops[] = {
        { "auth", SH__OP_AUTH },           { "refresh", SH__OP_REFRESH },
        { "subscribe", SH__OP_SUBSCRIBE }, { "unsubscribe", SH__OP_UNSUBSCRIBE },
        { "chat.send", SH__OP_CHAT_SEND }, { "publish", SH__OP_PUBLISH },
        { "ping", SH__OP_PING },
    };
    json_object *o, *id, *tv;
    const char *op;
    size_t i;

    memset(cmd, 0, sizeof *cmd);
    *why = "";
    o = parse_one(text, len);
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return SH__NATIVE_CLOSE;
    }
    cmd->root = o;
    if (json_object_object_get_ex(o, "id", &id) && exact_int(id))
        cmd->id = id;
    if (cmd->id == NULL) {
        *why = "id (an integer, -2^63 < id < 2^64 - 1) is required";
        return SH__NATIVE_REPLY;
    }
    /* A string member with U+0000 would be cut short at the NUL by every
     * C string use below (a channel "live\u0000x" read as "live"); only
     * the chat text, which carries its length, may hold one. */
    {
        json_object_object_foreach(o, key, val) {
            if (strcmp(key, "text") != 0 &&
                json_object_is_type(val, json_type_string) &&
                memchr(json_object_get_string(val), '\0',
                       (size_t)json_object_get_string_len(val)) != NULL) {
                *why = "strings must not contain U+0000";
                return SH__NATIVE_REPLY;
            }
        }
    }
    op = str_field(o, "op");
    if (op == NULL) {
        *why = "op (a string) is required";
        return SH__NATIVE_REPLY;
    }
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(op, ops[i].name) == 0)
            break;
    }
    if (i == sizeof ops / sizeof ops[0]) {
        *why = "unknown op";
        return SH__NATIVE_REPLY;
    }
    cmd->op = ops[i].op;
    switch (cmd->op) {
    case SH__OP_AUTH:
    case SH__OP_REFRESH:
        cmd->token = str_field(o, "token");
        if (cmd->token == NULL) {
            *why = "token (a string) is required";
            return SH__NATIVE_REPLY;
        }
        break;
    case SH__OP_SUBSCRIBE:
        if (!parse_since(o, cmd)) {
            *why = "since must be {\"epoch\": string, \"offset\": integer "
                   ">= 0}";
            return SH__NATIVE_REPLY;
        }
        cmd->channel = str_field(o, "channel");
        if (cmd->channel == NULL) {
            *why = "channel (a string) is required";
            return SH__NATIVE_REPLY;
        }
        cmd->api_key = str_field(o, "apiKey");   /* app: channels */
        break;
    case SH__OP_UNSUBSCRIBE:
        cmd->channel = str_field(o, "channel");
        if (cmd->channel == NULL) {
            *why = "channel (a string) is required";
            return SH__NATIVE_REPLY;
        }
        break;
    case SH__OP_CHAT_SEND:
        cmd->stream_id = str_field(o, "streamId");
        if (cmd->stream_id == NULL ||
            !json_object_object_get_ex(o, "text", &tv) ||
            !json_object_is_type(tv, json_type_string)) {
            *why = "streamId and text (strings) are required";
            return SH__NATIVE_REPLY;
        }
        cmd->text = json_object_get_string(tv);
        cmd->text_len = (size_t)json_object_get_string_len(tv);
        break;
    case SH__OP_PUBLISH:
        cmd->channel = str_field(o, "channel");
        if (cmd->channel == NULL ||
            !json_object_object_get_ex(o, "data", &cmd->data)) {
            *why = "channel and data are required";
            return SH__NATIVE_REPLY;
        }
        cmd->type = str_field(o, "type");
        cmd->api_key = str_field(o, "apiKey");
        break;
    case SH__OP_PING:
        break;
    }
    return SH__NATIVE_OK;
}

void sh__native_cmd_clear(struct sh__native_cmd *cmd)
{
    json_object_put(cmd->root);
    memset(cmd, 0, sizeof *cmd);
}
