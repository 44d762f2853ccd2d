/* identity.h - who an agent is, without it ever holding a Google credential.
 *
 * An agent proves who it is with a short-lived OIDC JWT from a configured issuer (verified
 * here: keys from a JWKS, per-issuer algorithm allowlist of RS256/ES256, iss, aud, exp, nbf,
 * iat with a small leeway; RFC 8725: no "none", no HS*, kid by exact match only, embedded
 * jwk/jku/x5u/x5c headers ignored, "crit" refused). sluiced answers the agent's Google STS
 * token exchange and IAM generateAccessToken calls itself with a "sluice token": an opaque
 * HMAC-SHA256 bearer bound to the verified identity and to the agent's cgroup, which
 * sluiced checks on every request before swapping in its own Google credential.
 *
 * Thread safety: after identity_new, every function may be called from any thread; the
 * JWKS caches are guarded internally. Nothing here opens a socket: fetching a remote JWKS is
 * the job of the fetch callback (identity_set_fetch) or of the caller (identity_jwks_set). */
#ifndef SLUICE_IDENTITY_H
#define SLUICE_IDENTITY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define IDENTITY_MAX_TOKEN (16 * 1024)   /* bytes in a subject JWT (larger: refused) */
#define IDENTITY_MAX_SLUICE_TOKEN (32 * 1024) /* bytes a sluice token may take */
#define IDENTITY_MAX_ISSUERS 16
#define IDENTITY_MAX_KEYS 32             /* keys kept per issuer */
#define IDENTITY_MAX_GROUPS 64           /* groups taken from a token (more: refused) */
#define IDENTITY_MAX_FORM (64 * 1024)    /* bytes in an STS request body */
#define IDENTITY_DEFAULT_LEEWAY 60       /* seconds of clock skew allowed on exp/nbf/iat */
#define IDENTITY_DEFAULT_TTL 3600        /* seconds a sluice token lives at most */
#define IDENTITY_DEFAULT_REFRESH 60      /* seconds between two JWKS refreshes of an issuer */

#define IDENTITY_ALG_RS256 1u
#define IDENTITY_ALG_ES256 2u

/* One trusted OIDC issuer (strings owned by the enclosing identity_conf). */
struct identity_issuer {
	char *issuer;        /* exact "iss" value */
	char *audience;      /* required in "aud" (string, or one element of an array) */
	char *jwks_file;     /* JWKS read at start and re-read when its mtime changes */
	char *jwks_uri;      /* JWKS fetched by the fetch callback (may be NULL) */
	unsigned algs;       /* IDENTITY_ALG_* allowed; 0 means RS256|ES256 */
	char *groups_claim;  /* claim holding the groups (string or string array); NULL: none */
	int leeway_s;        /* clock skew allowed, seconds */
};

/* The "identity" section of the configuration. */
struct identity_conf {
	struct identity_issuer issuers[IDENTITY_MAX_ISSUERS];
	int n_issuers;
	int token_ttl_s;          /* sluice token lifetime (also capped by the subject token) */
	int refresh_interval_s;   /* minimum seconds between JWKS refreshes per issuer */
	char *hmac_key_file;      /* NULL: a fresh random key per start (tokens die on restart) */
	char *sts_audience;       /* NULL: any STS "audience"; else it must be equal */
	int allow_oidc_bearer;    /* identity_check_bearer accepts a verified OIDC JWT too */
};

/* Who a verified token says the agent is. Strings, groups and <claims> are borrowed from
 * <own> and live until identity_claims_free. */
struct identity_claims {
	const char *sub;
	const char *iss;
	const char *groups[IDENTITY_MAX_GROUPS];
	int n_groups;
	time_t exp;
	uint64_t cgroup_id;      /* sluice tokens: the cgroup it is bound to; 0 for OIDC JWTs */
	const char *service_account; /* sluice tokens from generateAccessToken, else NULL */
	json_t *claims;          /* every claim of the subject JWT, for policy matching */
	json_t *own;             /* internal: the document everything above points into */
};

/* Fetch the JWKS of <iss> (its jwks_uri) for identity_verify_jwt on an unknown kid.
 * Return 0 with a malloc'd document in *<json> and *<len> (taken over), -EINPROGRESS when the
 * fetch was started elsewhere (deliver it later with identity_jwks_set), or -errno with a
 * message in <err>. Called with no lock held, at most once per refresh interval. */
typedef int (*identity_fetch_fn)(void *arg, const struct identity_issuer *iss, char **json,
				 size_t *len, char *err, size_t errlen);

/* The verifier: configuration, JWKS caches and the token key (opaque). */
struct identity;

/* Validate the "identity" object <obj> (NULL: the defaults, no issuer) of the JSON document
 * <text>/<len> read from <file>, into <out> (zeroed first). <path> is the object's dotted
 * path in the document ("identity"), for error lines. Returns 0, or -EINVAL with <err> of
 * the form "FILE:LINE: KEY: what is wrong". */
int identity_conf_load(json_t *obj, const char *path, const char *file, const char *text,
		       size_t len, struct identity_conf *out, char *err, size_t errlen);

/* Free what identity_conf_load allocated; <c> may be partly filled. */
void identity_conf_free(struct identity_conf *c);

/* Build the verifier from <conf> (copied): loads every jwks_file (a missing or invalid file
 * is an error), and the HMAC key from hmac_key_file (created 0600 with 32 random bytes when
 * absent; refused when group/other can access it) or fresh random bytes. Returns NULL with
 * <err>. */
struct identity *identity_new(const struct identity_conf *conf, char *err, size_t errlen);

/* Free; NULL is fine. */
void identity_free(struct identity *id);

/* Plug in the remote JWKS fetch used on an unknown kid for issuers with a jwks_uri. */
void identity_set_fetch(struct identity *id, identity_fetch_fn fn, void *arg);

/* Replace the cached JWKS of issuer <issuer> with <json>/<len>. A document without a usable
 * key is refused and the cache kept. Returns 0, -ENOENT (no such issuer) or -EINVAL, with
 * <err>. */
int identity_jwks_set(struct identity *id, const char *issuer, const char *json, size_t len,
		      char *err, size_t errlen);

/* Number of keys cached for <issuer> (-1: unknown issuer). For tests and status. */
int identity_jwks_count(const struct identity *id, const char *issuer);

/* Verify the OIDC JWT <token>/<len> (compact JWS) at time <now>. Returns 0 with <out>
 * filled (identity_claims_free it), or -EINVAL (malformed), -EPERM (refused: algorithm,
 * signature, issuer, audience, time), -ENOKEY (no key with that kid, after a refresh
 * attempt), -E2BIG (too large), with a reason in <err> that never quotes the signature. */
int identity_verify_jwt(const struct identity *id, const char *token, size_t len, time_t now,
			struct identity_claims *out, char *err, size_t errlen);

/* Release what a verification or check put in <c>; a zeroed <c> is fine. */
void identity_claims_free(struct identity_claims *c);

/* Issue a sluice token for <who> bound to <cgroup_id>, valid until min(now + ttl_s,
 * who->exp when non-zero): "sluice1.<base64url(payload)>.<base64url(HMAC-SHA256)>", with
 * payload {sub, iss, groups, cg, iat, exp, claims[, sa]}. <sa> (may be NULL) names the
 * service account of a generateAccessToken. Returns the length written to <out>, or -ENOSPC
 * / -EINVAL. */
int identity_issue_token(const struct identity *id, const struct identity_claims *who,
			 uint64_t cgroup_id, int ttl_s, const char *sa, time_t now, char *out,
			 size_t outlen);

/* Check the sluice token <token>/<len> presented from <cgroup_id> at <now>. Returns 0 with
 * <out> filled, or -EINVAL (not a sluice token / malformed), -EPERM (forged or tampered;
 * issued to another cgroup), -ETIMEDOUT (expired), with a reason in <err>. */
int identity_check_token(const struct identity *id, const char *token, size_t len,
			 uint64_t cgroup_id, time_t now, struct identity_claims *out, char *err,
			 size_t errlen);

/* The agent's Authorization header value <authz> ("Bearer X"): a sluice token (or, with
 * allow_oidc_bearer, a verified OIDC JWT). A Google credential is refused with "the agent
 * should not hold Google credentials". Returns 0 with <out>, or -errno with <err>. */
int identity_check_bearer(const struct identity *id, const char *authz, uint64_t cgroup_id,
			  time_t now, struct identity_claims *out, char *err, size_t errlen);

/* Does <token>/<len> look like a real Google credential: an OAuth access token ("ya29."),
 * a refresh token ("1//"), an API key ("AIza") or a Google-issued ID token? 1 or 0. */
int identity_is_google_token(const char *token, size_t len);

/* Google STS (POST https://sts.googleapis.com/v1/token, form-urlencoded <body>/<len>),
 * answered by sluiced: token-exchange of a subject JWT (subject_token_type jwt or id_token)
 * for a sluice token bound to <cgroup_id>. Writes the JSON response to <json_out> and the
 * status to *<http_status>: 200 {"access_token", "issued_token_type", "token_type",
 * "expires_in"}, or 400/401 {"error", "error_description"} (OAuth). Returns 0 when a token
 * was issued, -errno otherwise (the response is written either way, unless -ENOSPC). */
int identity_sts_exchange(const struct identity *id, const char *body, size_t len,
			  uint64_t cgroup_id, time_t now, char *json_out, size_t outlen,
			  int *http_status);

/* IAM Credentials generateAccessToken (POST .../v1/projects/-/serviceAccounts/SA:
 * generateAccessToken, <path> without the query), authorized by the sluice token in
 * <authz> ("Bearer ..."), JSON <body>/<len> {"scope": [...], "lifetime": "Ns"}: a new
 * sluice token for the same identity and cgroup, never outliving the presented one.
 * 200 {"accessToken", "expireTime": RFC 3339}, or a Google error {"error": {"code",
 * "message", "status"}} (400/401/404). Returns 0 when a token was issued, -errno otherwise. */
int identity_iam_generate_access_token(const struct identity *id, const char *path,
				       const char *authz, const char *body, size_t len,
				       uint64_t cgroup_id, time_t now, char *json_out,
				       size_t outlen, int *http_status);

/* base64url without padding (shared with cred.c). Returns the length written (NUL
 * terminated), or -ENOSPC. */
int identity_b64url_encode(const void *in, size_t len, char *out, size_t outlen);

/* Decode base64url (no padding, strict alphabet). Returns the decoded length, -EINVAL for
 * bad input, -ENOSPC when <out> is too small. */
int identity_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

#endif
