/* include/streamhub/auth.h: accounts: users, passwords and tokens.
 *
 * A user registers with a username, an email and a password, then logs in
 * with the username and password.  Both return an sh_auth_t, the GraphQL
 * AuthPayload: a short-lived access token (a JWT carrying the user's id,
 * username and roles; its lifetime is the jwt-ttl-seconds key) and a
 * long-lived refresh token (refresh-ttl-seconds).
 *
 * Refresh tokens are single use.  sh_auth_refresh() spends one and returns
 * a new pair whose refresh token continues the same family.  Presenting a
 * refresh token that was already spent means that two parties hold it (the
 * user and a thief): the whole family is revoked, so both must log in
 * again.  Only a SHA-256 hash of each refresh token is stored.
 *
 * Passwords are hashed with Argon2id (libsodium's crypto_pwhash_str with
 * its INTERACTIVE limits: about 64 MiB and a tenth of a second per hash),
 * so register and login are deliberately slow, CPU- and memory-bound calls.
 *
 * Result handles hold the JSON of the GraphQL type of api/schema.graphql,
 * which is also the REST body:
 *   User:        {"id":"…","username":"…","email":"…"|null,
 *                 "createdAt":"2026-11-27T05:33:42.123Z"}
 *   AuthPayload: {"accessToken":"…","refreshToken":"…","expiresIn":900,
 *                 "user":{…User…}}
 * (the User's counts, followers and stream are resolved by other calls).
 *
 * Threads: every call may come from any thread, concurrently.  A handle is
 * immutable and may be read from several threads at once; free it once.
 */
#ifndef STREAMHUB_AUTH_H
#define STREAMHUB_AUTH_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A user account (GraphQL User, without its counts). */
typedef struct sh_user sh_user_t;
/* The result of register, login and refresh (GraphQL AuthPayload). */
typedef struct sh_auth sh_auth_t;
/* The identity an access token proves. */
typedef struct sh_principal sh_principal_t;

/* Role bits of sh_user_roles() and sh_principal_roles().  A moderator also
 * has SH_ROLE_VIEWER, an admin all three. */
#define SH_ROLE_VIEWER    1u
#define SH_ROLE_MODERATOR 2u
#define SH_ROLE_ADMIN     4u

/* Limits of the inputs (bytes). */
#define SH_USERNAME_MIN 3
#define SH_USERNAME_MAX 25
#define SH_EMAIL_MAX 254
#define SH_PASSWORD_MIN 8
#define SH_PASSWORD_MAX 1024

/* Create a user with the VIEWER role and log them in.
 *
 * @username  3..25 bytes of [A-Za-z0-9_], NUL-terminated; kept as given,
 *            unique without regard to ASCII case.
 * @email     a plausible address (local@domain.tld, printable ASCII, at
 *            most 254 bytes); stored lowercased, unique.
 * @password  8..1024 bytes, NUL-terminated; only its Argon2id hash is kept.
 * @out       receives the AuthPayload; NULL on error.
 *
 * Errors: SH_EINVAL (a bad argument; @errbuf names the field),
 * SH_ECONFLICT (username or email taken; @errbuf says which),
 * SH_ECANCELED (the hub is closing), SH_ESTORE, SH_ENOMEM.  On error no
 * user was created.
 * Ownership: arguments borrowed for the call; *@out is the caller's,
 * released by sh_auth_free().
 * Threads: any; slow (one password hash).  Since: 0.1
 */
SH_API sh_err_t sh_auth_register(sh_hub_t *hub, const char *username,
                                 const char *email, const char *password,
                                 sh_auth_t **out, char *errbuf,
                                 size_t errbuf_len);

/* Log in with @username (any ASCII case) and @password.
 *
 * Errors: SH_EUNAUTHENTICATED for an unknown user and for a wrong password
 * alike (same message, comparable time), SH_EINVAL (NULL arguments),
 * SH_ECANCELED, SH_ESTORE, SH_ENOMEM.
 * Ownership: arguments borrowed; *@out is the caller's (sh_auth_free()).
 * Threads: any; slow (one password hash).  Since: 0.1
 */
SH_API sh_err_t sh_auth_login(sh_hub_t *hub, const char *username,
                              const char *password, sh_auth_t **out,
                              char *errbuf, size_t errbuf_len);

/* Spend @refresh_token for a new access token and refresh token.
 *
 * Errors: SH_EUNAUTHENTICATED when the token is malformed, unknown,
 * expired, revoked or already spent (then its whole family is revoked),
 * or its user is gone; SH_ECANCELED, SH_ESTORE, SH_ENOMEM.
 * Ownership: arguments borrowed; *@out is the caller's (sh_auth_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_auth_refresh(sh_hub_t *hub, const char *refresh_token,
                                sh_auth_t **out, char *errbuf,
                                size_t errbuf_len);

/* Log out: revoke @refresh_token and every token of its family.  Access
 * tokens already issued stay valid until they expire.
 *
 * Errors: SH_EUNAUTHENTICATED (malformed or unknown token), SH_EINVAL,
 * SH_ECANCELED, SH_ESTORE.  Revoking a revoked family again is SH_OK.
 * Ownership: arguments borrowed.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_auth_revoke(sh_hub_t *hub, const char *refresh_token,
                               char *errbuf, size_t errbuf_len);

/* Check the access token @token (@len bytes, need not be terminated) and
 * return whom it names.  Only the token is checked (signature, algorithm,
 * expiry), not the store: a hot path of the gateway.
 * Clock skew: a token is still accepted up to `jwt-leeway-seconds`
 * (default 30) after its exp, and already up to that many seconds before
 * its nbf and iat; past those bounds it is SH_EUNAUTHENTICATED.
 *
 * Errors: SH_EUNAUTHENTICATED for every kind of bad token alike,
 * SH_EINVAL (NULL arguments), SH_ECANCELED, SH_ENOMEM.
 * Ownership: @token borrowed; *@out is the caller's, released by
 * sh_principal_free().  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_auth_verify(sh_hub_t *hub, const char *token, size_t len,
                               sh_principal_t **out);

/* The access token (a JWT), NUL-terminated.
 * Ownership: borrowed until sh_auth_free(@a).  Since: 0.1 */
SH_API const char *sh_auth_access_token(const sh_auth_t *a);
/* The refresh token (43 characters of base64url), NUL-terminated.
 * Ownership: borrowed until sh_auth_free(@a).  Since: 0.1 */
SH_API const char *sh_auth_refresh_token(const sh_auth_t *a);
/* Seconds until the access token expires.  Since: 0.1 */
SH_API int64_t sh_auth_expires_in(const sh_auth_t *a);
/* The user logged in (their email included).
 * Ownership: borrowed until sh_auth_free(@a).  Since: 0.1 */
SH_API const sh_user_t *sh_auth_user(const sh_auth_t *a);
/* The AuthPayload JSON; @len (may be NULL) receives its bytes.
 * Ownership: borrowed until sh_auth_free(@a).  Since: 0.1 */
SH_API const char *sh_auth_json(const sh_auth_t *a, size_t *len);
/* Free @a; NULL is a no-op.  Since: 0.1 */
SH_API void sh_auth_free(sh_auth_t *a);

/* Look a user up by id.
 *
 * @viewer_id  the authenticated caller's user id, or NULL: the email is
 *             filled only when it equals @user_id (User.email is visible to
 *             the user themself only).
 * Errors: SH_ENOTFOUND (no such user; a malformed id is not found either),
 * SH_EINVAL (NULL @user_id or @out), SH_ECANCELED, SH_ESTORE, SH_ENOMEM.
 * Ownership: arguments borrowed; *@out is the caller's (sh_user_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_user_get(sh_hub_t *hub, const char *viewer_id,
                            const char *user_id, sh_user_t **out,
                            char *errbuf, size_t errbuf_len);

/* Look a user up by @username, in any ASCII case; as sh_user_get()
 * otherwise (SH_ENOTFOUND also for a string that is no valid username).
 * Since: 0.1 */
SH_API sh_err_t sh_user_get_by_username(sh_hub_t *hub, const char *viewer_id,
                                        const char *username,
                                        sh_user_t **out, char *errbuf,
                                        size_t errbuf_len);

/* The user's id (a UUID), NUL-terminated.
 * Ownership: borrowed until @u is freed.  Since: 0.1 */
SH_API const char *sh_user_id(const sh_user_t *u);
/* The username as registered.  Borrowed until @u is freed.  Since: 0.1 */
SH_API const char *sh_user_username(const sh_user_t *u);
/* The email (lowercased), or NULL when hidden from the viewer.
 * Borrowed until @u is freed.  Since: 0.1 */
SH_API const char *sh_user_email(const sh_user_t *u);
/* SH_ROLE_* bits.  Since: 0.1 */
SH_API unsigned sh_user_roles(const sh_user_t *u);
/* Creation time, milliseconds since the Unix epoch (UTC).  Since: 0.1 */
SH_API int64_t sh_user_created_at_ms(const sh_user_t *u);
/* The User JSON (email null when hidden); @len may be NULL.
 * Ownership: borrowed until @u is freed.  Since: 0.1 */
SH_API const char *sh_user_json(const sh_user_t *u, size_t *len);
/* Free @u; NULL is a no-op.  Never pass sh_auth_user()'s result: it
 * belongs to its sh_auth_t.  Since: 0.1 */
SH_API void sh_user_free(sh_user_t *u);

/* The token's user id (the sub claim).
 * Ownership: borrowed until sh_principal_free(@p).  Since: 0.1 */
SH_API const char *sh_principal_user_id(const sh_principal_t *p);
/* The username the token was issued for.  Borrowed likewise.  Since: 0.1 */
SH_API const char *sh_principal_username(const sh_principal_t *p);
/* SH_ROLE_* bits the token grants.  Since: 0.1 */
SH_API unsigned sh_principal_roles(const sh_principal_t *p);
/* Expiry of the token, seconds since the Unix epoch.  Since: 0.1 */
SH_API int64_t sh_principal_exp(const sh_principal_t *p);
/* Free @p; NULL is a no-op.  Since: 0.1 */
SH_API void sh_principal_free(sh_principal_t *p);

#ifdef __cplusplus
}
#endif

#endif
