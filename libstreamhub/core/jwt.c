/* libstreamhub/core/jwt.c: issue and verify access tokens (RFC 7519) the
 * way RFC 8725 asks.
 *
 * Design.  The server has one algorithm (jwt-alg) and one key; the token
 * header never chooses either.  Verification runs cheapest and safest
 * first, and touches the claims only after the signature holds:
 *
 *   1. length cap (SH__JWT_MAX_LEN), no NUL byte, exactly two dots, three
 *      non-empty segments;
 *   2. header: strict base64url without padding (libsodium), strict JSON
 *      object with valid UTF-8 (json-c), "alg" a string equal to the
 *      configured name byte for byte, "typ" absent or "JWT", no "crit" and
 *      no key-carrying member (jku, jwk, x5u, x5c); "kid" is ignored;
 *   3. signature over "header.payload": HMAC-SHA-256 compared with
 *      crypto_verify_32, or Ed25519 (crypto_sign_verify_detached);
 *   4. payload: a JSON object; sub (string) and exp (integer) required;
 *      exp, nbf and iat checked against @now_s with jwt-leeway-seconds;
 *      iss equal to jwt-issuer when present; roles an array of known names.
 *
 * Every failure is SH_EUNAUTHENTICATED with nothing else said.  The key set
 * is immutable after sh__jwt_keys_new(), so concurrent use needs no lock.
 * Secrets live in sodium_malloc'd memory (guarded, locked, wiped on free).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/jwt_int.h"

enum jwt_alg { JWT_HS256, JWT_EDDSA };

/* Invariants:
 *  1. alg == JWT_HS256: secret holds secret_len >= 32 bytes.
 *  2. alg == JWT_EDDSA: pk is the public key; can_sign iff sk holds the
 *     matching 64-byte secret key.
 *  3. Nothing changes after sh__jwt_keys_new() returns.
 */
struct sh__jwt_keys {
    enum jwt_alg alg;
    unsigned char *secret;     /* owned, sodium_malloc; HS256 only */
    size_t secret_len;
    unsigned char *sk;         /* owned, sodium_malloc, 64 bytes; EdDSA */
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    bool can_sign;
    char *issuer;              /* owned */
    int64_t ttl_s, leeway_s;
};

#define JWT_SECRET_MIN 32
#define JWT_MAX_ROLES 16
/* NumericDates above 2^53 are refused: no arithmetic on them overflows. */
#define JWT_TIME_MAX ((int64_t)1 << 53)

static const char *alg_name(enum jwt_alg a)
{
    return a == JWT_HS256 ? "HS256" : "EdDSA";
}

/* ---- keys ------------------------------------------------------------ */

/* Decode a configured key given in base64 (standard or URL-safe, padded or
 * not).  Returns the decoded length or -1. */
static int decode_key(const char *text, unsigned char *bin, size_t maxlen)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL,
        sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE,
        sodium_base64_VARIANT_URLSAFE_NO_PADDING,
    };
    size_t n = 0;

    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        if (sodium_base642bin(bin, maxlen, text, strlen(text), NULL, &n,
                              NULL, variants[i]) == 0)
            return (int)n;
    }
    return -1;
}

static sh_err_t load_hs256(struct sh__jwt_keys *k, const sh_config_t *conf,
                           const struct sh__log *log,
                           char *errbuf, size_t errbuf_len)
{
    const char *s = sh__config_str(conf, "jwt-secret");
    size_t len = s != NULL ? strlen(s) : 0;

    if (len == 0) {
        len = JWT_SECRET_MIN;
        k->secret = sodium_malloc(len);
        if (k->secret == NULL)
            return SH_ENOMEM;
        randombytes_buf(k->secret, len);
        sh__log_kv(log, SH_LOG_WARN,
                   "jwt-secret is unset: using a random secret; tokens "
                   "will not survive a restart nor work across nodes",
                   "key", "jwt-secret", NULL);
    } else {
        if (len < JWT_SECRET_MIN) {
            sh__errbuf(errbuf, errbuf_len,
                       "jwt-secret: at least %d bytes are required",
                       JWT_SECRET_MIN);
            return SH_EINVAL;
        }
        k->secret = sodium_malloc(len);
        if (k->secret == NULL)
            return SH_ENOMEM;
        memcpy(k->secret, s, len);
    }
    k->secret_len = len;
    return SH_OK;
}

static sh_err_t load_eddsa(struct sh__jwt_keys *k, const sh_config_t *conf,
                           const struct sh__log *log,
                           char *errbuf, size_t errbuf_len)
{
    const char *priv = sh__config_str(conf, "jwt-private-key");
    const char *pub = sh__config_str(conf, "jwt-public-key");
    unsigned char buf[crypto_sign_SECRETKEYBYTES];
    unsigned char seed[crypto_sign_SEEDBYTES];
    unsigned char derived[crypto_sign_PUBLICKEYBYTES];
    sh_err_t rc = SH_OK;
    int n;

    k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (k->sk == NULL)
        return SH_ENOMEM;
    if (priv != NULL && priv[0] != '\0') {
        n = decode_key(priv, buf, sizeof buf);
        if (n == crypto_sign_SEEDBYTES) {
            memcpy(seed, buf, sizeof seed);
        } else if (n == crypto_sign_SECRETKEYBYTES) {
            /* A secret key is seed || public key: rebuild it from the seed
             * and refuse one whose second half does not match. */
            crypto_sign_ed25519_sk_to_seed(seed, buf);
        } else {
            sh__errbuf(errbuf, errbuf_len, "jwt-private-key: expected the "
                       "base64 of a 32-byte seed or a 64-byte secret key");
            rc = SH_EINVAL;
            goto out;
        }
        crypto_sign_seed_keypair(derived, k->sk, seed);
        if (n == crypto_sign_SECRETKEYBYTES &&
            sodium_memcmp(derived, buf + crypto_sign_SEEDBYTES,
                          sizeof derived) != 0) {
            sh__errbuf(errbuf, errbuf_len, "jwt-private-key: the public "
                       "half does not match the seed");
            rc = SH_EINVAL;
            goto out;
        }
        memcpy(k->pk, derived, sizeof k->pk);
        k->can_sign = true;
    }
    if (pub != NULL && pub[0] != '\0') {
        n = decode_key(pub, buf, sizeof buf);
        if (n != crypto_sign_PUBLICKEYBYTES) {
            sh__errbuf(errbuf, errbuf_len, "jwt-public-key: expected the "
                       "base64 of a 32-byte Ed25519 public key");
            rc = SH_EINVAL;
            goto out;
        }
        if (k->can_sign && sodium_memcmp(buf, k->pk, sizeof k->pk) != 0) {
            sh__errbuf(errbuf, errbuf_len, "jwt-public-key: does not match "
                       "jwt-private-key");
            rc = SH_EINVAL;
            goto out;
        }
        memcpy(k->pk, buf, sizeof k->pk);
    } else if (!k->can_sign) {
        crypto_sign_keypair(k->pk, k->sk);
        k->can_sign = true;
        sh__log_kv(log, SH_LOG_WARN,
                   "jwt-private-key is unset: using a random Ed25519 key; "
                   "tokens will not survive a restart nor work across nodes",
                   "key", "jwt-private-key", NULL);
    }
out:
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

sh_err_t sh__jwt_keys_new(const sh_config_t *conf, const struct sh__log *log,
                          struct sh__jwt_keys **out,
                          char *errbuf, size_t errbuf_len)
{
    struct sh__jwt_keys *k;
    const char *alg, *iss;
    sh_err_t rc;

    if (out == NULL)
        return SH_EINVAL;
    *out = NULL;
    sh__errbuf(errbuf, errbuf_len, "%s", "");
    if (conf == NULL) {
        sh__errbuf(errbuf, errbuf_len, "no configuration");
        return SH_EINVAL;
    }
    if (sodium_init() < 0) {
        sh__errbuf(errbuf, errbuf_len, "libsodium failed to initialise");
        return SH_EINTERNAL;
    }
    k = calloc(1, sizeof *k);
    if (k == NULL)
        return SH_ENOMEM;
    alg = sh__config_str(conf, "jwt-alg");
    if (alg != NULL && strcmp(alg, "EdDSA") == 0) {
        k->alg = JWT_EDDSA;
    } else if (alg == NULL || strcmp(alg, "HS256") == 0) {
        k->alg = JWT_HS256;
    } else {
        sh__errbuf(errbuf, errbuf_len, "jwt-alg: HS256 or EdDSA expected");
        rc = SH_EINVAL;
        goto fail;
    }
    iss = sh__config_str(conf, "jwt-issuer");
    k->issuer = strdup(iss != NULL ? iss : "");
    if (k->issuer == NULL) {
        rc = SH_ENOMEM;
        goto fail;
    }
    k->ttl_s = sh__config_int(conf, "jwt-ttl-seconds");
    k->leeway_s = sh__config_int(conf, "jwt-leeway-seconds");
    if (k->leeway_s < 0)
        k->leeway_s = 0;
    rc = k->alg == JWT_HS256 ? load_hs256(k, conf, log, errbuf, errbuf_len)
                             : load_eddsa(k, conf, log, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto fail;
    *out = k;
    return SH_OK;
fail:
    sh__jwt_keys_free(k);
    return rc;
}

void sh__jwt_keys_free(struct sh__jwt_keys *k)
{
    if (k == NULL)
        return;
    sodium_free(k->secret);    /* wipes; NULL-safe */
    sodium_free(k->sk);
    free(k->issuer);
    sodium_memzero(k, sizeof *k);
    free(k);
}

int64_t sh__jwt_ttl(const struct sh__jwt_keys *k)
{
    return k != NULL ? k->ttl_s : 0;
}

/* ---- helpers --------------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp, min;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* A claim string fits its field when terminated inside it and valid. */
static bool field_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    return n < cap && utf8_valid((const unsigned char *)s, n);
}

static void hmac256(const struct sh__jwt_keys *k, const char *in, size_t len,
                    unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, k->secret, k->secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)in, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

/* Append the base64url (no padding) of @bin to @dst at @*pos; @dst has room
 * (the caller sized it). */
static void b64_append(char *dst, size_t cap, size_t *pos,
                       const void *bin, size_t len)
{
    sodium_bin2base64(dst + *pos, cap - *pos, bin, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *pos += strlen(dst + *pos);
}

static size_t b64_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n,
        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ---- issue ----------------------------------------------------------- */

/* Add @v under @key; false (and @v released) when @v is NULL or the add
 * fails, so a failed allocation never turns into a JSON null. */
static bool add(json_object *o, const char *key, json_object *v)
{
    if (v == NULL)
        return false;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static json_object *payload_json(const struct sh__jwt_keys *k,
                                 const struct sh__claims *c, int64_t iat,
                                 int64_t exp, const char *jti)
{
    static const struct { unsigned bit; const char *name; } roles[] = {
        { SH__ROLE_VIEWER, "VIEWER" },
        { SH__ROLE_MODERATOR, "MODERATOR" },
        { SH__ROLE_ADMIN, "ADMIN" },
    };
    json_object *o = json_object_new_object();
    json_object *arr = json_object_new_array();
    bool ok = o != NULL && arr != NULL;

    for (size_t i = 0; ok && i < sizeof roles / sizeof roles[0]; i++) {
        if (c->roles & roles[i].bit) {
            json_object *s = json_object_new_string(roles[i].name);
            ok = s != NULL && json_object_array_add(arr, s) == 0;
            if (!ok)
                json_object_put(s);
        }
    }
    ok = ok && add(o, "iss", json_object_new_string(k->issuer));
    ok = ok && add(o, "sub", json_object_new_string(c->sub));
    ok = ok && add(o, "username", json_object_new_string(c->username));
    if (ok) {
        ok = add(o, "roles", arr);
        arr = NULL;            /* added or released by add() */
    }
    ok = ok && add(o, "iat", json_object_new_int64(iat));
    if (c->nbf != 0)
        ok = ok && add(o, "nbf", json_object_new_int64(c->nbf));
    ok = ok && add(o, "exp", json_object_new_int64(exp));
    ok = ok && add(o, "jti", json_object_new_string(jti));
    if (!ok) {
        json_object_put(arr);
        json_object_put(o);
        return NULL;
    }
    return o;
}

sh_err_t sh__jwt_issue(const struct sh__jwt_keys *k, const struct sh__claims *c,
                       char **token_out)
{
    const int fl = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
    json_object *hdr = NULL, *pl = NULL;
    const char *hs, *ps;
    char jti[SH__UUID_LEN + 1];
    char *tok = NULL;
    size_t hlen, plen, cap, pos = 0;
    int64_t iat, exp;
    sh_err_t rc;

    if (token_out == NULL)
        return SH_EINVAL;
    *token_out = NULL;
    if (k == NULL || c == NULL)
        return SH_EINVAL;
    if (k->alg == JWT_EDDSA && !k->can_sign)
        return SH_ENOTSUP;
    iat = c->iat != 0 ? c->iat : sh__now_ms() / 1000;
    exp = c->exp != 0 ? c->exp : iat + k->ttl_s;
    if (!field_ok(c->sub, sizeof c->sub) || c->sub[0] == '\0' ||
        !field_ok(c->username, sizeof c->username) ||
        (c->roles & ~(SH__ROLE_VIEWER | SH__ROLE_MODERATOR | SH__ROLE_ADMIN))
        || iat <= 0 || iat > JWT_TIME_MAX || exp <= 0 || exp > JWT_TIME_MAX
        || c->nbf < 0 || c->nbf > JWT_TIME_MAX)
        return SH_EINVAL;
    sh__uuid4(jti);

    rc = SH_ENOMEM;
    hdr = json_object_new_object();
    if (hdr == NULL ||
        !add(hdr, "alg", json_object_new_string(alg_name(k->alg))) ||
        !add(hdr, "typ", json_object_new_string("JWT")))
        goto out;
    pl = payload_json(k, c, iat, exp, jti);
    if (pl == NULL)
        goto out;
    hs = json_object_to_json_string_ext(hdr, fl);
    ps = json_object_to_json_string_ext(pl, fl);
    if (hs == NULL || ps == NULL)
        goto out;
    hlen = strlen(hs);
    plen = strlen(ps);
    /* Each b64_len() counts a NUL: three of them pay for the two dots and
     * the final NUL. */
    cap = b64_len(hlen) + b64_len(plen) + b64_len(crypto_sign_BYTES);
    tok = malloc(cap);
    if (tok == NULL)
        goto out;
    b64_append(tok, cap, &pos, hs, hlen);
    tok[pos++] = '.';
    b64_append(tok, cap, &pos, ps, plen);
    if (k->alg == JWT_HS256) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        hmac256(k, tok, pos, mac);
        tok[pos++] = '.';
        b64_append(tok, cap, &pos, mac, sizeof mac);
    } else {
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, NULL, (const unsigned char *)tok, pos,
                             k->sk);
        tok[pos++] = '.';
        b64_append(tok, cap, &pos, sig, sizeof sig);
    }
    if (pos > SH__JWT_MAX_LEN) {
        /* Our own verify would refuse it: say so now. */
        rc = SH_EINVAL;
        goto out;
    }
    *token_out = tok;
    tok = NULL;
    rc = SH_OK;
out:
    free(tok);
    json_object_put(hdr);
    json_object_put(pl);
    return rc;
}

/* ---- verify ---------------------------------------------------------- */

/* Decode one base64url segment strictly (no padding, no whitespace, no
 * stray bits) into a fresh NUL-terminated buffer.  NULL on any failure. */
static unsigned char *b64_segment(const char *s, size_t len, size_t *out_len)
{
    size_t max = len / 4 * 3 + 3;
    unsigned char *bin = malloc(max + 1);

    if (bin == NULL)
        return NULL;
    if (sodium_base642bin(bin, max, s, len, NULL, out_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(bin);
        return NULL;
    }
    bin[*out_len] = '\0';
    return bin;
}

/* Parse @len bytes as one strict JSON object with valid UTF-8 and nothing
 * after it.  NULL otherwise. */
static json_object *parse_object(const unsigned char *s, size_t len)
{
    json_tokener *tok;
    json_object *o;

    if (len == 0 || len > SH__JWT_MAX_LEN || memchr(s, '\0', len) != NULL)
        return NULL;
    tok = json_tokener_new_ex(16);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                                JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, (const char *)s, (int)len);
    if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
                      json_tokener_get_parse_end(tok) != len ||
                      !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* The string member @key, or NULL when absent or not a string without
 * embedded NUL. */
static const char *get_str(json_object *o, const char *key, bool *present)
{
    json_object *v;
    const char *s;

    *present = json_object_object_get_ex(o, key, &v);
    if (!*present || !json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    if (s == NULL || strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

/* Integer member @key into @out; -1 wrong type or out of range, 0 absent,
 * 1 present.  Only integers in 1..2^53 (an honest NumericDate). */
static int get_time(json_object *o, const char *key, int64_t *out)
{
    json_object *v;
    int64_t x;

    *out = 0;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return -1;
    errno = 0;
    x = json_object_get_int64(v);
    if (errno != 0 || x <= 0 || x > JWT_TIME_MAX)
        return -1;
    *out = x;
    return 1;
}

static bool copy_field(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);

    if (n >= cap)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

static bool check_header(const struct sh__jwt_keys *k, json_object *h)
{
    static const char *refused[] = { "crit", "jku", "jwk", "x5u", "x5c" };
    const char *alg, *typ;
    bool present;

    alg = get_str(h, "alg", &present);
    if (alg == NULL || strcmp(alg, alg_name(k->alg)) != 0)
        return false;
    typ = get_str(h, "typ", &present);
    if (present && (typ == NULL || strcmp(typ, "JWT") != 0))
        return false;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (json_object_object_get_ex(h, refused[i], NULL))
            return false;
    }
    return true;
}

static bool check_signature(const struct sh__jwt_keys *k, const char *input,
                            size_t input_len, const char *sig_b64,
                            size_t sig_len)
{
    unsigned char sig[crypto_sign_BYTES];
    size_t n = 0;
    bool ok;

    if (sodium_base642bin(sig, sizeof sig, sig_b64, sig_len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return false;
    if (k->alg == JWT_HS256) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        if (n != sizeof mac)
            return false;
        hmac256(k, input, input_len, mac);
        ok = crypto_verify_32(mac, sig) == 0;
        sodium_memzero(mac, sizeof mac);
        return ok;
    }
    if (n != crypto_sign_BYTES)
        return false;
    return crypto_sign_verify_detached(sig, (const unsigned char *)input,
                                       input_len, k->pk) == 0;
}

static bool check_roles(json_object *p, unsigned *roles)
{
    json_object *arr;
    size_t n;

    *roles = 0;
    if (!json_object_object_get_ex(p, "roles", &arr))
        return true;
    if (!json_object_is_type(arr, json_type_array))
        return false;
    n = json_object_array_length(arr);
    if (n > JWT_MAX_ROLES)
        return false;
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        const char *s;
        size_t len;

        if (!json_object_is_type(v, json_type_string))
            return false;
        s = json_object_get_string(v);
        len = (size_t)json_object_get_string_len(v);
        if (len == 6 && memcmp(s, "VIEWER", 6) == 0)
            *roles |= SH__ROLE_VIEWER;
        else if (len == 9 && memcmp(s, "MODERATOR", 9) == 0)
            *roles |= SH__ROLE_MODERATOR;
        else if (len == 5 && memcmp(s, "ADMIN", 5) == 0)
            *roles |= SH__ROLE_ADMIN;
        else
            return false;
    }
    return true;
}

static bool check_payload(const struct sh__jwt_keys *k, json_object *p,
                          int64_t now_s, struct sh__claims *c)
{
    const char *s;
    bool present;

    s = get_str(p, "sub", &present);
    if (s == NULL || s[0] == '\0' || !copy_field(c->sub, sizeof c->sub, s))
        return false;
    if (get_time(p, "exp", &c->exp) != 1)
        return false;
    if (get_time(p, "nbf", &c->nbf) < 0 || get_time(p, "iat", &c->iat) < 0)
        return false;
    /* now_s > 0 and every time is in 1..2^53: no difference overflows. */
    if (now_s > c->exp && now_s - c->exp > k->leeway_s)
        return false;
    if (c->nbf != 0 && c->nbf > now_s && c->nbf - now_s > k->leeway_s)
        return false;
    if (c->iat != 0 && c->iat > now_s && c->iat - now_s > k->leeway_s)
        return false;
    s = get_str(p, "iss", &present);
    if (present && (s == NULL || strcmp(s, k->issuer) != 0))
        return false;
    s = get_str(p, "username", &present);
    if (present && (s == NULL ||
                    !copy_field(c->username, sizeof c->username, s)))
        return false;
    s = get_str(p, "jti", &present);
    if (present && (s == NULL || !copy_field(c->jti, sizeof c->jti, s)))
        return false;
    return check_roles(p, &c->roles);
}

sh_err_t sh__jwt_verify(const struct sh__jwt_keys *k, const char *token,
                        size_t len, int64_t now_s, struct sh__claims *out)
{
    const char *dot1, *dot2, *end;
    unsigned char *hbin = NULL, *pbin = NULL;
    json_object *h = NULL, *p = NULL;
    struct sh__claims c;
    size_t hn = 0, pn = 0;
    bool ok = false;

    if (out != NULL)
        memset(out, 0, sizeof *out);
    /* Size first: nothing below runs on a huge input. */
    if (k == NULL || token == NULL || out == NULL || len == 0 ||
        len > SH__JWT_MAX_LEN || now_s <= 0 ||
        memchr(token, '\0', len) != NULL)
        return SH_EUNAUTHENTICATED;
    end = token + len;
    dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return SH_EUNAUTHENTICATED;
    dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (dot2 == NULL ||
        memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL ||
        dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == end)
        return SH_EUNAUTHENTICATED;

    memset(&c, 0, sizeof c);
    hbin = b64_segment(token, (size_t)(dot1 - token), &hn);
    if (hbin == NULL || (h = parse_object(hbin, hn)) == NULL ||
        !check_header(k, h))
        goto out;
    if (!check_signature(k, token, (size_t)(dot2 - token), dot2 + 1,
                         (size_t)(end - dot2 - 1)))
        goto out;
    pbin = b64_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1), &pn);
    if (pbin == NULL || (p = parse_object(pbin, pn)) == NULL ||
        !check_payload(k, p, now_s, &c))
        goto out;
    *out = c;
    ok = true;
out:
    json_object_put(h);
    json_object_put(p);
    free(hbin);
    free(pbin);
    return ok ? SH_OK : SH_EUNAUTHENTICATED;
}
