/* access.c - the identity step of a request: answer the agent's token exchanges, check its
 * sluice token, and put sluiced's own Google credential on what goes to BigQuery. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "cred.h"
#include "identity.h"
#include "loop.h"

#define ANSWER_MAX (IDENTITY_MAX_SLUICE_TOKEN + 8192)

static int host_is(const char *h, const char *name)
{
	return !strcasecmp(h, name);
}

static int ends_with(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && !strncasecmp(s + n - k, suf, k);
}

/* A BigQuery API host: global, legacy www, mTLS, bigquery.LOCATION.rep, Storage API. */
static int bigquery_host(const char *h)
{
	static const char pre[] = "bigquery.", suf[] = ".rep.googleapis.com";
	size_t n = strlen(h), i;

	if (host_is(h, "bigquery.googleapis.com") || host_is(h, "www.googleapis.com") ||
	    host_is(h, "bigquery.mtls.googleapis.com") ||
	    host_is(h, "bigquerystorage.googleapis.com") ||
	    host_is(h, "bigquerystorage.mtls.googleapis.com"))
		return 1;
	if (n <= sizeof(pre) - 1 + sizeof(suf) - 1 || strncasecmp(h, pre, sizeof(pre) - 1) ||
	    !ends_with(h, n, suf))
		return 0;
	for (i = sizeof(pre) - 1; i < n - (sizeof(suf) - 1); i++)
		if (h[i] == '.')
			return 0; /* one label for the location */
	return 1;
}

static void set_refuse(struct access_result *out, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_refuse(struct access_result *out, int status, const char *fmt, ...)
{
	va_list ap;

	out->action = ACCESS_REFUSE;
	out->status = status;
	switch (status) {
	case 401: out->status_name = "UNAUTHENTICATED"; out->reason = "authError"; break;
	case 403: out->status_name = "PERMISSION_DENIED"; out->reason = "accessDenied"; break;
	case 404: out->status_name = "NOT_FOUND"; out->reason = "notFound"; break;
	case 503: out->status_name = "UNAVAILABLE"; out->reason = "backendError"; break;
	case 500: out->status_name = "INTERNAL"; out->reason = "internalError"; break;
	default: out->status_name = "INVALID_ARGUMENT"; out->reason = "badRequest"; break;
	}
	va_start(ap, fmt);
	vsnprintf(out->message, sizeof(out->message), fmt, ap);
	va_end(ap);
}

/* FORWARD with the agent's own header (or none). */
static int forward_as_is(struct access_result *out, const char *authz)
{
	out->action = ACCESS_FORWARD;
	if (authz && strlen(authz) >= sizeof(out->authorization)) {
		set_refuse(out, 400, "sluice: the Authorization header is longer than %zu bytes",
			   sizeof(out->authorization) - 1);
		return out->action;
	}
	snprintf(out->authorization, sizeof(out->authorization), "%s", authz ? authz : "");
	return out->action;
}

/* Take the identity function's JSON answer. */
static int answer(struct access_result *out, char *json, int status)
{
	out->action = ACCESS_ANSWER;
	out->status = status ? status : 500;
	out->body = realloc(json, strlen(json) + 1) ?: json;
	return out->action;
}

static int sts(const struct loop_env *env, const char *method, const char *path,
	       const char *body, size_t body_len, uint64_t cgroup_id, time_t now,
	       struct access_result *out)
{
	char *json;
	int status = 0, rc;

	if (strcmp(path, "/v1/token") && strcmp(path, "/v1beta/token")) {
		set_refuse(out, 404, "sluice: %s is not an STS method sluice answers; the token "
			   "exchange is POST https://sts.googleapis.com/v1/token", path);
		return out->action;
	}
	if (strcmp(method, "POST")) {
		set_refuse(out, 405, "sluice: the STS token exchange is a POST");
		return out->action;
	}
	json = malloc(ANSWER_MAX);
	if (!json) {
		set_refuse(out, 500, "sluice: out of memory");
		return out->action;
	}
	json[0] = '\0';
	rc = identity_sts_exchange(env->identity, body ? body : "", body ? body_len : 0,
				   cgroup_id, now, json, ANSWER_MAX, &status);
	if (rc == -ENOSPC || !json[0]) {
		free(json);
		set_refuse(out, 500, "sluice: the token exchange answer did not fit");
		return out->action;
	}
	return answer(out, json, status);
}

static int iam(const struct loop_env *env, const char *method, const char *path,
	       const char *authz, const char *body, size_t body_len, uint64_t cgroup_id,
	       time_t now, struct access_result *out)
{
	static const char suf[] = ":generateAccessToken";
	size_t n = strlen(path);
	char *json;
	int status = 0, rc;

	if (n <= sizeof(suf) - 1 || strcmp(path + n - (sizeof(suf) - 1), suf) ||
	    strncmp(path, "/v1/projects/", 13)) {
		set_refuse(out, 403, "sluice: only IAM Credentials generateAccessToken is answered "
			   "for agents; %s is refused (agents do not sign blobs or JWTs, or mint ID "
			   "tokens, with a service account)", path);
		return out->action;
	}
	if (strcmp(method, "POST")) {
		set_refuse(out, 405, "sluice: generateAccessToken is a POST");
		return out->action;
	}
	json = malloc(ANSWER_MAX);
	if (!json) {
		set_refuse(out, 500, "sluice: out of memory");
		return out->action;
	}
	json[0] = '\0';
	rc = identity_iam_generate_access_token(env->identity, path, authz, body ? body : "",
						body ? body_len : 0, cgroup_id, now, json,
						ANSWER_MAX, &status);
	if (rc == -ENOSPC || !json[0]) {
		free(json);
		set_refuse(out, 500, "sluice: the generateAccessToken answer did not fit");
		return out->action;
	}
	return answer(out, json, status);
}

/* Google's OAuth endpoints, with identity on: the agent must not hold a Google credential.
 * A token grant is answered with an OAuth-shaped error (what OAuth clients show); anything
 * else there is refused. */
static int oauth2(const char *method, const char *path, struct access_result *out)
{
	size_t n = strlen(path);
	json_t *j;

	set_refuse(out, 403, "sluice: the agent should not hold a Google credential: give it an "
		   "external_account (workload identity) credential; sluice answers the token "
		   "exchange");
	if (strcmp(method, "POST") || !ends_with(path, n, "/token"))
		return out->action;
	j = json_pack("{s:s, s:s}", "error", "access_denied", "error_description", out->message);
	out->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (out->body)
		out->action = ACCESS_ANSWER;
	return out->action;
}

/* A BigQuery host: who is the agent (with identity), and which credential goes up. */
static int bigquery(const struct loop_env *env, const char *authz, uint64_t cgroup_id,
		    time_t now, struct access_result *out)
{
	char err[400] = "";
	int rc, i;

	if (env->identity) {
		rc = identity_check_bearer(env->identity, authz, cgroup_id, now, &out->claims, err,
					   sizeof(err));
		if (rc) {
			identity_claims_free(&out->claims);
			set_refuse(out, 401, "sluice: %s", err[0] ? err : "the bearer token was refused");
			return out->action;
		}
		for (i = 0; i < out->claims.n_groups && i < IDENTITY_MAX_GROUPS; i++)
			out->groups[out->n_groups++] = out->claims.groups[i];
		/* with several issuers, a "sub" is only unique within its issuer: approvals,
		 * windows and jobs key on the subject, so it names the issuer too */
		if (env->conf && env->conf->identity && env->conf->identity->n_issuers > 1 &&
		    out->claims.iss)
			snprintf(out->subject, sizeof(out->subject), "%s (%s)",
				 out->claims.sub ? out->claims.sub : "", out->claims.iss);
		else
			snprintf(out->subject, sizeof(out->subject), "%s",
				 out->claims.sub ? out->claims.sub : "");
	}
	if (!env->cred)
		return forward_as_is(out, authz);
	out->action = ACCESS_FORWARD;
	memcpy(out->authorization, "Bearer ", 7);
	rc = cred_current(env->cred, out->authorization + 7, sizeof(out->authorization) - 7, err,
			  sizeof(err));
	if (rc) {
		out->authorization[0] = '\0';
		set_refuse(out, 503, "sluice: sluiced has no valid Google credential right now: %s",
			   rc == -EAGAIN ? "the first token is still being fetched; retry in a few "
					   "seconds" :
			   rc == -ENOSPC ? "its token is too long" :
			   !strncmp(err, "sluice: ", 8) ? err + 8 : err[0] ? err : "no token");
		return out->action;
	}
	return out->action;
}

int access_request(const struct loop_env *env, const char *sni, const char *method,
		   const char *target, size_t target_len, const char *authz, const char *body,
		   size_t body_len, uint64_t cgroup_id, time_t now, struct access_result *out)
{
	char path[2048];
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!sni)
		sni = "";
	if (!method)
		method = "";
	/* the path without the query */
	for (n = 0; n < target_len && target[n] != '?' && target[n] != '#'; n++)
		;
	if (n >= sizeof(path)) {
		set_refuse(out, 414, "sluice: the request path is too long");
		return out->action;
	}
	memcpy(path, target, n);
	path[n] = '\0';

	if (host_is(sni, "sts.googleapis.com")) {
		if (!env->identity)
			return forward_as_is(out, authz);
		return sts(env, method, path, body, body_len, cgroup_id, now, out);
	}
	if (host_is(sni, "iamcredentials.googleapis.com")) {
		if (!env->identity)
			return forward_as_is(out, authz);
		return iam(env, method, path, authz, body, body_len, cgroup_id, now, out);
	}
	if (host_is(sni, "oauth2.googleapis.com") ||
	    (host_is(sni, "www.googleapis.com") && !strncmp(path, "/oauth2/", 8))) {
		if (!env->identity)
			return forward_as_is(out, authz);
		return oauth2(method, path, out);
	}
	if (bigquery_host(sni))
		return bigquery(env, authz, cgroup_id, now, out);
	return forward_as_is(out, authz);
}

void access_result_free(struct access_result *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	identity_claims_free(&r->claims);
	r->n_groups = 0;
}
