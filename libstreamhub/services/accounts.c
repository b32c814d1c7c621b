/* libstreamhub/services/accounts.c: users, passwords and tokens (auth.h).
 *
 * Passwords: Argon2id through crypto_pwhash_str with the INTERACTIVE
 * limits; the hash string carries its own parameters and salt.  A login for
 * an unknown username verifies the password against a dummy hash made once
 * per hub, so that the answer takes as long as for a known one and the two
 * failures cannot be told apart, by message or by time.
 *
 * Access tokens are JWTs from core/jwt.c, whose key set this area owns.
 *
 * Refresh tokens: 32 random bytes in base64url (43 characters, no
 * padding); the store keeps only their SHA-256 in hex.  Each login starts a
 * family (a random UUID); each refresh marks its token used and adds the
 * next one to the family, in one IMMEDIATE transaction so that two
 * concurrent refreshes of one token cannot both succeed.  A used token
 * presented again revokes the family (RFC 6819 5.2.2.3, OAuth 2.0 Security
 * BCP 4.14): whoever holds the newer token loses it too and must log in.
 *
 * Result handles are json-backed like every service result
 * (services_int.h): `obj` first, then what the JSON does not show.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/jwt_int.h"
#include "services/services_int.h"
#include "streamhub/auth.h"

#define REFRESH_BYTES 32
/* sodium_base64_ENCODED_LEN(32, URLSAFE_NO_PADDING) - 1 */
#define REFRESH_LEN 43
#define HASH_HEX_LEN (crypto_hash_sha256_BYTES * 2)

/* The area's state.  @locks dummy_mu guards dummy_hash only; keys are
 * immutable once built. */
struct sh__accounts {
    struct sh__jwt_keys *keys;         /* owned */
    int64_t refresh_ttl_ms;
    pthread_mutex_t dummy_mu;
    char dummy_hash[crypto_pwhash_STRBYTES];   /* "" until first needed */
};

struct sh_user {
    json_object *obj;          /* owned, or borrowed inside an sh_auth */
    unsigned roles;
    int64_t created_at_ms;
};

struct sh_auth {
    json_object *obj;          /* owned: the AuthPayload */
    struct sh_user user;       /* obj borrowed from obj's "user" */
};

struct sh_principal {
    struct sh__claims claims;
};

/* ---- statements -------------------------------------------------------- */

static const struct sh__sql q_insert_user = {
    "INSERT INTO users (id, username, username_lc, email, password_hash, "
    "role, created_at) VALUES (?, ?, ?, ?, ?, 'VIEWER', ?)", NULL, NULL
};
static const struct sh__sql q_username_taken = {
    "SELECT 1 FROM users WHERE username_lc = ?", NULL, NULL
};
static const struct sh__sql q_login = {
    "SELECT id, username, email, role, created_at, password_hash FROM users "
    "WHERE username_lc = ?", NULL, NULL
};
static const struct sh__sql q_user_by_id = {
    "SELECT id, username, email, role, created_at FROM users WHERE id = ?",
    NULL, NULL
};
static const struct sh__sql q_user_by_lc = {
    "SELECT id, username, email, role, created_at FROM users "
    "WHERE username_lc = ?", NULL, NULL
};
static const struct sh__sql q_insert_refresh = {
    "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at,"
    " expires_at) VALUES (?, ?, ?, ?, ?)", NULL, NULL
};
static const struct sh__sql q_find_refresh = {
    "SELECT user_id, family_id, expires_at, used_at, revoked_at "
    "FROM refresh_tokens WHERE token_hash = ?", NULL, NULL
};
static const struct sh__sql q_spend_refresh = {
    "UPDATE refresh_tokens SET used_at = ? "
    "WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
    NULL, NULL
};
static const struct sh__sql q_revoke_family = {
    "UPDATE refresh_tokens SET revoked_at = ? "
    "WHERE family_id = ? AND revoked_at IS NULL", NULL, NULL
};

/* ---- input checks ------------------------------------------------------ */

static bool username_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)s[n];

        if (n >= SH_USERNAME_MAX)
            return false;
        if (!(ch == '_' || (ch >= '0' && ch <= '9') ||
              (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            return false;
    }
    return n >= SH_USERNAME_MIN;
}

/* local@domain: printable ASCII without spaces, one '@', a local part of
 * 1..64 bytes, a domain of labels separated by single dots, at least two
 * labels, none empty or starting/ending with '-'.  Deliberately not RFC
 * 5322: quoted local parts and address literals are refused. */
static bool email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = strlen(s), label = 0, labels = 0;
    const char *d;

    if (at == NULL || n > SH_EMAIL_MAX || at == s || at - s > 64 ||
        strchr(at + 1, '@') != NULL)
        return false;
    for (const char *p = s; p < at; p++) {
        unsigned char ch = (unsigned char)*p;

        if (ch <= ' ' || ch >= 0x7f || strchr("\"(),:;<>[\\]", ch) != NULL)
            return false;
    }
    if (s[0] == '.' || at[-1] == '.' || strstr(s, "..") != NULL)
        return false;
    for (d = at + 1;; d++) {
        unsigned char ch = (unsigned char)*d;

        if (ch == '.' || ch == '\0') {
            if (label == 0 || d[-1] == '-')
                return false;
            labels++;
            label = 0;
            if (ch == '\0')
                break;
            continue;
        }
        if (!(isalnum(ch) || ch == '-') || ch >= 0x80)
            return false;
        if (label == 0 && ch == '-')
            return false;
        if (++label > 63)
            return false;
    }
    return labels >= 2;
}

static void ascii_lower(char *dst, const char *src, size_t cap)
{
    size_t i;

    for (i = 0; src[i] != '\0' && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];

        dst[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
    }
    dst[i] = '\0';
}

static unsigned role_bits(const char *role)
{
    if (role != NULL && strcmp(role, "ADMIN") == 0)
        return SH_ROLE_VIEWER | SH_ROLE_MODERATOR | SH_ROLE_ADMIN;
    if (role != NULL && strcmp(role, "MODERATOR") == 0)
        return SH_ROLE_VIEWER | SH_ROLE_MODERATOR;
    return SH_ROLE_VIEWER;
}

/* ---- users ------------------------------------------------------------- */

/* A user row as read: id, username, email, role, created_at[, hash]. */
struct user_row {
    bool found;
    char id[SH__UUID_LEN + 1];
    char username[SH_USERNAME_MAX + 1];
    char email[SH_EMAIL_MAX + 1];
    unsigned roles;
    int64_t created_at;
    char hash[crypto_pwhash_STRBYTES];
};

static void copy_col(char *dst, size_t cap, const struct sh__row *row,
                     int col)
{
    size_t n = 0;
    const char *s = sh__row_text(row, col, &n);

    if (s == NULL || n >= cap)
        n = 0;
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

static int user_row_cb(void *arg, const struct sh__row *row)
{
    struct user_row *u = arg;

    u->found = true;
    copy_col(u->id, sizeof u->id, row, 0);
    copy_col(u->username, sizeof u->username, row, 1);
    copy_col(u->email, sizeof u->email, row, 2);
    u->roles = role_bits(sh__row_text(row, 3, NULL));
    u->created_at = sh__row_int(row, 4);
    return 1;
}

static int found_cb(void *arg, const struct sh__row *row)
{
    (void)row;
    *(bool *)arg = true;
    return 1;
}

static int login_row_cb(void *arg, const struct sh__row *row)
{
    struct user_row *u = arg;

    user_row_cb(arg, row);
    copy_col(u->hash, sizeof u->hash, row, 5);
    return 1;
}

/* The User JSON of @u; the email only when @with_email.  NULL on ENOMEM. */
static json_object *user_json(const struct user_row *u, bool with_email)
{
    json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    if (!sh__jset_str(o, "id", u->id) ||
        !sh__jset_str(o, "username", u->username) ||
        !sh__jset_str(o, "email", with_email ? u->email : NULL) ||
        !sh__jset_time(o, "createdAt", u->created_at, false)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static sh_err_t check_hub(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    sh_err_t rc = sh__hub_live(hub);

    if (rc == SH_OK && hub->accounts == NULL)
        rc = SH_EINTERNAL;
    if (rc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "%s", rc == SH_ECANCELED
                   ? "the hub is closing" : rc == SH_EINVAL ? "hub is NULL"
                   : "the accounts area is not open");
    return rc;
}

/* ---- refresh tokens ---------------------------------------------------- */

static void token_hash(const char *token, size_t len,
                       char hex[HASH_HEX_LEN + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)token, len);
    sodium_bin2hex(hex, HASH_HEX_LEN + 1, h, sizeof h);
}

/* Exactly 43 characters of the base64url alphabet. */
static bool refresh_shape_ok(const char *t)
{
    size_t n;

    for (n = 0; t[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)t[n];

        if (n >= REFRESH_LEN)
            return false;
        if (!(isalnum(ch) || ch == '-' || ch == '_') || ch >= 0x80)
            return false;
    }
    return n == REFRESH_LEN;
}

/* Mint a refresh token of @family for @user_id on @c (inside the caller's
 * transaction) into @token. */
static sh_err_t refresh_mint(struct sh__accounts *acc, struct sh__conn *c,
                             const char *user_id, const char *family,
                             int64_t now, char token[REFRESH_LEN + 1],
                             char *errbuf, size_t errbuf_len)
{
    unsigned char raw[REFRESH_BYTES];
    char hex[HASH_HEX_LEN + 1];
    struct sh__val p[5];

    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(token, REFRESH_LEN + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    token_hash(token, REFRESH_LEN, hex);
    p[0] = sh__v_text(hex);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_text(family);
    p[3] = sh__v_int(now);
    p[4] = sh__v_int(now + acc->refresh_ttl_ms);
    return sh__store_exec(c, &q_insert_refresh, p, 5, NULL, NULL, NULL,
                          errbuf, errbuf_len);
}

/* Build the AuthPayload for @u with @refresh into *@out. */
static sh_err_t auth_build(struct sh__accounts *acc,
                           const struct user_row *u, const char *refresh,
                           sh_auth_t **out, char *errbuf, size_t errbuf_len)
{
    struct sh__claims cl;
    char *access = NULL;
    json_object *o = NULL, *uj = NULL;
    sh_auth_t *a = NULL;
    int64_t now_s = sh__now_ms() / 1000;
    sh_err_t rc;

    memset(&cl, 0, sizeof cl);
    snprintf(cl.sub, sizeof cl.sub, "%s", u->id);
    snprintf(cl.username, sizeof cl.username, "%s", u->username);
    cl.roles = u->roles;
    cl.iat = now_s;
    cl.exp = now_s + sh__jwt_ttl(acc->keys);
    rc = sh__jwt_issue(acc->keys, &cl, &access);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "cannot issue the access token: %s",
                   sh_strerror(rc));
        return rc;
    }
    rc = SH_ENOMEM;
    o = json_object_new_object();
    a = calloc(1, sizeof *a);
    if (o == NULL || a == NULL)
        goto fail;
    if (!sh__jset_str(o, "accessToken", access) ||
        !sh__jset_str(o, "refreshToken", refresh) ||
        !sh__jset_int(o, "expiresIn", sh__jwt_ttl(acc->keys)))
        goto fail;
    uj = user_json(u, true);
    if (uj == NULL || !sh__jset(o, "user", uj))
        goto fail;
    a->obj = o;
    a->user.obj = uj;          /* borrowed: o holds the reference */
    a->user.roles = u->roles;
    a->user.created_at_ms = u->created_at;
    sodium_memzero(access, strlen(access));
    free(access);
    *out = a;
    return SH_OK;
fail:
    sh__errbuf(errbuf, errbuf_len, "out of memory");
    json_object_put(o);
    free(a);
    sodium_memzero(access, strlen(access));
    free(access);
    return rc;
}

/* Start a family for @u, commit, build the payload.  @c holds an open
 * transaction; it is committed here (or rolled back on error). */
static sh_err_t login_finish(struct sh__accounts *acc, struct sh__conn *c,
                             const struct user_row *u, sh_auth_t **out,
                             char *errbuf, size_t errbuf_len)
{
    char family[SH__UUID_LEN + 1], token[REFRESH_LEN + 1];
    sh_err_t rc;

    sh__uuid4(family);
    rc = refresh_mint(acc, c, u->id, family, sh__now_ms(), token, errbuf,
                      errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
    if (rc == SH_OK)
        rc = auth_build(acc, u, token, out, errbuf, errbuf_len);
    sodium_memzero(token, sizeof token);
    return rc;
}

/* ---- public calls ------------------------------------------------------ */

SH_API sh_err_t sh_auth_register(sh_hub_t *hub, const char *username,
                                 const char *email, const char *password,
                                 sh_auth_t **out, char *errbuf,
                                 size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct user_row u;
    struct sh__conn *c = NULL;
    char email_lc[SH_EMAIL_MAX + 1], name_lc[SH_USERNAME_MAX + 1];
    char hash[crypto_pwhash_STRBYTES];
    struct sh__val p[6];
    size_t plen;
    bool taken = false;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = check_hub(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (username == NULL || email == NULL || password == NULL ||
        out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "username, email, password and out "
                   "must not be NULL");
        return SH_EINVAL;
    }
    if (!username_ok(username)) {
        sh__errbuf(errbuf, errbuf_len, "username: %d to %d characters of "
                   "A-Z, a-z, 0-9 and _", SH_USERNAME_MIN, SH_USERNAME_MAX);
        return SH_EINVAL;
    }
    if (!email_ok(email)) {
        sh__errbuf(errbuf, errbuf_len, "email: not a valid address");
        return SH_EINVAL;
    }
    plen = strnlen(password, SH_PASSWORD_MAX + 1);
    if (plen < SH_PASSWORD_MIN || plen > SH_PASSWORD_MAX) {
        sh__errbuf(errbuf, errbuf_len, "password: %d to %d bytes",
                   SH_PASSWORD_MIN, SH_PASSWORD_MAX);
        return SH_EINVAL;
    }
    ascii_lower(name_lc, username, sizeof name_lc);
    ascii_lower(email_lc, email, sizeof email_lc);

    /* Hash before taking a connection: it takes a tenth of a second. */
    if (crypto_pwhash_str(hash, password, plen,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        sh__errbuf(errbuf, errbuf_len, "out of memory hashing the password");
        return SH_ENOMEM;
    }
    memset(&u, 0, sizeof u);
    sh__uuid4(u.id);
    memcpy(u.username, username, strlen(username) + 1);
    memcpy(u.email, email_lc, sizeof email_lc);
    u.roles = SH_ROLE_VIEWER;
    u.created_at = sh__now_ms();

    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        return rc;
    }
    rc = sh__store_begin(c, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    p[0] = sh__v_text(u.id);
    p[1] = sh__v_text(username);
    p[2] = sh__v_text(name_lc);
    p[3] = sh__v_text(email_lc);
    p[4] = sh__v_text(hash);
    p[5] = sh__v_int(u.created_at);
    rc = sh__store_exec(c, &q_insert_user, p, 6, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_ECONFLICT) {
        /* Say which one, without the other's details.  Outside the
         * transaction: PostgreSQL refuses every statement of a transaction
         * after one failed. */
        sh__store_rollback(c);
        p[0] = sh__v_text(name_lc);
        if (sh__store_exec(c, &q_username_taken, p, 1, found_cb, &taken,
                           NULL, NULL, 0) != SH_OK)
            taken = false;
        sh__errbuf(errbuf, errbuf_len, "%s is already taken",
                   taken ? "username" : "email");
    }
    if (rc != SH_OK) {
        sh__store_rollback(c);
        goto out;
    }
    rc = login_finish(hub->accounts, c, &u, out, errbuf, errbuf_len);
    if (rc == SH_OK) {
        /* The new user reads themselves next (me, by name). */
        sh__store_wrote(hub->store, u.id);
        sh__store_wrote(hub->store, name_lc);
    }
out:
    sh__store_release(c);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

/* A hash to verify against when the username is unknown (made once). */
static const char *dummy_hash(struct sh__accounts *acc)
{
    pthread_mutex_lock(&acc->dummy_mu);
    if (acc->dummy_hash[0] == '\0') {
        char pw[24];

        randombytes_buf(pw, sizeof pw);
        if (crypto_pwhash_str(acc->dummy_hash, pw, sizeof pw,
                              crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
            acc->dummy_hash[0] = '\0';
    }
    pthread_mutex_unlock(&acc->dummy_mu);
    return acc->dummy_hash;
}

SH_API sh_err_t sh_auth_login(sh_hub_t *hub, const char *username,
                              const char *password, sh_auth_t **out,
                              char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct user_row u;
    struct sh__conn *c = NULL;
    char name_lc[SH_USERNAME_MAX + 1];
    struct sh__val p[1];
    size_t plen;
    bool ok;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = check_hub(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (username == NULL || password == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "username, password and out must not"
                   " be NULL");
        return SH_EINVAL;
    }
    memset(&u, 0, sizeof u);
    plen = strnlen(password, SH_PASSWORD_MAX + 1);
    if (username_ok(username)) {
        ascii_lower(name_lc, username, sizeof name_lc);
        rc = sh__store_acquire(hub->store, &c);
        if (rc != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "the hub is closing");
            return rc;
        }
        p[0] = sh__v_text(name_lc);
        rc = sh__store_exec(c, &q_login, p, 1, login_row_cb, &u, NULL,
                            errbuf, errbuf_len);
        sh__store_release(c);
        c = NULL;
        if (rc != SH_OK)
            return rc;
    }
    /* Verify with the connection released: it is slow.  An unknown user
     * or an out-of-range password costs the same verification. */
    ok = crypto_pwhash_str_verify(u.found ? u.hash : dummy_hash(hub->accounts),
                                  password, plen) == 0;
    sodium_memzero(u.hash, sizeof u.hash);
    if (!ok || !u.found || plen < SH_PASSWORD_MIN || plen > SH_PASSWORD_MAX) {
        sh__errbuf(errbuf, errbuf_len, "invalid username or password");
        return SH_EUNAUTHENTICATED;
    }
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        return rc;
    }
    rc = sh__store_begin(c, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = login_finish(hub->accounts, c, &u, out, errbuf, errbuf_len);
    sh__store_release(c);
    return rc;
}

struct refresh_row {
    bool found;
    char user_id[SH__UUID_LEN + 1];
    char family[SH__UUID_LEN + 1];
    int64_t expires_at;
    bool used, revoked;
};

static int refresh_row_cb(void *arg, const struct sh__row *row)
{
    struct refresh_row *r = arg;

    r->found = true;
    copy_col(r->user_id, sizeof r->user_id, row, 0);
    copy_col(r->family, sizeof r->family, row, 1);
    r->expires_at = sh__row_int(row, 2);
    r->used = !sh__row_null(row, 3);
    r->revoked = !sh__row_null(row, 4);
    return 1;
}

/* Find @token's row on @c.  SH_EUNAUTHENTICATED when malformed/unknown. */
static sh_err_t refresh_find(struct sh__conn *c, const char *token,
                             struct refresh_row *r, char *errbuf,
                             size_t errbuf_len)
{
    char hex[HASH_HEX_LEN + 1];
    struct sh__val p[1];
    sh_err_t rc;

    memset(r, 0, sizeof *r);
    token_hash(token, strlen(token), hex);
    p[0] = sh__v_text(hex);
    rc = sh__store_exec(c, &q_find_refresh, p, 1, refresh_row_cb, r, NULL,
                        errbuf, errbuf_len);
    if (rc == SH_OK && !r->found) {
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        rc = SH_EUNAUTHENTICATED;
    }
    return rc;
}

static sh_err_t revoke_family(struct sh__conn *c, const char *family,
                              int64_t now, char *errbuf, size_t errbuf_len)
{
    struct sh__val p[2] = { sh__v_int(now), sh__v_text(family) };

    return sh__store_exec(c, &q_revoke_family, p, 2, NULL, NULL, NULL,
                          errbuf, errbuf_len);
}

SH_API sh_err_t sh_auth_refresh(sh_hub_t *hub, const char *refresh_token,
                                sh_auth_t **out, char *errbuf,
                                size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct refresh_row r;
    struct user_row u;
    struct sh__conn *c = NULL;
    char hex[HASH_HEX_LEN + 1], next[REFRESH_LEN + 1];
    struct sh__val p[2];
    int64_t now = sh__now_ms(), changes = 0;
    bool reused = false;
    sh_err_t rc;

    memset(&r, 0, sizeof r);
    if (out != NULL)
        *out = NULL;
    rc = check_hub(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (refresh_token == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "refresh token and out must not be "
                   "NULL");
        return SH_EINVAL;
    }
    if (!refresh_shape_ok(refresh_token)) {
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        return SH_EUNAUTHENTICATED;
    }
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        return rc;
    }
    rc = sh__store_begin(c, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    rc = refresh_find(c, refresh_token, &r, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto abort;
    if (r.used && !r.revoked) {
        /* Spent before: a copy is in other hands.  Kill the family. */
        rc = revoke_family(c, r.family, now, errbuf, errbuf_len);
        if (rc != SH_OK)
            goto abort;
        rc = sh__store_commit(c, errbuf, errbuf_len);
        if (rc != SH_OK)
            goto out;
        reused = true;
        rc = SH_EUNAUTHENTICATED;
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        goto out;
    }
    if (r.used || r.revoked || r.expires_at <= now) {
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        rc = SH_EUNAUTHENTICATED;
        goto abort;
    }
    token_hash(refresh_token, REFRESH_LEN, hex);
    p[0] = sh__v_int(now);
    p[1] = sh__v_text(hex);
    rc = sh__store_exec(c, &q_spend_refresh, p, 2, NULL, NULL, &changes,
                        errbuf, errbuf_len);
    if (rc != SH_OK)
        goto abort;
    if (changes != 1) {        /* cannot happen under IMMEDIATE; be safe */
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        rc = SH_EUNAUTHENTICATED;
        goto abort;
    }
    memset(&u, 0, sizeof u);
    p[0] = sh__v_text(r.user_id);
    rc = sh__store_exec(c, &q_user_by_id, p, 1, user_row_cb, &u, NULL,
                        errbuf, errbuf_len);
    if (rc != SH_OK)
        goto abort;
    if (!u.found) {
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        rc = SH_EUNAUTHENTICATED;
        goto abort;
    }
    rc = refresh_mint(hub->accounts, c, u.id, r.family, now, next, errbuf,
                      errbuf_len);
    if (rc != SH_OK)
        goto abort;
    rc = sh__store_commit(c, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    sh__store_release(c);
    c = NULL;
    rc = auth_build(hub->accounts, &u, next, out, errbuf, errbuf_len);
    sodium_memzero(next, sizeof next);
    return rc;
abort:
    sh__store_rollback(c);
out:
    sh__store_release(c);
    if (reused)
        sh__log_kv(&hub->log, SH_LOG_WARN, "refresh token reused; family "
                   "revoked", "user_id", r.user_id, (char *)NULL);
    return rc;
}

SH_API sh_err_t sh_auth_revoke(sh_hub_t *hub, const char *refresh_token,
                               char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct refresh_row r;
    struct sh__conn *c = NULL;
    sh_err_t rc;

    rc = check_hub(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (refresh_token == NULL) {
        sh__errbuf(errbuf, errbuf_len, "refresh token must not be NULL");
        return SH_EINVAL;
    }
    if (!refresh_shape_ok(refresh_token)) {
        sh__errbuf(errbuf, errbuf_len, "invalid refresh token");
        return SH_EUNAUTHENTICATED;
    }
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        return rc;
    }
    rc = sh__store_begin(c, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = refresh_find(c, refresh_token, &r, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = revoke_family(c, r.family, sh__now_ms(), errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
    sh__store_release(c);
    return rc;
}

SH_API sh_err_t sh_auth_verify(sh_hub_t *hub, const char *token, size_t len,
                               sh_principal_t **out)
{
    SH__HUB_CALL(hub);
    struct sh_principal *pr;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = check_hub(hub, NULL, 0);
    if (rc != SH_OK)
        return rc;
    if (token == NULL || out == NULL)
        return SH_EINVAL;
    pr = calloc(1, sizeof *pr);
    if (pr == NULL)
        return SH_ENOMEM;
    rc = sh__jwt_verify(hub->accounts->keys, token, len,
                        sh__now_ms() / 1000, &pr->claims);
    if (rc != SH_OK) {
        free(pr);
        return SH_EUNAUTHENTICATED;
    }
    *out = pr;
    return SH_OK;
}

/* The cached row of user @id into *@u (its hash left empty): true on a
 * hit; on a miss *@t is the ticket for user_cache_put(). */
static bool user_cached(sh_hub_t *hub, const char *id, struct user_row *u,
                        struct sh__cache_ticket *t)
{
    json_object *o;
    char *text = NULL;
    size_t len = 0;
    const char *name, *email, *uid;
    bool ok = false;

    if (!sh__cache_get(hub, SH__CACHE_USER, id, &text, &len, t))
        return false;
    o = json_tokener_parse(text);
    free(text);
    uid = sh__jstr(o, "id");
    name = sh__jstr(o, "username");
    email = sh__jstr(o, "email");
    if (uid != NULL && name != NULL && email != NULL &&
        strcmp(uid, id) == 0 && strlen(name) < sizeof u->username &&
        strlen(email) < sizeof u->email) {
        memcpy(u->id, uid, strlen(uid) + 1);
        memcpy(u->username, name, strlen(name) + 1);
        memcpy(u->email, email, strlen(email) + 1);
        u->roles = (unsigned)sh__jint(o, "roles");
        u->created_at = sh__jint(o, "createdAt");
        u->found = true;
        ok = true;
    }
    json_object_put(o);
    return ok;
}

static void user_cache_put(sh_hub_t *hub, const struct user_row *u,
                           const struct sh__cache_ticket *t)
{
    json_object *o = json_object_new_object();
    const char *txt;
    size_t len = 0;

    if (o != NULL && sh__jset_str(o, "id", u->id) &&
        sh__jset_str(o, "username", u->username) &&
        sh__jset_str(o, "email", u->email) &&
        sh__jset_int(o, "roles", (int64_t)u->roles) &&
        sh__jset_int(o, "createdAt", u->created_at) &&
        (txt = sh__jtext(o, &len)) != NULL)
        sh__cache_put(hub, SH__CACHE_USER, u->id, t, txt, len);
    json_object_put(o);
}

static sh_err_t user_get(sh_hub_t *hub, const char *viewer_id,
                         const struct sh__sql *q, const char *key,
                         sh_user_t **out, char *errbuf, size_t errbuf_len)
{
    struct sh__cache_ticket t;
    struct user_row u;
    struct sh__conn *c = NULL;
    struct sh__val p[1];
    sh_user_t *h;
    sh_err_t rc;

    memset(&u, 0, sizeof u);
    t.valid = false;
    t.mem_valid = false;
    /* By id, the row (never its password hash) may be in the cache: a
     * user row never changes once written. */
    if (q == &q_user_by_id && user_cached(hub, key, &u, &t))
        goto found;
    /* @key: an id or a username (fresh after a registration here). */
    rc = sh__store_acquire_read(hub->store, key, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        return rc;
    }
    p[0] = sh__v_text(key);
    rc = sh__store_exec(c, q, p, 1, user_row_cb, &u, NULL, errbuf,
                        errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    if (!u.found) {
        sh__errbuf(errbuf, errbuf_len, "no such user");
        return SH_ENOTFOUND;
    }
    if (sh__cache_fillable(&t))
        user_cache_put(hub, &u, &t);
found:
    h = calloc(1, sizeof *h);
    if (h != NULL)
        h->obj = user_json(&u, viewer_id != NULL &&
                               strcmp(viewer_id, u.id) == 0);
    if (h == NULL || h->obj == NULL) {
        free(h);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    h->roles = u.roles;
    h->created_at_ms = u.created_at;
    *out = h;
    return SH_OK;
}

SH_API sh_err_t sh_user_get(sh_hub_t *hub, const char *viewer_id,
                            const char *user_id, sh_user_t **out,
                            char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = check_hub(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (user_id == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "user id and out must not be NULL");
        return SH_EINVAL;
    }
    if (!sh__uuid_valid(user_id)) {
        sh__errbuf(errbuf, errbuf_len, "no such user");
        return SH_ENOTFOUND;
    }
    return user_get(hub, viewer_id, &q_user_by_id, user_id, out, errbuf,
                    errbuf_len);
}

SH_API sh_err_t sh_user_get_by_username(sh_hub_t *hub, const char *viewer_id,
                                        const char *username,
                                        sh_user_t **out, char *errbuf,
                                        size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char name_lc[SH_USERNAME_MAX + 1];
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = check_hub(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (username == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "username and out must not be NULL");
        return SH_EINVAL;
    }
    if (!username_ok(username)) {
        sh__errbuf(errbuf, errbuf_len, "no such user");
        return SH_ENOTFOUND;
    }
    ascii_lower(name_lc, username, sizeof name_lc);
    return user_get(hub, viewer_id, &q_user_by_lc, name_lc, out, errbuf,
                    errbuf_len);
}

/* ---- getters ------------------------------------------------------------ */

SH_API const char *sh_auth_access_token(const sh_auth_t *a)
{
    return a == NULL ? NULL : sh__jstr(a->obj, "accessToken");
}

SH_API const char *sh_auth_refresh_token(const sh_auth_t *a)
{
    return a == NULL ? NULL : sh__jstr(a->obj, "refreshToken");
}

SH_API int64_t sh_auth_expires_in(const sh_auth_t *a)
{
    return a == NULL ? 0 : sh__jint(a->obj, "expiresIn");
}

SH_API const sh_user_t *sh_auth_user(const sh_auth_t *a)
{
    return a == NULL ? NULL : &a->user;
}

SH_API const char *sh_auth_json(const sh_auth_t *a, size_t *len)
{
    return sh__jtext(a == NULL ? NULL : a->obj, len);
}

SH_API void sh_auth_free(sh_auth_t *a)
{
    if (a == NULL)
        return;
    json_object_put(a->obj);
    free(a);
}

SH_API const char *sh_user_id(const sh_user_t *u)
{
    return u == NULL ? NULL : sh__jstr(u->obj, "id");
}

SH_API const char *sh_user_username(const sh_user_t *u)
{
    return u == NULL ? NULL : sh__jstr(u->obj, "username");
}

SH_API const char *sh_user_email(const sh_user_t *u)
{
    return u == NULL ? NULL : sh__jstr(u->obj, "email");
}

SH_API unsigned sh_user_roles(const sh_user_t *u)
{
    return u == NULL ? 0 : u->roles;
}

SH_API int64_t sh_user_created_at_ms(const sh_user_t *u)
{
    return u == NULL ? 0 : u->created_at_ms;
}

SH_API const char *sh_user_json(const sh_user_t *u, size_t *len)
{
    return sh__jtext(u == NULL ? NULL : u->obj, len);
}

SH_API void sh_user_free(sh_user_t *u)
{
    if (u == NULL)
        return;
    json_object_put(u->obj);
    free(u);
}

SH_API const char *sh_principal_user_id(const sh_principal_t *p)
{
    return p == NULL ? NULL : p->claims.sub;
}

SH_API const char *sh_principal_username(const sh_principal_t *p)
{
    return p == NULL ? NULL : p->claims.username;
}

SH_API unsigned sh_principal_roles(const sh_principal_t *p)
{
    return p == NULL ? 0 : p->claims.roles;
}

SH_API int64_t sh_principal_exp(const sh_principal_t *p)
{
    return p == NULL ? 0 : p->claims.exp;
}

SH_API void sh_principal_free(sh_principal_t *p)
{
    free(p);
}

/* ---- the area ------------------------------------------------------------ */

sh_err_t sh__accounts_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__accounts *acc;
    sh_err_t rc;

    if (sodium_init() < 0) {
        sh__errbuf(errbuf, errbuf_len, "libsodium cannot initialise");
        return SH_EINTERNAL;
    }
    acc = calloc(1, sizeof *acc);
    if (acc == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    rc = sh__jwt_keys_new(hub->conf, &hub->log, &acc->keys, errbuf,
                          errbuf_len);
    if (rc != SH_OK) {
        free(acc);
        return rc;
    }
    if (pthread_mutex_init(&acc->dummy_mu, NULL) != 0) {
        sh__jwt_keys_free(acc->keys);
        free(acc);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    acc->refresh_ttl_ms = sh__config_int(hub->conf, "refresh-ttl-seconds") *
                          1000;
    hub->accounts = acc;
    return SH_OK;
}

void sh__accounts_fini(sh_hub_t *hub)
{
    struct sh__accounts *acc = hub->accounts;

    if (acc == NULL)
        return;
    hub->accounts = NULL;
    sh__jwt_keys_free(acc->keys);
    pthread_mutex_destroy(&acc->dummy_mu);
    free(acc);
}
