/* libstreamhub/core/jwt_int.h: access tokens (JWT, RFC 7519), issued and
 * verified under the rules of RFC 8725.
 *
 * One algorithm per server, chosen by the jwt-alg key: HS256 (HMAC-SHA-256
 * keyed by jwt-secret) or EdDSA (Ed25519, jwt-private-key/jwt-public-key).
 * A token is accepted only when its header names exactly that algorithm;
 * the header never selects a key (kid, jku, x5u are ignored, crit refused).
 * Every refusal is the same SH_EUNAUTHENTICATED, so a caller cannot leak
 * why a token failed; callers log nothing of the token.
 *
 * Threads: a key set is immutable once built; any thread may issue and
 * verify with it concurrently.  @locality any  @locks none
 */
#ifndef SH_CORE_JWT_INT_H
#define SH_CORE_JWT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_int.h"

/* Tokens longer than this are refused before any decoding. */
#define SH__JWT_MAX_LEN 8192

/* Role bits of sh__claims.roles (the "roles" claim, an array of names). */
#define SH__ROLE_VIEWER    1u
#define SH__ROLE_MODERATOR 2u
#define SH__ROLE_ADMIN     4u

/* The claims StreamHub puts in and reads from a token.  Strings are
 * NUL-terminated; a claim longer than its field is refused at verify and
 * at issue.  nbf 0 means absent.  Times are seconds since the Unix epoch. */
struct sh__claims {
    char sub[64];
    char username[64];
    unsigned roles;      /* SH__ROLE_* bits */
    int64_t iat, nbf, exp;
    char jti[64];
};

struct sh__jwt_keys;

/* Build the key set from @conf (jwt-alg, jwt-secret, jwt-private-key,
 * jwt-public-key, jwt-issuer, jwt-ttl-seconds, jwt-leeway-seconds).
 * An unset secret or key pair is generated at random and a warning is
 * logged through @log (may be NULL: no log); tokens then die with the
 * process.  Errors: SH_EINVAL (a key too short, bad base64, a public key
 * that does not match the private key; @errbuf names the config key),
 * SH_ENOMEM.  On error *@out is NULL.
 * Ownership: @conf and @log borrowed for the call; *@out is the caller's,
 * released by sh__jwt_keys_free(). */
sh_err_t sh__jwt_keys_new(const sh_config_t *conf, const struct sh__log *log,
                          struct sh__jwt_keys **out,
                          char *errbuf, size_t errbuf_len);
/* Wipe and free; NULL is a no-op. */
void sh__jwt_keys_free(struct sh__jwt_keys *k);

/* Sign @c (sub, username, roles, iat, exp, nbf when non-zero) with a fresh
 * random jti and the configured iss; @c->jti is ignored.  iat 0 means now
 * (wall clock); exp 0 means iat + jwt-ttl-seconds.  Errors: SH_EINVAL (k,
 * c or token_out NULL, empty sub, a string not valid UTF-8 or not
 * terminated inside its field, unknown role bits, a time negative or past
 * 2^53), SH_ENOTSUP (EdDSA with only jwt-public-key: a verify-only node),
 * SH_ENOMEM.  On error *@token_out is NULL.
 * Ownership: *@token_out is malloc'd, NUL-terminated, the caller frees it
 * with free(). */
sh_err_t sh__jwt_issue(const struct sh__jwt_keys *k, const struct sh__claims *c,
                       char **token_out);

/* Check @token (@len bytes, need not be terminated) at time @now_s:
 * structure, algorithm, signature, then exp/nbf (within jwt-leeway-seconds),
 * iat not in the future, iss equal to jwt-issuer when present.  Returns
 * SH_OK and fills @out, or SH_EUNAUTHENTICATED for any failure whatever
 * (then @out is zeroed).
 * Ownership: all borrowed for the call. */
sh_err_t sh__jwt_verify(const struct sh__jwt_keys *k, const char *token,
                        size_t len, int64_t now_s, struct sh__claims *out);

/* The lifetime of issued tokens in seconds (jwt-ttl-seconds). */
int64_t sh__jwt_ttl(const struct sh__jwt_keys *k);

#endif
