/* tests/fuzz/fuzz_ws_codec.c: arbitrary client bytes through the message
 * reader, fed whole and then in two parts; both must agree. */
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(const uint8_t *data, size_t size, size_t step)
{
    uint8_t *buf = malloc(size + 1);
    struct sh__ws_reader r;
    size_t start = 0, avail = 0, used;
    int events = 0;

    if (buf == NULL)
        return -1;
    memcpy(buf, data, size);
    sh__ws_reader_init(&r, 4096);
    for (;;) {
        struct sh__ws_event ev;
        uint16_t code;
        enum sh__ws_status st = sh__ws_reader_feed(&r, buf + start,
                                                   avail - start, &used, &ev,
                                                   &code);
        start += used;
        if (st == SH__WS_ERROR) {
            events = -(int)code;
            break;
        }
        if (st == SH__WS_OK) {
            events++;
            if (ev.kind == SH__WS_EV_TEXT &&
                !sh__utf8_validate(ev.data, ev.len))
                abort();
            if (ev.kind == SH__WS_EV_CLOSE)
                break;
            continue;
        }
        if (avail == size)
            break;
        avail = avail + step > size ? size : avail + step;
    }
    sh__ws_reader_clear(&r);
    free(buf);
    return events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (run(data, size, size ? size : 1) != run(data, size, 7))
        abort();
    return 0;
}
