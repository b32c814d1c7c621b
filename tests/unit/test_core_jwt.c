/* tests/unit/test_core_jwt.c: JWT issue and verify, and the attacks of
 * RFC 8725 (algorithm confusion, alg none, header-chosen keys, tampering,
 * malformed and truncated tokens). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/core_int.h"
#include "core/jwt_int.h"

#define SECRET "test-secret-0123456789abcdef-0123456789"
#define NOW 1800000000LL
#define LEEWAY 30

/* Seed 1, 2, ..., 32 for the EdDSA keys. */
static unsigned char g_seed[32];
static unsigned char g_pk[32], g_sk[64];

struct fx {
    sh_config_t *hs_conf, *ed_conf;
    struct sh__jwt_keys *hs, *ed;
};

static char *b64(const void *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len,
        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = malloc(cap);

    assert_non_null(s);
    sodium_bin2base64(s, cap, bin, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

static char *b64_std(const void *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len,
                                           sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);

    assert_non_null(s);
    sodium_bin2base64(s, cap, bin, len, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

enum sig { SIG_HS, SIG_ED, SIG_HS_PK, SIG_NONE, SIG_OTHER_HS, SIG_OTHER_ED };

/* Build header.payload.signature from raw JSON texts, signed as told. */
static char *craft_n(const char *hdr, size_t hlen, const char *pl,
                     size_t plen, enum sig how)
{
    char *h = b64(hdr, hlen), *p = b64(pl, plen), *s, *tok;
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *in = malloc(inlen + 1);
    unsigned char mac[64];
    size_t maclen = 0;

    assert_non_null(in);
    snprintf(in, inlen + 1, "%s.%s", h, p);
    switch (how) {
    case SIG_HS:
    case SIG_HS_PK:
    case SIG_OTHER_HS: {
        crypto_auth_hmacsha256_state st;
        const char *other = "another-secret-0123456789abcdef-xyz";
        if (how == SIG_HS)
            crypto_auth_hmacsha256_init(&st, (const unsigned char *)SECRET,
                                        strlen(SECRET));
        else if (how == SIG_HS_PK)
            crypto_auth_hmacsha256_init(&st, g_pk, sizeof g_pk);
        else
            crypto_auth_hmacsha256_init(&st, (const unsigned char *)other,
                                        strlen(other));
        crypto_auth_hmacsha256_update(&st, (unsigned char *)in, inlen);
        crypto_auth_hmacsha256_final(&st, mac);
        maclen = 32;
        break;
    }
    case SIG_ED:
        crypto_sign_detached(mac, NULL, (unsigned char *)in, inlen, g_sk);
        maclen = 64;
        break;
    case SIG_OTHER_ED: {
        unsigned char pk[32], sk[64];
        crypto_sign_keypair(pk, sk);
        crypto_sign_detached(mac, NULL, (unsigned char *)in, inlen, sk);
        maclen = 64;
        break;
    }
    case SIG_NONE:
        maclen = 0;
        break;
    }
    s = maclen ? b64(mac, maclen) : strdup("");
    tok = malloc(inlen + 2 + strlen(s));
    assert_non_null(tok);
    snprintf(tok, inlen + 2 + strlen(s), "%s.%s", in, s);
    free(h);
    free(p);
    free(s);
    free(in);
    return tok;
}

static char *craft(const char *hdr, const char *pl, enum sig how)
{
    return craft_n(hdr, strlen(hdr), pl, strlen(pl), how);
}

static const char *HS_HDR = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char *ED_HDR = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";

/* A valid payload at NOW. */
static char g_pl[512];

static sh_err_t verify(const struct sh__jwt_keys *k, const char *tok)
{
    struct sh__claims c;
    return sh__jwt_verify(k, tok, strlen(tok), NOW, &c);
}

static void set(sh_config_t *c, const char *key, const char *v)
{
    char err[SH_ERRBUF_SIZE];
    assert_int_equal(sh_config_set(c, key, v, err, sizeof err), SH_OK);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[SH_ERRBUF_SIZE];
    char *seed64;

    assert_non_null(f);
    assert_true(sodium_init() >= 0);
    for (int i = 0; i < 32; i++)
        g_seed[i] = (unsigned char)(i + 1);
    crypto_sign_seed_keypair(g_pk, g_sk, g_seed);
    snprintf(g_pl, sizeof g_pl,
             "{\"iss\":\"streamhub\",\"sub\":\"u-1\",\"username\":\"alice\","
             "\"roles\":[\"VIEWER\"],\"iat\":%lld,\"exp\":%lld,"
             "\"jti\":\"j1\"}", NOW - 10, NOW + 600);

    assert_int_equal(sh_config_new(&f->hs_conf), SH_OK);
    set(f->hs_conf, "jwt-secret", SECRET);
    assert_int_equal(sh__jwt_keys_new(f->hs_conf, NULL, &f->hs, err,
                                      sizeof err), SH_OK);

    assert_int_equal(sh_config_new(&f->ed_conf), SH_OK);
    set(f->ed_conf, "jwt-alg", "EdDSA");
    seed64 = b64_std(g_seed, sizeof g_seed);
    set(f->ed_conf, "jwt-private-key", seed64);
    free(seed64);
    assert_int_equal(sh__jwt_keys_new(f->ed_conf, NULL, &f->ed, err,
                                      sizeof err), SH_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sh__jwt_keys_free(f->hs);
    sh__jwt_keys_free(f->ed);
    sh_config_free(f->hs_conf);
    sh_config_free(f->ed_conf);
    free(f);
    return 0;
}

static struct sh__claims sample(void)
{
    struct sh__claims c;

    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", "7c1e6a40-0000-4000-8000-000000000001");
    snprintf(c.username, sizeof c.username, "%s", "b\xc3\xa9" "atrice");
    c.roles = SH__ROLE_VIEWER | SH__ROLE_ADMIN;
    c.iat = NOW;
    c.exp = NOW + 900;
    return c;
}

static void round_trip(const struct sh__jwt_keys *k, const char *alg)
{
    struct sh__claims in = sample(), out;
    char *tok = NULL, *dot;
    unsigned char hdr[128];
    size_t hn = 0;

    assert_int_equal(sh__jwt_issue(k, &in, &tok), SH_OK);
    assert_non_null(tok);
    assert_true(strlen(tok) <= SH__JWT_MAX_LEN);
    assert_int_equal(sh__jwt_verify(k, tok, strlen(tok), NOW + 5, &out),
                     SH_OK);
    assert_string_equal(out.sub, in.sub);
    assert_string_equal(out.username, in.username);
    assert_int_equal(out.roles, in.roles);
    assert_int_equal(out.iat, in.iat);
    assert_int_equal(out.exp, in.exp);
    assert_int_equal(out.nbf, 0);
    assert_int_equal(strlen(out.jti), SH__UUID_LEN);
    /* The header says exactly this algorithm. */
    dot = strchr(tok, '.');
    assert_non_null(dot);
    assert_int_equal(sodium_base642bin(hdr, sizeof hdr - 1, tok,
                                       (size_t)(dot - tok), NULL, &hn, NULL,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
    hdr[hn] = '\0';
    assert_non_null(strstr((char *)hdr, alg));
    assert_non_null(strstr((char *)hdr, "\"typ\":\"JWT\""));
    free(tok);
}

static void test_round_trip_hs256(void **state)
{
    struct fx *f = *state;
    round_trip(f->hs, "\"alg\":\"HS256\"");
}

static void test_round_trip_eddsa(void **state)
{
    struct fx *f = *state;
    round_trip(f->ed, "\"alg\":\"EdDSA\"");
}

static void test_jti_is_random_and_nbf_kept(void **state)
{
    struct fx *f = *state;
    struct sh__claims in = sample(), a, b;
    char *t1 = NULL, *t2 = NULL;

    in.nbf = NOW - 1;
    assert_int_equal(sh__jwt_issue(f->hs, &in, &t1), SH_OK);
    assert_int_equal(sh__jwt_issue(f->hs, &in, &t2), SH_OK);
    assert_string_not_equal(t1, t2);
    assert_int_equal(sh__jwt_verify(f->hs, t1, strlen(t1), NOW, &a), SH_OK);
    assert_int_equal(sh__jwt_verify(f->hs, t2, strlen(t2), NOW, &b), SH_OK);
    assert_string_not_equal(a.jti, b.jti);
    assert_int_equal(a.nbf, NOW - 1);
    free(t1);
    free(t2);
}

static void test_issue_defaults_and_ttl(void **state)
{
    struct fx *f = *state;
    struct sh__claims in = sample(), out;
    char *tok = NULL;
    int64_t now = sh__now_ms() / 1000;

    assert_int_equal(sh__jwt_ttl(f->hs), 900);
    in.iat = 0;
    in.exp = 0;
    assert_int_equal(sh__jwt_issue(f->hs, &in, &tok), SH_OK);
    assert_int_equal(sh__jwt_verify(f->hs, tok, strlen(tok), now, &out),
                     SH_OK);
    assert_true(out.iat >= now - 2 && out.iat <= now + 2);
    assert_int_equal(out.exp, out.iat + 900);
    free(tok);
}

static void test_issue_rejects_bad_claims(void **state)
{
    struct fx *f = *state;
    struct sh__claims c;
    char *tok = (char *)1;

    c = sample();
    c.sub[0] = '\0';
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    assert_null(tok);
    c = sample();
    memset(c.sub, 'a', sizeof c.sub);           /* not terminated */
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    c = sample();
    memcpy(c.username, "x\xc3\x28", 4);          /* bad UTF-8 */
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    c = sample();
    memcpy(c.username, "\xed\xa0\x80", 4);       /* a surrogate */
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    c = sample();
    c.roles = 8;
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    c = sample();
    c.exp = -1;
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    c = sample();
    c.nbf = INT64_MAX;
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_EINVAL);
    assert_int_equal(sh__jwt_issue(NULL, &c, &tok), SH_EINVAL);
    assert_int_equal(sh__jwt_issue(f->hs, NULL, &tok), SH_EINVAL);
    assert_int_equal(sh__jwt_issue(f->hs, &c, NULL), SH_EINVAL);
    /* max: a 63-byte sub fits. */
    c = sample();
    memset(c.sub, 's', 63);
    c.sub[63] = '\0';
    assert_int_equal(sh__jwt_issue(f->hs, &c, &tok), SH_OK);
    free(tok);
}

/* The crafted baseline is accepted: every refusal below is the attack. */
static void test_crafted_baseline_accepted(void **state)
{
    struct fx *f = *state;
    struct sh__claims c;
    char *t = craft(HS_HDR, g_pl, SIG_HS);

    assert_int_equal(sh__jwt_verify(f->hs, t, strlen(t), NOW, &c), SH_OK);
    assert_string_equal(c.sub, "u-1");
    assert_string_equal(c.username, "alice");
    assert_int_equal(c.roles, SH__ROLE_VIEWER);
    assert_string_equal(c.jti, "j1");
    free(t);
    t = craft(ED_HDR, g_pl, SIG_ED);
    assert_int_equal(verify(f->ed, t), SH_OK);
    free(t);
}

static void test_alg_none_every_case(void **state)
{
    struct fx *f = *state;
    const char *names[] = { "none", "None", "NONE", "nOnE", "NonE", "" };
    enum sig sigs[] = { SIG_NONE, SIG_HS, SIG_ED };
    char hdr[64];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
                 names[i]);
        for (size_t j = 0; j < 3; j++) {
            char *t = craft(hdr, g_pl, sigs[j]);
            assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
            assert_int_equal(verify(f->ed, t), SH_EUNAUTHENTICATED);
            /* And with the trailing dot dropped. */
            if (sigs[j] == SIG_NONE) {
                t[strlen(t) - 1] = '\0';
                assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
            }
            free(t);
        }
    }
}

static void test_alg_missing_or_not_a_string(void **state)
{
    struct fx *f = *state;
    const char *hdrs[] = {
        "{\"typ\":\"JWT\"}", "{}", "{\"alg\":null}", "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}", "{\"alg\":{\"HS256\":1}}", "{\"alg\":true}",
        "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":\" HS256\"}",
        "{\"alg\":\"HS256\\u0000\"}", "{\"alg\":\"HS512\"}",
        "{\"alg\":\"RS256\"}", "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
        "{\"alg\":\"HS256\",\"typ\":7}", "[\"HS256\"]", "\"HS256\"",
        "{\"alg\":\"HS256\"", "{\"alg\":\"HS256\"} x",
        "{\"alg\":\"HS256\"}{}",
    };

    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        char *t = craft(hdrs[i], g_pl, SIG_HS);
        if (verify(f->hs, t) != SH_EUNAUTHENTICATED)
            fail_msg("header accepted: %s", hdrs[i]);
        free(t);
    }
    /* Embedded raw NUL in the header JSON. */
    {
        const char h[] = "{\"alg\":\"HS256\"}\0x";
        char *t = craft_n(h, sizeof h - 1, g_pl, strlen(g_pl), SIG_HS);
        assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
        free(t);
    }
}

static void test_alg_switch_refused(void **state)
{
    struct fx *f = *state;
    char *t;

    /* The classic confusion: HMAC keyed with the server's public key. */
    t = craft(HS_HDR, g_pl, SIG_HS_PK);
    assert_int_equal(verify(f->ed, t), SH_EUNAUTHENTICATED);
    assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
    free(t);
    /* An HS256 token valid on the HS256 server, shown to the EdDSA one. */
    t = craft(HS_HDR, g_pl, SIG_HS);
    assert_int_equal(verify(f->hs, t), SH_OK);
    assert_int_equal(verify(f->ed, t), SH_EUNAUTHENTICATED);
    free(t);
    /* And the reverse. */
    t = craft(ED_HDR, g_pl, SIG_ED);
    assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
    free(t);
    /* EdDSA header with an HMAC signature, HS256 header with Ed25519. */
    t = craft(ED_HDR, g_pl, SIG_HS);
    assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
    assert_int_equal(verify(f->ed, t), SH_EUNAUTHENTICATED);
    free(t);
    t = craft(HS_HDR, g_pl, SIG_ED);
    assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
    assert_int_equal(verify(f->ed, t), SH_EUNAUTHENTICATED);
    free(t);
}

static void test_header_keys_never_used(void **state)
{
    struct fx *f = *state;
    char big[6000], hdr[6100];
    const char *kids[] = { "../../dev/null", "' OR 1=1 --", "", "0" };
    char *t;

    /* kid is ignored: with our signature it passes, with a key that the
     * kid might point at (an empty file) it fails. */
    for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
                 kids[i]);
        t = craft(hdr, g_pl, SIG_HS);
        assert_int_equal(verify(f->hs, t), SH_OK);
        free(t);
        t = craft(hdr, g_pl, SIG_OTHER_HS);
        assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
        free(t);
    }
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", big);
    t = craft(hdr, g_pl, SIG_HS);      /* over the size cap once encoded */
    assert_true(strlen(t) > SH__JWT_MAX_LEN);
    assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
    free(t);
    /* crit and key-carrying members are refused even when signed. */
    {
        const char *hs[] = {
            "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
            "{\"alg\":\"HS256\",\"crit\":[]}",
            "{\"alg\":\"HS256\",\"jku\":\"https://evil.example/k\"}",
            "{\"alg\":\"HS256\",\"x5u\":\"https://evil.example/c\"}",
            "{\"alg\":\"HS256\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AA\"}}",
            "{\"alg\":\"HS256\",\"x5c\":[\"AA\"]}",
        };
        for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
            t = craft(hs[i], g_pl, SIG_HS);
            assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
            free(t);
        }
    }
}

static void test_tampering_refused(void **state)
{
    struct fx *f = *state;
    struct sh__claims in = sample();
    char *tok = NULL, *forged, *p1, *p2;
    char pl[512];

    for (int alg = 0; alg < 2; alg++) {
        const struct sh__jwt_keys *k = alg ? f->ed : f->hs;
        size_t n;

        assert_int_equal(sh__jwt_issue(k, &in, &tok), SH_OK);
        n = strlen(tok);
        assert_int_equal(verify(k, tok), SH_OK);
        /* Flip every byte of the token in turn to another base64url
         * character: header, payload or signature, all refused. */
        for (size_t i = 0; i < n; i++) {
            char saved = tok[i];
            if (saved == '.')
                continue;
            tok[i] = saved == 'A' ? 'B' : 'A';
            assert_int_equal(verify(k, tok), SH_EUNAUTHENTICATED);
            tok[i] = saved;
        }
        assert_int_equal(verify(k, tok), SH_OK);
        /* A new payload (roles ADMIN) under the old signature. */
        snprintf(pl, sizeof pl, "{\"sub\":\"u-1\",\"roles\":[\"ADMIN\"],"
                 "\"exp\":%lld}", NOW + 600);
        forged = craft(alg ? ED_HDR : HS_HDR, pl, alg ? SIG_ED : SIG_HS);
        p1 = strrchr(forged, '.');
        p2 = strrchr(tok, '.');
        {
            size_t len = (size_t)(p1 - forged) + strlen(p2) + 1;
            char *mix = malloc(len);
            assert_non_null(mix);
            memcpy(mix, forged, (size_t)(p1 - forged));
            memcpy(mix + (p1 - forged), p2, strlen(p2) + 1);
            assert_int_equal(verify(k, mix), SH_EUNAUTHENTICATED);
            free(mix);
        }
        free(forged);
        free(tok);
        tok = NULL;
    }
    /* Signed by another key of the same algorithm. */
    forged = craft(HS_HDR, g_pl, SIG_OTHER_HS);
    assert_int_equal(verify(f->hs, forged), SH_EUNAUTHENTICATED);
    free(forged);
    forged = craft(ED_HDR, g_pl, SIG_OTHER_ED);
    assert_int_equal(verify(f->ed, forged), SH_EUNAUTHENTICATED);
    free(forged);
}

static sh_err_t verify_payload(const struct sh__jwt_keys *k, const char *pl,
                               int64_t now)
{
    struct sh__claims c;
    char *t = craft(HS_HDR, pl, SIG_HS);
    sh_err_t rc = sh__jwt_verify(k, t, strlen(t), now, &c);

    if (rc != SH_OK) {
        /* Nothing half-filled leaks out. */
        assert_int_equal(c.sub[0], 0);
        assert_int_equal(c.exp, 0);
    }
    free(t);
    return rc;
}

static void test_times(void **state)
{
    struct fx *f = *state;
    char pl[256];

#define PL(...) snprintf(pl, sizeof pl, __VA_ARGS__)
    PL("{\"sub\":\"u\",\"exp\":%lld}", NOW - 1);            /* in leeway */
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_OK);
    PL("{\"sub\":\"u\",\"exp\":%lld}", NOW - LEEWAY);       /* edge */
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_OK);
    PL("{\"sub\":\"u\",\"exp\":%lld}", NOW - LEEWAY - 1);   /* expired */
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_EUNAUTHENTICATED);
    PL("{\"sub\":\"u\",\"exp\":%lld}", NOW - 86400);
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_EUNAUTHENTICATED);
    PL("{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}", NOW + 600,
       NOW + LEEWAY + 1);                                    /* not yet */
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_EUNAUTHENTICATED);
    PL("{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 10);
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_OK);
    PL("{\"sub\":\"u\",\"exp\":%lld,\"iat\":%lld}", NOW + 600,
       NOW + 3600);                                          /* future iat */
    assert_int_equal(verify_payload(f->hs, pl, NOW), SH_EUNAUTHENTICATED);
    PL("{\"sub\":\"u\",\"exp\":%lld}", NOW + 600);
    assert_int_equal(verify_payload(f->hs, pl, 0), SH_EUNAUTHENTICATED);
    assert_int_equal(verify_payload(f->hs, pl, -5), SH_EUNAUTHENTICATED);
    /* Wrong types and absurd values. */
    {
        const char *bad[] = {
            "{\"sub\":\"u\"}",
            "{\"exp\":9999999999}",
            "{\"sub\":\"u\",\"exp\":\"9999999999\"}",
            "{\"sub\":\"u\",\"exp\":9999999999.5}",
            "{\"sub\":\"u\",\"exp\":1e10}",
            "{\"sub\":\"u\",\"exp\":null}",
            "{\"sub\":\"u\",\"exp\":-1}",
            "{\"sub\":\"u\",\"exp\":99999999999999999999999}",
            "{\"sub\":\"u\",\"exp\":9223372036854775807}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"nbf\":\"0\"}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"iat\":-3}",
            "{\"sub\":7,\"exp\":9999999999}",
            "{\"sub\":\"\",\"exp\":9999999999}",
            "{\"sub\":\"u\\u0000v\",\"exp\":9999999999}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"evil\"}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":null}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"roles\":\"ADMIN\"}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"roles\":[\"ROOT\"]}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"roles\":[\"admin\"]}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"roles\":[1]}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"username\":[]}",
            "{\"sub\":\"u\",\"exp\":9999999999,\"jti\":5}",
            "[]", "[1]", "1", "\"s\"", "null", "true", "{", "",
            "{\"sub\":\"u\",\"exp\":9999999999}x",
            "{\"sub\":\"u\",\"exp\":9999999999,}",
            "{'sub':'u','exp':9999999999}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            assert_int_equal(verify_payload(f->hs, bad[i], NOW),
                             SH_EUNAUTHENTICATED);
    }
    /* iss absent is fine; equal is fine. */
    assert_int_equal(verify_payload(f->hs,
        "{\"sub\":\"u\",\"exp\":9999999999,\"iss\":\"streamhub\"}", NOW),
        SH_OK);
    /* Field size: 63 bytes fit, 64 do not. */
    {
        char s63[64], s64[65];
        memset(s63, 'a', 63);
        s63[63] = '\0';
        memset(s64, 'a', 64);
        s64[64] = '\0';
        PL("{\"sub\":\"%s\",\"exp\":9999999999}", s63);
        assert_int_equal(verify_payload(f->hs, pl, NOW), SH_OK);
        PL("{\"sub\":\"%s\",\"exp\":9999999999}", s64);
        assert_int_equal(verify_payload(f->hs, pl, NOW), SH_EUNAUTHENTICATED);
        PL("{\"sub\":\"u\",\"username\":\"%s\",\"exp\":9999999999}", s64);
        assert_int_equal(verify_payload(f->hs, pl, NOW), SH_EUNAUTHENTICATED);
    }
#undef PL
    /* Bad UTF-8 inside a signed payload. */
    {
        const char p[] = "{\"sub\":\"u\xc3\x28\",\"exp\":9999999999}";
        char *t = craft_n(HS_HDR, strlen(HS_HDR), p, sizeof p - 1, SIG_HS);
        assert_int_equal(verify(f->hs, t), SH_EUNAUTHENTICATED);
        free(t);
    }
}

static void test_malformed_tokens(void **state)
{
    struct fx *f = *state;
    char *good = craft(HS_HDR, g_pl, SIG_HS);
    const char *bad[] = {
        "", ".", "..", "...", "a", "a.b", "a.b.c", "a.b.c.d", "garbage",
        "\xff\xfe\xfd", "Bearer x.y.z",
    };
    char buf[2048];
    struct sh__claims c;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(verify(f->hs, bad[i]), SH_EUNAUTHENTICATED);
    assert_int_equal(sh__jwt_verify(f->hs, NULL, 5, NOW, &c),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh__jwt_verify(NULL, good, strlen(good), NOW, &c),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh__jwt_verify(f->hs, good, strlen(good), NOW, NULL),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(verify(f->hs, good), SH_OK);
    /* Two segments, four segments, empty segments. */
    snprintf(buf, sizeof buf, "%s.", good);
    assert_int_equal(verify(f->hs, buf), SH_EUNAUTHENTICATED);
    snprintf(buf, sizeof buf, "%s.%s", good, strrchr(good, '.') + 1);
    assert_int_equal(verify(f->hs, buf), SH_EUNAUTHENTICATED);
    snprintf(buf, sizeof buf, ".%s", good);
    assert_int_equal(verify(f->hs, buf), SH_EUNAUTHENTICATED);
    *strrchr(buf, '.') = '\0';
    assert_int_equal(verify(f->hs, buf + 1), SH_EUNAUTHENTICATED);
    /* Whitespace, padding and foreign characters anywhere. */
    {
        const char *ins[] = { "=", "==", " ", "\n", "+", "/", "*", "%",
                              "\t", "\xc3\xa9" };
        size_t n = strlen(good);
        for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
            for (size_t at = 0; at <= n; at++) {
                if (at < n && good[at] == '.')
                    continue;
                snprintf(buf, sizeof buf, "%.*s%s%s", (int)at, good, ins[i],
                         good + at);
                assert_int_equal(verify(f->hs, buf), SH_EUNAUTHENTICATED);
            }
        }
    }
    /* Padded segments (standard padding is refused): a 43-character
     * signature takes one '=', a 16-byte header two. */
    assert_int_equal(strlen(strrchr(good, '.') + 1), 43);
    snprintf(buf, sizeof buf, "%s=", good);
    assert_int_equal(verify(f->hs, buf), SH_EUNAUTHENTICATED);
    {
        char *t = craft("{\"alg\":\"HS256\" }", g_pl, SIG_HS);
        char *d = strchr(t, '.');
        assert_int_equal(d - t, 22);
        assert_int_equal(verify(f->hs, t), SH_OK);
        snprintf(buf, sizeof buf, "%.22s==%s", t, d);
        assert_int_equal(verify(f->hs, buf), SH_EUNAUTHENTICATED);
        free(t);
    }
    /* Non-canonical base64url (stray low bits in the last character). */
    {
        char *p = strdup(good);
        size_t n = strlen(p);
        int changed = 0;
        /* The signature of HS256 is 32 bytes: 43 characters whose last
         * carries 2 unused bits. */
        char last = p[n - 1];
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789-_";
        const char *pos = strchr(alpha, last);
        assert_non_null(pos);
        if ((pos - alpha) % 4 == 0) {
            p[n - 1] = alpha[(pos - alpha) + 1];
            changed = 1;
        }
        assert_true(changed);
        assert_int_equal(verify(f->hs, p), SH_EUNAUTHENTICATED);
        free(p);
    }
    free(good);
}

static void test_embedded_nul_and_huge(void **state)
{
    struct fx *f = *state;
    char *good = craft(HS_HDR, g_pl, SIG_HS);
    size_t n = strlen(good);
    char *copy = malloc(n + 1);
    struct sh__claims c;
    const size_t mib = 1u << 20;
    char *huge = malloc(mib);

    assert_non_null(copy);
    for (size_t i = 0; i < n; i++) {
        memcpy(copy, good, n + 1);
        copy[i] = '\0';
        assert_int_equal(sh__jwt_verify(f->hs, copy, n, NOW, &c),
                         SH_EUNAUTHENTICATED);
    }
    /* The terminating NUL counted in the length. */
    assert_int_equal(sh__jwt_verify(f->hs, good, n + 1, NOW, &c),
                     SH_EUNAUTHENTICATED);
    /* 1 MiB: a valid token followed by junk, and a valid-looking one. */
    assert_non_null(huge);
    memset(huge, 'A', mib);
    memcpy(huge, good, n);
    assert_int_equal(sh__jwt_verify(f->hs, huge, mib, NOW, &c),
                     SH_EUNAUTHENTICATED);
    huge[100] = '.';
    huge[200] = '.';
    assert_int_equal(sh__jwt_verify(f->hs, huge, mib, NOW, &c),
                     SH_EUNAUTHENTICATED);
    /* max + 1 right at the cap. */
    assert_int_equal(sh__jwt_verify(f->hs, huge, SH__JWT_MAX_LEN + 1, NOW,
                                    &c), SH_EUNAUTHENTICATED);
    free(huge);
    free(copy);
    free(good);
}

/* Every prefix, each in a buffer of exactly its size so that ASan sees any
 * read past the end. */
static void test_cut_at_every_byte(void **state)
{
    struct fx *f = *state;
    struct sh__claims in = sample(), c;

    for (int alg = 0; alg < 2; alg++) {
        const struct sh__jwt_keys *k = alg ? f->ed : f->hs;
        char *tok = NULL;
        size_t n;

        assert_int_equal(sh__jwt_issue(k, &in, &tok), SH_OK);
        n = strlen(tok);
        for (size_t i = 0; i < n; i++) {
            char *p = malloc(i ? i : 1);
            assert_non_null(p);
            memcpy(p, tok, i);
            assert_int_equal(sh__jwt_verify(k, p, i, NOW, &c),
                             SH_EUNAUTHENTICATED);
            /* And the suffix. */
            memcpy(p, tok + n - i, i);
            if (i > 0)
                assert_int_equal(sh__jwt_verify(k, p, i, NOW, &c),
                                 SH_EUNAUTHENTICATED);
            free(p);
        }
        {
            char *p = malloc(n);
            assert_non_null(p);
            memcpy(p, tok, n);
            assert_int_equal(sh__jwt_verify(k, p, n, NOW, &c), SH_OK);
            free(p);
        }
        free(tok);
    }
}

static int g_warned;
static void count_warn(void *arg, sh_log_level_t level, const char *line,
                       size_t len)
{
    (void)arg;
    (void)len;
    if (level == SH_LOG_WARN && strstr(line, "jwt-") != NULL)
        g_warned++;
}

static void test_keys_from_config(void **state)
{
    sh_config_t *conf = NULL;
    struct sh__jwt_keys *a = NULL, *b = NULL;
    struct sh__claims in = sample(), out;
    struct sh__log lg;
    char err[SH_ERRBUF_SIZE];
    char *tok = NULL, *s;

    (void)state;
    /* Unset secret: random, with a warning; two such servers disagree. */
    assert_int_equal(sh_config_new(&conf), SH_OK);
    sh_config_set_log_cb(conf, count_warn, NULL);
    sh__log_init(&lg, conf);
    g_warned = 0;
    assert_int_equal(sh__jwt_keys_new(conf, &lg, &a, err, sizeof err), SH_OK);
    assert_int_equal(sh__jwt_keys_new(conf, &lg, &b, err, sizeof err), SH_OK);
    assert_int_equal(g_warned, 2);
    assert_int_equal(sh__jwt_issue(a, &in, &tok), SH_OK);
    assert_int_equal(sh__jwt_verify(a, tok, strlen(tok), NOW, &out), SH_OK);
    assert_int_equal(sh__jwt_verify(b, tok, strlen(tok), NOW, &out),
                     SH_EUNAUTHENTICATED);
    free(tok);
    sh__jwt_keys_free(a);
    sh__jwt_keys_free(b);
    a = b = NULL;

    /* Secret too short: 31 bytes refused (at set time), 32 accepted. */
    assert_int_equal(sh_config_set(conf, "jwt-secret",
                                   "0123456789012345678901234567890", err,
                                   sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "jwt-secret"));
    set(conf, "jwt-secret", "01234567890123456789012345678901");
    assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err),
                     SH_OK);
    sh__jwt_keys_free(a);
    a = NULL;

    /* EdDSA without keys: random pair, warning. */
    set(conf, "jwt-alg", "EdDSA");
    g_warned = 0;
    assert_int_equal(sh__jwt_keys_new(conf, &lg, &a, err, sizeof err), SH_OK);
    assert_int_equal(g_warned, 1);
    sh__jwt_keys_free(a);
    a = NULL;

    /* A 64-byte secret key works; a corrupted public half is refused. */
    s = b64_std(g_sk, sizeof g_sk);
    set(conf, "jwt-private-key", s);
    free(s);
    assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err), SH_OK);
    assert_int_equal(sh__jwt_issue(a, &in, &tok), SH_OK);
    sh__jwt_keys_free(a);
    a = NULL;
    {
        unsigned char sk[64];
        memcpy(sk, g_sk, 64);
        sk[63] ^= 1;
        s = b64_std(sk, sizeof sk);
        set(conf, "jwt-private-key", s);
        free(s);
        assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err),
                         SH_EINVAL);
        assert_non_null(strstr(err, "jwt-private-key"));
    }
    set(conf, "jwt-private-key", "not base64 !!");
    assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err),
                     SH_EINVAL);
    s = b64_std(g_seed, 31);
    set(conf, "jwt-private-key", s);
    free(s);
    assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err),
                     SH_EINVAL);

    /* A verify-only node: public key alone. */
    set(conf, "jwt-private-key", "");
    s = b64_std(g_pk, sizeof g_pk);
    set(conf, "jwt-public-key", s);
    free(s);
    assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err), SH_OK);
    assert_int_equal(sh__jwt_verify(a, tok, strlen(tok), NOW, &out), SH_OK);
    {
        char *t2 = (char *)1;
        assert_int_equal(sh__jwt_issue(a, &in, &t2), SH_ENOTSUP);
        assert_null(t2);
    }
    sh__jwt_keys_free(a);
    a = NULL;
    /* A public key that does not match the private key. */
    s = b64_std(g_seed, sizeof g_seed);
    set(conf, "jwt-private-key", s);
    free(s);
    {
        unsigned char pk[32];
        memcpy(pk, g_pk, 32);
        pk[0] ^= 1;
        s = b64_std(pk, sizeof pk);
        set(conf, "jwt-public-key", s);
        free(s);
    }
    assert_int_equal(sh__jwt_keys_new(conf, NULL, &a, err, sizeof err),
                     SH_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "jwt-public-key"));
    free(tok);
    sh__jwt_keys_free(NULL);
    sh_config_free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_hs256, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_eddsa, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_jti_is_random_and_nbf_kept,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_defaults_and_ttl, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_issue_rejects_bad_claims, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crafted_baseline_accepted,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_none_every_case, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_alg_missing_or_not_a_string,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_switch_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_header_keys_never_used, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tampering_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_tokens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_embedded_nul_and_huge, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cut_at_every_byte, setup,
                                        teardown),
        cmocka_unit_test(test_keys_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
