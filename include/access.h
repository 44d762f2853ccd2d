/* access.h - who may send what upstream, and with which credential: the identity step of
 * every request on an intercepted host, decided before the gate (API model, SQL, policy).
 *
 * Pure: given the environment (identity verifier, sluiced's Google credential), the request
 * line, its Authorization header and body, the agent's cgroup id and the time, it says
 *   ANSWER  sluiced answers the request itself (Google STS token exchange, IAM Credentials
 *           generateAccessToken): status + JSON body, nothing goes upstream;
 *   REFUSE  a BigQuery-shaped error (status, status_name, reason, message);
 *   FORWARD go on to the gate, sending <authorization> upstream in place of the agent's
 *           header ("" = send none), with the identity's groups for the policy.
 * No socket, no blocking call: cred_current() only copies the cached token.
 *
 * Rules (host = the TLS SNI):
 *   sts.googleapis.com             POST /v1/token (or /v1beta/token): ANSWER the exchange;
 *                                  any other path: REFUSE 404. Without identity: FORWARD as is.
 *   iamcredentials.googleapis.com  POST .../serviceAccounts/SA:generateAccessToken: ANSWER;
 *                                  any other method: REFUSE 403. Without identity: FORWARD.
 *   oauth2.googleapis.com, and www.googleapis.com/oauth2/...: with identity the agent must
 *                                  not hold a Google credential: a token grant (POST .../token)
 *                                  is ANSWERed 403 with an OAuth error {"error": "access_denied",
 *                                  "error_description"} (what OAuth clients show; <message>
 *                                  holds the same text), anything else REFUSE 403. Without
 *                                  identity: FORWARD as is.
 *   BigQuery hosts (bigquery[.mtls|.LOC.rep].googleapis.com, www.googleapis.com,
 *   bigquerystorage[.mtls].googleapis.com): with identity the bearer must be a sluice token
 *                                  for this cgroup (else REFUSE 401 with the reason); then
 *                                  with a credential "Bearer <sluiced's token>" (none valid:
 *                                  REFUSE 503), without one the agent's header as it was.
 *   anything else                  FORWARD, the agent's header as it was. */
#ifndef SLUICE_ACCESS_H
#define SLUICE_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "identity.h"

struct loop_env;

enum access_action { ACCESS_FORWARD, ACCESS_ANSWER, ACCESS_REFUSE };

struct access_result {
	enum access_action action;
	int status;                 /* ANSWER/REFUSE: HTTP status */
	char *body;                 /* ANSWER: JSON to send the agent (malloc'd); REFUSE: NULL */
	char message[512];          /* REFUSE (and oauth2 ANSWERs): error message (why, what
				     * to do) */
	const char *status_name;    /* REFUSE: Google status ("UNAUTHENTICATED", ...) */
	const char *reason;         /* REFUSE: Google error reason ("authError", ...) */
	char authorization[4096];   /* FORWARD: the Authorization header value to send upstream
				     * ("" = drop); always set, also when unchanged */
	const char *groups[IDENTITY_MAX_GROUPS]; /* FORWARD: identity groups for the policy */
	int n_groups;
	char subject[256];          /* FORWARD: who (for recordings/approvals); "" if unknown */
	struct identity_claims claims; /* keep alive until access_result_free */
};

/* Decide one request (see the rules above) into <out> (zeroed first; free it with
 * access_result_free whatever the outcome). <sni> is the TLS server name, <target> the raw
 * request target (path and query), <authorization> the agent's header value (NULL if absent),
 * <body> the complete request body (de-chunked). Returns out->action. */
int access_request(const struct loop_env *env, const char *sni, const char *method,
		   const char *target, size_t target_len, const char *authorization,
		   const char *body, size_t body_len, uint64_t cgroup_id, time_t now,
		   struct access_result *out);

/* Free the answer body and the claims; <r> may be zeroed. */
void access_result_free(struct access_result *r);

#endif
