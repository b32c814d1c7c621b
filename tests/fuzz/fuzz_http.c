/* tests/fuzz/fuzz_http.c: arbitrary bytes through the HTTP request layer,
 * whole and in 3-byte pieces; verdict and request count must agree. */
#include <stdlib.h>

#include "gateway/gateway_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(const uint8_t *data, size_t size, size_t step)
{
    static const struct sh__http_limits lim = { 512, 8, 1024, 4 };
    struct sh__http_conn *c;
    struct sh__http_request *r;
    size_t off = 0, used;
    int n = 0;

    if (sh__http_conn_new(&lim, &c) != SH_OK)
        return -1;
    while (off < size) {
        size_t k = size - off < step ? size - off : step;
        enum sh__http_status st = sh__http_conn_feed(c, data + off, k, &used);
        while ((r = sh__http_conn_next(c)) != NULL) {
            if (r->body_len > lim.max_body_bytes)
                abort();
            n++;
            sh__http_request_free(r);
        }
        if (st == SH__HTTP_ERROR) {
            n = -sh__http_conn_error(c, NULL) * 100 - n;
            break;
        }
        if (st == SH__HTTP_UPGRADE)
            break;
        off += used;
    }
    sh__http_conn_free(c);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (run(data, size, size ? size : 1) != run(data, size, 3))
        abort();
    return 0;
}
