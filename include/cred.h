/* cred.h - sluiced's own Google credential toward BigQuery: the bearer token it puts on
 * every forwarded request in place of whatever the agent sent.
 *
 * Sources: a service-account key file (an RS256 JWT-bearer assertion, signed here, POSTed to
 * the key's token_uri), the GCE/GKE metadata server, or a token file written by something
 * else (re-read when it changes). A refresher thread per credential does the blocking
 * network work (verified TLS with SNI and host name check; the endpoint may be redirected
 * to another address and CA for tests) and refreshes the token before it expires; workers
 * only copy the cached token (cred_current), never block on the network.
 *
 * Key and token files must be accessible by their owner only (this user); their contents
 * are never logged, and no error message quotes them. */
#ifndef SLUICE_CRED_H
#define SLUICE_CRED_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#define CRED_DEFAULT_SCOPE "https://www.googleapis.com/auth/bigquery"
#define CRED_DEFAULT_METADATA_URL "http://169.254.169.254"
#define CRED_METADATA_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define CRED_DEFAULT_TIMEOUT_MS 10000
#define CRED_MAX_TOKEN 8192          /* bytes in an access token */
#define CRED_ASSERTION_LIFETIME 3600 /* seconds an assertion is valid (Google's maximum) */

enum cred_source { CRED_SERVICE_ACCOUNT, CRED_METADATA, CRED_TOKEN_FILE };

/* One credential's configuration (strings owned by whoever filled it). */
struct cred_conf {
	char *name;             /* for messages, e.g. "bigquery" (NULL: "default") */
	enum cred_source source;
	char *key_file;         /* CRED_SERVICE_ACCOUNT: service-account JSON key */
	char *scope;            /* CRED_SERVICE_ACCOUNT: space-separated; NULL: bigquery */
	char *metadata_url;     /* CRED_METADATA: "http://HOST[:PORT]"; NULL: the real one */
	char *token_file;       /* CRED_TOKEN_FILE: the token, or {"access_token", "expires_in"} */
	char *address;          /* override: connect to "IP:PORT" instead of the URL's host */
	char *ca_file;          /* override: CA bundle verifying the endpoint (NULL: system) */
	int timeout_ms;         /* per request (connect + exchange); 0: the default */
};

/* What a credential is doing, for status lines and tests. */
struct cred_status {
	long fetches;            /* tokens obtained */
	long failures;           /* failed attempts */
	long expires_in_ms;      /* of the cached token; <= 0: none valid */
	char last_error[256];    /* of the last failed attempt, "" after a success */
};

/* One credential and its refresher thread (opaque). */
struct cred;

/* Validate the credential object <obj> (NULL: the metadata server) of the JSON document
 * <text>/<len> read from <file> into <out> (zeroed first). <path> is the object's dotted
 * path ("credential") for error lines. Keys: source ("service_account", "metadata",
 * "token_file"; default from which file is given), key_file, scope, metadata_url,
 * token_file, override {address, ca_file}, timeout_ms. Returns 0, or -EINVAL with <err>
 * "FILE:LINE: KEY: what is wrong". */
int cred_conf_load(json_t *obj, const char *path, const char *file, const char *text,
		   size_t len, struct cred_conf *out, char *err, size_t errlen);

/* Free what cred_conf_load allocated; <c> may be partly filled. */
void cred_conf_free(struct cred_conf *c);

/* Build a credential from <conf> (copied): reads and checks the key file (owner-only mode,
 * a service-account key with client_email, private_key (RSA), token_uri over https) or the
 * token file. No thread yet. Returns NULL with <err>. */
struct cred *cred_new(const struct cred_conf *conf, char *err, size_t errlen);

/* Start the refresher thread; it fetches a first token at once. Returns 0 or -errno. */
int cred_start(struct cred *c, char *err, size_t errlen);

/* Re-read the key file (SIGHUP) and refresh now. A bad file is refused and the running key
 * and token stay. Returns 0 or -errno with <err>. */
int cred_reload(struct cred *c, char *err, size_t errlen);

/* Stop the thread (bounded by the request timeout) and free; NULL is fine. */
void cred_free(struct cred *c);

/* The current bearer token into <out> (NUL-terminated). Never blocks on the network.
 * Returns 0; -EAGAIN when no token was obtained yet (first fetch under way); -EIO when no
 * valid token is held (expired, or every attempt failed), with the reason in <err>;
 * -ENOSPC when <out> is too small. Thread-safe. */
int cred_current(struct cred *c, char *out, size_t outlen, char *err, size_t errlen);

/* Counters and the last error. Thread-safe. */
void cred_status(struct cred *c, struct cred_status *st);

/* The JWT-bearer assertion a service-account credential would POST at <now>: RS256 over
 * {"iss": client_email, "scope", "aud": token_uri, "iat", "exp": iat + 3600}, kid the key's
 * private_key_id. Returns its length, or -errno with <err>. */
int cred_sa_assertion(struct cred *c, time_t now, char *out, size_t outlen, char *err,
		      size_t errlen);

/* A blocking GET of <url> (http:// or https://, verified against <ca_file> or the system
 * store, SNI and host name checked), connecting to <address> "IP:PORT" when not NULL,
 * within <timeout_ms> (0: the default). For fetching an issuer's jwks_uri from a thread that
 * may block. On 0, *<status> and the malloc'd NUL-terminated body in *<body>. Returns 0 or
 * -errno with <err>. */
int cred_http_get(const char *url, const char *address, const char *ca_file, int timeout_ms,
		  int *status, char **body, char *err, size_t errlen);

#endif
