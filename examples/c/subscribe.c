/* examples/c/subscribe.c: a native-protocol client (docs/protocol.md).
 *
 *   subscribe [--token JWT] [--count N] HOST:PORT CHANNEL...
 *
 * Opens ws://HOST:PORT/ws with the subprotocol streamhub.v1, sends `auth`
 * when a token is given, subscribes to each CHANNEL, and prints every
 * frame the server sends, one JSON object a line, as it arrives.  With
 * --count N it closes the connection (1000) after N events (frames
 * without an "id") and exits 0; the server's close frame prints as
 * `close CODE REASON` and exits 1.
 *
 * Unlike the other examples it does not link libstreamhub: it is what a
 * client in any language does, on nothing but a TCP socket, with libsodium
 * for the random key and masks and OpenSSL for the handshake's SHA-1.
 * Blocking I/O, one connection: a reading aid, not a production client
 * (no TLS, no reconnect; docs/protocol.md says how to resume).
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sodium.h>

#define MAX_MESSAGE (1u << 20)  /* the server's frames stay far below */

static int fd = -1;

static int fail(const char *what)
{
    fprintf(stderr, "subscribe: %s\n", what);
    return 1;
}

static bool write_all(const void *p, size_t n)
{
    const unsigned char *b = p;

    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static bool read_all(void *p, size_t n)
{
    unsigned char *b = p;

    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* One client frame: FIN set, masked with a fresh key (RFC 6455 5.3). */
static bool send_frame(unsigned opcode, const void *data, size_t len)
{
    unsigned char head[14], mask[4], *buf;
    size_t h = 0;
    bool ok;

    head[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        head[h++] = 0x80 | 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    randombytes_buf(mask, sizeof mask);
    memcpy(head + h, mask, 4);
    h += 4;
    buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return false;
    for (size_t i = 0; i < len; i++)
        buf[i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    ok = write_all(head, h) && write_all(buf, len);
    free(buf);
    return ok;
}

static bool send_text(const char *text)
{
    return send_frame(0x1, text, strlen(text));
}

/* One server frame (unmasked, unfragmented: the server never fragments).
 * *@out is malloc'd and NUL-terminated. */
static bool read_frame(unsigned *opcode, char **out, size_t *len)
{
    unsigned char h[2], ext[8];
    uint64_t n;

    if (!read_all(h, 2))
        return false;
    *opcode = h[0] & 0x0f;
    n = h[1] & 0x7f;
    if (n == 126 || n == 127) {
        size_t k = n == 126 ? 2 : 8;
        if (!read_all(ext, k))
            return false;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = n << 8 | ext[i];
    }
    if (n > MAX_MESSAGE || (*out = malloc((size_t)n + 1)) == NULL)
        return false;
    if (!read_all(*out, (size_t)n)) {
        free(*out);
        return false;
    }
    (*out)[n] = '\0';
    *len = (size_t)n;
    return true;
}

static bool connect_to(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;

    if (colon == NULL || (size_t)(colon - hostport) >= sizeof host)
        return false;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return false;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0;
}

/* The opening handshake (RFC 6455 4.1): 101, and the accept value that
 * proves the server read our key. */
static bool handshake(const char *hostport)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char nonce[16], digest[SHA_DIGEST_LENGTH];
    char key[32], want[64], cat[96], req[512], resp[2048];
    size_t n = 0;

    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(key, sizeof key, nonce, sizeof nonce,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(req, sizeof req,
             "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: streamhub.v1\r\n\r\n", hostport, key);
    if (!write_all(req, strlen(req)))
        return false;
    /* Byte by byte up to the blank line: nothing of the first frame is
     * read by mistake. */
    while (n + 1 < sizeof resp) {
        if (!read_all(resp + n, 1))
            return false;
        n++;
        if (n >= 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    resp[n] = '\0';
    snprintf(cat, sizeof cat, "%s%s", key, guid);
    SHA1((const unsigned char *)cat, strlen(cat), digest);
    sodium_bin2base64(want, sizeof want, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL);
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0 || strstr(resp, want) == NULL) {
        fprintf(stderr, "subscribe: handshake refused:\n%s", resp);
        return false;
    }
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: subscribe [--token JWT] [--count N] "
                    "HOST:PORT CHANNEL...\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *token = NULL;
    long count = -1, events = 0;
    int i = 1, id = 0;
    char cmd[4096];

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--token") == 0)
            token = argv[i + 1];
        else if (strcmp(argv[i], "--count") == 0)
            count = strtol(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    if (argc - i < 2)
        return usage();
    if (sodium_init() < 0)
        return fail("libsodium cannot start");
    if (!connect_to(argv[i]))
        return fail("cannot connect");
    if (!handshake(argv[i]))
        return 1;
    /* Tokens and channel names hold no character JSON must escape (a
     * JWT is base64url, a channel is a prefix and an id). */
    if (token != NULL) {
        if (snprintf(cmd, sizeof cmd,
                     "{\"id\":%d,\"op\":\"auth\",\"token\":\"%s\"}", ++id,
                     token) >= (int)sizeof cmd)
            return fail("token too long");
        if (!send_text(cmd))
            return fail("send failed");
    }
    for (int c = i + 1; c < argc; c++) {
        if (snprintf(cmd, sizeof cmd,
                     "{\"id\":%d,\"op\":\"subscribe\",\"channel\":\"%s\"}",
                     ++id, argv[c]) >= (int)sizeof cmd)
            return fail("channel too long");
        if (!send_text(cmd))
            return fail("send failed");
    }
    while (count < 0 || events < count) {
        unsigned op;
        char *data;
        size_t len;

        if (!read_frame(&op, &data, &len))
            return fail("connection lost");
        if (op == 0x1) {                    /* text: one JSON object */
            printf("%s\n", data);
            fflush(stdout);
            if (strncmp(data, "{\"id\":", 6) != 0)
                events++;
        } else if (op == 0x9) {             /* ping: answer it */
            send_frame(0xA, data, len);
        } else if (op == 0x8) {             /* the server closes */
            printf("close %u %s\n",
                   len >= 2 ? (unsigned)((unsigned char)data[0] << 8 |
                                         (unsigned char)data[1]) : 1005,
                   len > 2 ? data + 2 : "");
            free(data);
            return 1;
        }
        free(data);
    }
    send_frame(0x8, "\x03\xe8", 2);         /* 1000: normal closure */
    close(fd);
    return 0;
}
