/* tests/unit/test_services_accounts.c: accounts through the public API
 * (auth.h) on sqlite::memory:, and opening hubs on good and bad stores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "services/services_int.h"
#include "streamhub/streamhub.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"

static sh_config_t *conf_with(const char *store)
{
    sh_config_t *c = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", store, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "jwt-secret", SECRET, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    return c;
}

static sh_hub_t *hub_on(const char *store)
{
    sh_config_t *c = conf_with(store);
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE] = "";
    sh_err_t rc = sh_hub_open(c, &hub, err, sizeof err);

    if (rc != SH_OK)
        fail_msg("hub open: %s: %s", sh_err_name(rc), err);
    return hub;
}

static int setup(void **state)
{
    *state = hub_on("sqlite::memory:");
    return 0;
}

static int teardown(void **state)
{
    sh_hub_close(*state);
    return 0;
}

static sh_auth_t *reg(sh_hub_t *hub, const char *name, const char *email,
                      const char *pw)
{
    sh_auth_t *a = NULL;
    char err[SH_ERRBUF_SIZE] = "";
    sh_err_t rc = sh_auth_register(hub, name, email, pw, &a, err, sizeof err);

    if (rc != SH_OK)
        fail_msg("register %s: %s: %s", name, sh_err_name(rc), err);
    return a;
}

/* ---- register, the payload, verify -------------------------------------- */

static void test_register_payload(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a = reg(hub, "Alice_1", "Alice@Example.COM", "correct horse");
    const sh_user_t *u = sh_auth_user(a);
    json_object *j, *ju, *v;
    size_t len = 0;
    const char *txt;

    assert_non_null(u);
    assert_string_equal(sh_user_username(u), "Alice_1");
    assert_string_equal(sh_user_email(u), "alice@example.com");
    assert_int_equal(strlen(sh_user_id(u)), 36);
    assert_int_equal(sh_user_roles(u), SH_ROLE_VIEWER);
    assert_true(sh_user_created_at_ms(u) > 1700000000000LL);
    assert_int_equal(sh_auth_expires_in(a), 900);
    assert_int_equal(strlen(sh_auth_refresh_token(a)), 43);
    assert_non_null(strchr(sh_auth_access_token(a), '.'));

    txt = sh_auth_json(a, &len);
    assert_int_equal(strlen(txt), len);
    j = json_tokener_parse(txt);
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "accessToken", &v));
    assert_string_equal(json_object_get_string(v), sh_auth_access_token(a));
    assert_true(json_object_object_get_ex(j, "refreshToken", &v));
    assert_string_equal(json_object_get_string(v), sh_auth_refresh_token(a));
    assert_true(json_object_object_get_ex(j, "expiresIn", &v));
    assert_int_equal(json_object_get_int64(v), 900);
    assert_true(json_object_object_get_ex(j, "user", &ju));
    assert_true(json_object_object_get_ex(ju, "id", &v));
    assert_string_equal(json_object_get_string(v), sh_user_id(u));
    assert_true(json_object_object_get_ex(ju, "email", &v));
    assert_string_equal(json_object_get_string(v), "alice@example.com");
    assert_true(json_object_object_get_ex(ju, "createdAt", &v));
    assert_int_equal(strlen(json_object_get_string(v)), 24);   /* RFC 3339 */
    /* No secret ever leaks into the User. */
    assert_false(json_object_object_get_ex(ju, "password_hash", NULL));
    assert_null(strstr(txt, "argon2"));
    assert_string_equal(sh_user_json(u, NULL), json_object_to_json_string_ext(
                            ju, JSON_C_TO_STRING_PLAIN |
                            JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
    sh_auth_free(a);
    sh_auth_free(NULL);
}

static void test_verify_access_token(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a = reg(hub, "bob", "bob@example.org", "password1");
    sh_principal_t *p = NULL;
    const char *tok = sh_auth_access_token(a);
    size_t n = strlen(tok);
    char *bad = strdup(tok);
    int64_t now_s = sh__now_ms() / 1000;

    assert_int_equal(sh_auth_verify(hub, tok, n, &p), SH_OK);
    assert_string_equal(sh_principal_user_id(p),
                        sh_user_id(sh_auth_user(a)));
    assert_string_equal(sh_principal_username(p), "bob");
    assert_int_equal(sh_principal_roles(p), SH_ROLE_VIEWER);
    assert_true(sh_principal_exp(p) >= now_s + 895 &&
                sh_principal_exp(p) <= now_s + 905);
    sh_principal_free(p);

    /* Truncated at every byte: always refused, never crashes. */
    for (size_t cut = 0; cut < n; cut++) {
        p = (sh_principal_t *)(uintptr_t)1;
        assert_int_equal(sh_auth_verify(hub, tok, cut, &p),
                         SH_EUNAUTHENTICATED);
        assert_null(p);
    }
    /* One flipped byte in the signature. */
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(sh_auth_verify(hub, bad, n, &p), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_verify(hub, "", 0, &p), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_verify(hub, "a.b.c", 5, &p),
                     SH_EUNAUTHENTICATED);
    /* The refresh token is not an access token. */
    assert_int_equal(sh_auth_verify(hub, sh_auth_refresh_token(a), 43, &p),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_verify(hub, NULL, 0, &p), SH_EINVAL);
    assert_int_equal(sh_auth_verify(NULL, tok, n, &p), SH_EINVAL);
    sh_principal_free(NULL);
    free(bad);
    sh_auth_free(a);
}

/* ---- login ------------------------------------------------------------ */

static void test_login(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *r = reg(hub, "CarolX", "carol@example.net", "s3cret-pass");
    sh_auth_t *a = NULL;
    char e1[SH_ERRBUF_SIZE] = "", e2[SH_ERRBUF_SIZE] = "";
    char e3[SH_ERRBUF_SIZE] = "";

    assert_int_equal(sh_auth_login(hub, "carolx", "s3cret-pass", &a, e1,
                                   sizeof e1), SH_OK);
    assert_string_equal(sh_user_id(sh_auth_user(a)),
                        sh_user_id(sh_auth_user(r)));
    assert_string_equal(sh_user_username(sh_auth_user(a)), "CarolX");
    /* A new family: a different refresh token. */
    assert_string_not_equal(sh_auth_refresh_token(a),
                            sh_auth_refresh_token(r));
    sh_auth_free(a);

    a = (sh_auth_t *)(uintptr_t)1;
    assert_int_equal(sh_auth_login(hub, "CarolX", "s3cret-pasS", &a, e1,
                                   sizeof e1), SH_EUNAUTHENTICATED);
    assert_null(a);
    assert_int_equal(sh_auth_login(hub, "nobody", "s3cret-pass", &a, e2,
                                   sizeof e2), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_login(hub, "no-such\xc3\x28", "s3cret-pass", &a,
                                   e3, sizeof e3), SH_EUNAUTHENTICATED);
    /* The same answer whatever failed. */
    assert_string_equal(e1, e2);
    assert_string_equal(e1, e3);
    assert_int_equal(sh_auth_login(hub, "CarolX", "", &a, e2, sizeof e2),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_login(hub, "", "", &a, NULL, 0),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_login(hub, NULL, "x", &a, NULL, 0), SH_EINVAL);
    assert_int_equal(sh_auth_login(hub, "CarolX", "s3cret-pass", NULL, NULL,
                                   0), SH_EINVAL);
    sh_auth_free(r);
}

/* ---- refresh tokens ---------------------------------------------------- */

static sh_err_t refresh(sh_hub_t *hub, const char *tok, sh_auth_t **out)
{
    char err[SH_ERRBUF_SIZE] = "";

    return sh_auth_refresh(hub, tok, out, err, sizeof err);
}

static void test_refresh_rotation_and_reuse(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a1 = reg(hub, "dave", "dave@example.com", "dave-password");
    sh_auth_t *a2 = NULL, *a3 = NULL, *x = NULL, *other = NULL;
    sh_principal_t *p = NULL;

    assert_int_equal(sh_auth_login(hub, "dave", "dave-password", &other,
                                   NULL, 0), SH_OK);
    assert_int_equal(refresh(hub, sh_auth_refresh_token(a1), &a2), SH_OK);
    assert_string_not_equal(sh_auth_refresh_token(a1),
                            sh_auth_refresh_token(a2));
    assert_string_equal(sh_user_id(sh_auth_user(a2)),
                        sh_user_id(sh_auth_user(a1)));
    assert_string_equal(sh_user_email(sh_auth_user(a2)), "dave@example.com");
    assert_int_equal(sh_auth_verify(hub, sh_auth_access_token(a2),
                                    strlen(sh_auth_access_token(a2)), &p),
                     SH_OK);
    sh_principal_free(p);
    assert_int_equal(refresh(hub, sh_auth_refresh_token(a2), &a3), SH_OK);

    /* a1's token again: a copy is loose.  The family dies, a3 included. */
    x = (sh_auth_t *)(uintptr_t)1;
    assert_int_equal(refresh(hub, sh_auth_refresh_token(a1), &x),
                     SH_EUNAUTHENTICATED);
    assert_null(x);
    assert_int_equal(refresh(hub, sh_auth_refresh_token(a3), &x),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(refresh(hub, sh_auth_refresh_token(a2), &x),
                     SH_EUNAUTHENTICATED);
    /* Another login's family is untouched. */
    assert_int_equal(refresh(hub, sh_auth_refresh_token(other), &x), SH_OK);
    sh_auth_free(x);
    sh_auth_free(a1);
    sh_auth_free(a2);
    sh_auth_free(a3);
    sh_auth_free(other);
}

static void test_refresh_malformed_and_expired(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a = reg(hub, "erin", "erin@example.com", "erin-password");
    sh_auth_t *x = NULL;
    char tok[64], big[4096];
    struct sh__conn *c = NULL;
    static const struct sh__sql q_expire =
        { "UPDATE refresh_tokens SET expires_at = 1", NULL, NULL };
    const char *bad[] = {
        "", "a", tok, big,
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP+",   /* '+' not url */
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO\xc3\x28",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",   /* shape ok, unknown */
    };

    snprintf(tok, sizeof tok, "%s=", sh_auth_refresh_token(a));   /* 44 */
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(refresh(hub, bad[i], &x), SH_EUNAUTHENTICATED);
    /* Cut short by one byte (as an embedded NUL would). */
    snprintf(tok, sizeof tok, "%.42s", sh_auth_refresh_token(a));
    assert_int_equal(refresh(hub, tok, &x), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_refresh(hub, NULL, &x, NULL, 0), SH_EINVAL);

    /* Expired in the store: refused, and not spent either. */
    assert_int_equal(sh__store_acquire(hub->store, &c), SH_OK);
    assert_int_equal(sh__store_exec(c, &q_expire, NULL, 0, NULL, NULL, NULL,
                                    NULL, 0), SH_OK);
    sh__store_release(c);
    assert_int_equal(refresh(hub, sh_auth_refresh_token(a), &x),
                     SH_EUNAUTHENTICATED);
    assert_null(x);
    sh_auth_free(a);
}

static void test_revoke(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a = reg(hub, "frank", "frank@example.com", "frank-password");
    sh_auth_t *b = NULL, *x = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(refresh(hub, sh_auth_refresh_token(a), &b), SH_OK);
    /* Revoking the newest token kills the family. */
    assert_int_equal(sh_auth_revoke(hub, sh_auth_refresh_token(b), err,
                                    sizeof err), SH_OK);
    assert_int_equal(refresh(hub, sh_auth_refresh_token(b), &x),
                     SH_EUNAUTHENTICATED);
    /* Idempotent; even an old token of the family may be revoked. */
    assert_int_equal(sh_auth_revoke(hub, sh_auth_refresh_token(b), NULL, 0),
                     SH_OK);
    assert_int_equal(sh_auth_revoke(hub, sh_auth_refresh_token(a), NULL, 0),
                     SH_OK);
    assert_int_equal(sh_auth_revoke(hub, "not-a-token", err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_revoke(hub,
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", err,
                     sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_revoke(hub, NULL, NULL, 0), SH_EINVAL);
    /* Access tokens live on until they expire. */
    sh_principal_t *p = NULL;
    assert_int_equal(sh_auth_verify(hub, sh_auth_access_token(b),
                                    strlen(sh_auth_access_token(b)), &p),
                     SH_OK);
    sh_principal_free(p);
    sh_auth_free(a);
    sh_auth_free(b);
}

/* Several threads spend one token at once: exactly one wins. */
struct race {
    sh_hub_t *hub;
    const char *tok;
    int wins;
    pthread_mutex_t mu;
};

static void *race_refresh(void *arg)
{
    struct race *r = arg;
    sh_auth_t *x = NULL;

    if (sh_auth_refresh(r->hub, r->tok, &x, NULL, 0) == SH_OK) {
        pthread_mutex_lock(&r->mu);
        r->wins++;
        pthread_mutex_unlock(&r->mu);
    }
    sh_auth_free(x);
    return NULL;
}

static void test_refresh_race(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a = reg(hub, "gina", "gina@example.com", "gina-password");
    struct race r = { hub, sh_auth_refresh_token(a), 0,
                      PTHREAD_MUTEX_INITIALIZER };
    pthread_t th[6];

    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_refresh, &r), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.wins, 1);
    sh_auth_free(a);
}

/* ---- look-ups ------------------------------------------------------------ */

static void test_get_user(void **state)
{
    sh_hub_t *hub = *state;
    sh_auth_t *a = reg(hub, "Heidi", "heidi@example.com", "heidi-password");
    const char *id = sh_user_id(sh_auth_user(a));
    sh_user_t *u = NULL;
    char err[SH_ERRBUF_SIZE], missing[SH__UUID_LEN + 1];

    assert_int_equal(sh_user_get(hub, id, id, &u, err, sizeof err), SH_OK);
    assert_string_equal(sh_user_username(u), "Heidi");
    assert_string_equal(sh_user_email(u), "heidi@example.com");
    assert_int_equal(sh_user_created_at_ms(u),
                     sh_user_created_at_ms(sh_auth_user(a)));
    sh_user_free(u);

    /* Anyone else sees no email, in the getter and in the JSON. */
    assert_int_equal(sh_user_get(hub, NULL, id, &u, err, sizeof err), SH_OK);
    assert_null(sh_user_email(u));
    assert_non_null(strstr(sh_user_json(u, NULL), "\"email\":null"));
    assert_int_equal(sh_user_roles(u), SH_ROLE_VIEWER);
    sh_user_free(u);

    assert_int_equal(sh_user_get_by_username(hub, id, "HEIDI", &u, err,
                                             sizeof err), SH_OK);
    assert_string_equal(sh_user_id(u), id);
    assert_string_equal(sh_user_email(u), "heidi@example.com");
    sh_user_free(u);

    sh__uuid4(missing);
    u = (sh_user_t *)(uintptr_t)1;
    assert_int_equal(sh_user_get(hub, NULL, missing, &u, err, sizeof err),
                     SH_ENOTFOUND);
    assert_null(u);
    assert_int_equal(sh_user_get(hub, NULL, "not-a-uuid", &u, NULL, 0),
                     SH_ENOTFOUND);
    assert_int_equal(sh_user_get(hub, NULL, "", &u, NULL, 0), SH_ENOTFOUND);
    assert_int_equal(sh_user_get_by_username(hub, NULL, "nobody_here", &u,
                                             NULL, 0), SH_ENOTFOUND);
    assert_int_equal(sh_user_get_by_username(hub, NULL, "he'idi", &u, NULL,
                                             0), SH_ENOTFOUND);
    assert_int_equal(sh_user_get_by_username(hub, NULL, "", &u, NULL, 0),
                     SH_ENOTFOUND);
    assert_int_equal(sh_user_get(hub, NULL, NULL, &u, NULL, 0), SH_EINVAL);
    assert_int_equal(sh_user_get(hub, NULL, id, NULL, NULL, 0), SH_EINVAL);
    sh_user_free(NULL);
    assert_null(sh_user_id(NULL));
    sh_auth_free(a);
}

/* ---- refusals ------------------------------------------------------------ */

static void expect_refused(sh_hub_t *hub, const char *name, const char *email,
                           const char *pw, sh_err_t want, const char *needle)
{
    sh_auth_t *a = (sh_auth_t *)(uintptr_t)1;
    char err[SH_ERRBUF_SIZE] = "";
    sh_err_t rc = sh_auth_register(hub, name, email, pw, &a, err, sizeof err);

    if (rc != want)
        fail_msg("register(%s, %s): %s, want %s (%s)", name, email,
                 sh_err_name(rc), sh_err_name(want), err);
    assert_null(a);
    if (needle != NULL && strstr(err, needle) == NULL)
        fail_msg("register(%s, %s): '%s' lacks '%s'", name, email, err,
                 needle);
}

static void test_register_refusals(void **state)
{
    sh_hub_t *hub = *state;
    char long_name[27], max_name[26], long_pw[1026], max_pw[1025];
    char long_email[300];
    sh_auth_t *a;
    static const char *bad_names[] = {
        "", "ab", "bad-char", "bad char", "bad.dot", "caf\xc3\xa9",
        "x\xc3\x28yz", "tab\there", "semi;colon",
    };
    const char *bad_emails[] = {
        "", "a", "a@b", "@b.com", "a@", "a@.com", "a@b..com", "a b@c.com",
        "a@b.com.", "a@@b.com", "a@b@c.com", ".a@b.com", "a.@b.com",
        "a..b@c.com", "a@-b.com", "a@b-.com", "a@b_c.com", "\xc3\xa9@b.com",
        "a@b.c\x01m", "<a>@b.com", long_email,
    };

    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';            /* 26 */
    memset(max_name, 'm', sizeof max_name - 1);
    max_name[sizeof max_name - 1] = '\0';              /* 25 */
    memset(long_pw, 'p', sizeof long_pw - 1);
    long_pw[sizeof long_pw - 1] = '\0';                /* 1025 */
    memset(max_pw, 'q', sizeof max_pw - 1);
    max_pw[sizeof max_pw - 1] = '\0';                  /* 1024 */
    memset(long_email, 'e', sizeof long_email - 1);
    memcpy(long_email + sizeof long_email - 10, "@test.com", 10);

    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        expect_refused(hub, bad_names[i], "ok@example.com", "password1",
                       SH_EINVAL, "username");
    expect_refused(hub, long_name, "ok@example.com", "password1", SH_EINVAL,
                   "username");
    for (size_t i = 0; i < sizeof bad_emails / sizeof bad_emails[0]; i++)
        expect_refused(hub, "okname", bad_emails[i], "password1", SH_EINVAL,
                       "email");
    expect_refused(hub, "okname", "ok@example.com", "1234567", SH_EINVAL,
                   "password");
    expect_refused(hub, "okname", "ok@example.com", "", SH_EINVAL,
                   "password");
    expect_refused(hub, "okname", "ok@example.com", long_pw, SH_EINVAL,
                   "password");
    expect_refused(hub, NULL, "ok@example.com", "password1", SH_EINVAL, NULL);
    expect_refused(hub, "okname", NULL, "password1", SH_EINVAL, NULL);
    expect_refused(hub, "okname", "ok@example.com", NULL, SH_EINVAL, NULL);
    assert_int_equal(sh_auth_register(hub, "okname", "ok@example.com",
                                      "password1", NULL, NULL, 0), SH_EINVAL);
    assert_int_equal(sh_auth_register(NULL, "okname", "ok@example.com",
                                      "password1", &a, NULL, 0), SH_EINVAL);

    /* The limits themselves pass: 3 and 25 characters, 8 and 1024 bytes. */
    a = reg(hub, "abc", "abc@example.com", "12345678");
    sh_auth_free(a);
    a = reg(hub, max_name, "max@example.com", max_pw);
    sh_auth_free(a);
    assert_int_equal(sh_auth_login(hub, max_name, max_pw, &a, NULL, 0),
                     SH_OK);
    sh_auth_free(a);

    /* Taken, whatever the case. */
    expect_refused(hub, "ABC", "other@example.com", "password1",
                   SH_ECONFLICT, "username");
    expect_refused(hub, "other", "ABC@Example.com", "password1",
                   SH_ECONFLICT, "email");
    /* Nothing was created by the refusals. */
    a = NULL;
    assert_int_equal(sh_auth_login(hub, "okname", "password1", &a, NULL, 0),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_auth_login(hub, "other", "password1", &a, NULL, 0),
                     SH_EUNAUTHENTICATED);
}

/* ---- hubs on stores ------------------------------------------------------ */

static void test_hub_on_file_store(void **state)
{
    char tmpl[] = "/tmp/sh_accounts_XXXXXX", path[64], uri[80], p2[80];
    int fd = mkstemp(tmpl);
    sh_hub_t *hub;
    sh_auth_t *a = NULL;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    unlink(tmpl);
    snprintf(path, sizeof path, "%s.db", tmpl);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    hub = hub_on(uri);
    a = reg(hub, "ivan", "ivan@example.com", "ivan-password");
    sh_auth_free(a);
    sh_hub_close(hub);

    /* Reopened: the account is still there, migrations not re-run. */
    hub = hub_on(uri);
    assert_int_equal(sh_auth_login(hub, "IVAN", "ivan-password", &a, NULL,
                                   0), SH_OK);
    sh_auth_free(a);
    sh_hub_close(hub);
    unlink(path);
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
}

static void test_hub_bad_store(void **state)
{
    static const struct {
        const char *uri;
        sh_err_t rc;
        const char *needle;
    } cases[] = {
        { "sqlite:/nonexistent-dir/deeper/x.db", SH_ESTORE,
          "/nonexistent-dir/deeper/x.db" },
        { "postgres://user@127.0.0.1:1/db", SH_ESTORE, "PostgreSQL" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sh_config_t *c = conf_with(cases[i].uri);
        sh_hub_t *hub = (sh_hub_t *)(uintptr_t)1;
        char err[SH_ERRBUF_SIZE] = "";

        assert_int_equal(sh_hub_open(c, &hub, err, sizeof err),
                         cases[i].rc);
        assert_null(hub);
        assert_non_null(strstr(err, "store"));
        assert_non_null(strstr(err, cases[i].needle));
        sh_config_free(c);     /* still ours after a failed open */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_payload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_verify_access_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotation_and_reuse,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_malformed_and_expired,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_refusals, setup,
                                        teardown),
        cmocka_unit_test(test_hub_on_file_store),
        cmocka_unit_test(test_hub_bad_store),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
