/* libstreamhub/gateway/native_cmd.h: parsing the native protocol's client
 * commands (../api/PROTOCOL.md, Native protocol), apart from any socket so
 * that it can be unit-tested and fuzzed.
 *
 * A command is one JSON object with an integer "id" and a string "op", plus
 * the op's fields.  Anything that is not one JSON object (invalid JSON,
 * trailing bytes, an array, nesting deeper than 64) closes the connection
 * with 4400; a missing or mistyped field is a bad_request answer that keeps
 * it open.
 */
#ifndef SH_GATEWAY_NATIVE_CMD_H
#define SH_GATEWAY_NATIVE_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "streamhub/bus.h"

enum sh__native_op {
    SH__OP_AUTH,
    SH__OP_REFRESH,
    SH__OP_SUBSCRIBE,
    SH__OP_UNSUBSCRIBE,
    SH__OP_CHAT_SEND,
    SH__OP_PUBLISH,
    SH__OP_PING
};

enum sh__native_verdict {
    SH__NATIVE_OK,        /* *cmd is filled */
    SH__NATIVE_REPLY,     /* answer bad_request with *why; keep the socket */
    SH__NATIVE_CLOSE      /* not a JSON object: close with 4400 */
};

/* A parsed command.  Strings point into @root and live until
 * sh__native_cmd_clear(). */
struct sh__native_cmd {
    json_object *root;         /* owned */
    json_object *id;           /* borrowed from root; NULL when absent/bad */
    enum sh__native_op op;
    const char *token;         /* auth, refresh */
    const char *channel;       /* subscribe, unsubscribe, publish */
    bool has_since;            /* subscribe */
    sh_position_t since;
    const char *stream_id;     /* chat.send */
    const char *text;          /* chat.send: may hold NULs; text_len bytes */
    size_t text_len;
    const char *type;          /* publish: NULL for the default */
    const char *api_key;       /* publish, subscribe (app: channels):
                                  NULL when absent */
    json_object *data;         /* publish: borrowed */
};

/* Parse @len bytes of @text.  On REPLY, *@why is a static message and
 * cmd->id (if any) the id to answer.  Always call sh__native_cmd_clear(). */
enum sh__native_verdict sh__native_parse(const char *text, size_t len,
                                         struct sh__native_cmd *cmd,
                                         const char **why);
void sh__native_cmd_clear(struct sh__native_cmd *cmd);

#endif
