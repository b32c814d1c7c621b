/* tests/fuzz/fuzz_native.c: the native protocol's command parser on any
 * bytes: never crashes, never leaks, and a verdict of OK always comes with
 * an id and the fields its op needs. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/native_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sh__native_cmd cmd;
    const char *why = NULL;
    enum sh__native_verdict v =
        sh__native_parse((const char *)data, size, &cmd, &why);

    assert(why != NULL);
    if (v == SH__NATIVE_OK) {
        assert(cmd.id != NULL && cmd.root != NULL);
        switch (cmd.op) {
        case SH__OP_AUTH:
        case SH__OP_REFRESH:
            assert(cmd.token != NULL);
            break;
        case SH__OP_SUBSCRIBE:
        case SH__OP_UNSUBSCRIBE:
            assert(cmd.channel != NULL);
            break;
        case SH__OP_CHAT_SEND:
            assert(cmd.stream_id != NULL && cmd.text != NULL);
            break;
        case SH__OP_PUBLISH:
            assert(cmd.channel != NULL);
            break;
        case SH__OP_PING:
            break;
        }
    } else if (v == SH__NATIVE_CLOSE) {
        assert(cmd.root == NULL);
    }
    sh__native_cmd_clear(&cmd);
    return 0;
}
