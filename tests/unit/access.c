/* Description: the identity step of every request (access.c) with a real identity (an RSA
 * issuer key and JWKS made here) and a token-file credential: STS and generateAccessToken
 * answered and never forwarded, other token endpoints refused with identity and relayed
 * without, BigQuery requests accepted only with a sluice token of the same cgroup (groups and
 * subject from it) and sent up with sluiced's credential, Google tokens and other
 * containers' tokens refused, no credential -> 503; the configuration's identity and
 * credential sections with FILE:LINE errors. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <time.h>

#include "access.h"
#include "conf.h"
#include "cred.h"
#include "identity.h"
#include "loop.h"
#include "tap.h"

#define ISS "https://issuer.test"
#define AUD "sluice-test"
#define CG 4242

static char dir[] = "/tmp/sluice-access-test-XXXXXX";
static char jwks_path[256], tokfile[256], conf_path[256];
static EVP_PKEY *rsa;
static time_t now;

static void b64(const void *in, size_t len, char *out, size_t outlen)
{
	identity_b64url_encode(in, len, out, outlen);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void write_jwks(void)
{
	unsigned char buf[1024];
	char n_s[1500], e_s[64], doc[2000];
	BIGNUM *n = NULL, *e = NULL;

	EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n);
	EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &e);
	b64(buf, (size_t)BN_bn2bin(n, buf), n_s, sizeof(n_s));
	b64(buf, (size_t)BN_bn2bin(e, buf), e_s, sizeof(e_s));
	BN_free(n);
	BN_free(e);
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\",\"use\":\"sig\","
		 "\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"}]}", n_s, e_s);
	write_file(jwks_path, doc, 0644);
}

/* An RS256 OIDC token of the test issuer for <sub> in <groups> (JSON array text). */
static const char *oidc(const char *sub, const char *groups)
{
	static char tok[8192];
	char payload[1024];
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md;
	int n;

	snprintf(payload, sizeof(payload), "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":"
		 "\"%s\",\"exp\":%ld,\"iat\":%ld,\"groups\":%s}", sub, (long)now + 600,
		 (long)now - 5, groups);
	b64("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", 38, tok, sizeof(tok));
	n = (int)strlen(tok);
	tok[n++] = '.';
	b64(payload, strlen(payload), tok + n, sizeof(tok) - (size_t)n);
	n = (int)strlen(tok);
	md = EVP_MD_CTX_new();
	EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, rsa);
	EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok, (size_t)n);
	EVP_MD_CTX_free(md);
	tok[n++] = '.';
	b64(sig, siglen, tok + n, sizeof(tok) - (size_t)n);
	return tok;
}

static int req(const struct loop_env *env, const char *host, const char *method,
	       const char *target, const char *authz, const char *body, uint64_t cg,
	       struct access_result *r)
{
	access_result_free(r);
	return access_request(env, host, method, target, strlen(target), authz, body,
			      body ? strlen(body) : 0, cg, now, r);
}

static const char *sts_body(const char *jwt)
{
	static char body[10000];

	snprintf(body, sizeof(body),
		 "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Atoken-exchange"
		 "&audience=%%2F%%2Fiam.googleapis.com%%2Fprojects%%2F1%%2Flocations%%2Fglobal"
		 "%%2FworkloadIdentityPools%%2Fp%%2Fproviders%%2Fq"
		 "&scope=https%%3A%%2F%%2Fwww.googleapis.com%%2Fauth%%2Fcloud-platform"
		 "&requested_token_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Atoken-type%%3Aaccess_token"
		 "&subject_token=%s"
		 "&subject_token_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Atoken-type%%3Ajwt", jwt);
	return body;
}

/* Without identity or credential: today's behaviour, everything relayed as it is. */
static void plain(void)
{
	struct loop_env env = { 0 };
	struct access_result r = { 0 };

	is_int(req(&env, "bigquery.googleapis.com", "POST", "/bigquery/v2/projects/p/queries",
		   "Bearer agent-token", "{}", CG, &r), ACCESS_FORWARD,
	       "no identity: a BigQuery request is forwarded");
	is_str(r.authorization, "Bearer agent-token", "... with the agent's header unchecked");
	ok(r.n_groups == 0 && !r.subject[0], "... no identity groups or subject");
	is_int(req(&env, "oauth2.googleapis.com", "POST", "/token", NULL, "grant_type=x", CG, &r),
	       ACCESS_FORWARD, "no identity: an oauth2 token grant is forwarded unchanged");
	is_str(r.authorization, "", "... with no Authorization when it had none");
	is_int(req(&env, "sts.googleapis.com", "POST", "/v1/token", NULL, "a=b", CG, &r),
	       ACCESS_FORWARD, "no identity: STS is forwarded (nothing can answer it)");
	is_int(req(&env, "iamcredentials.googleapis.com", "POST",
		   "/v1/projects/-/serviceAccounts/a@b:generateAccessToken", "Bearer t", "{}", CG,
		   &r), ACCESS_FORWARD, "no identity: IAM Credentials is forwarded");
	access_result_free(&r);
}

static void with_identity(struct identity *id, struct cred *cred)
{
	struct loop_env env = { .identity = id, .cred = cred };
	struct access_result r = { 0 };
	char authz[IDENTITY_MAX_SLUICE_TOKEN + 16], tok2[IDENTITY_MAX_SLUICE_TOKEN + 16];
	json_t *j;

	/* STS: answered, a sluice token for this cgroup */
	is_int(req(&env, "sts.googleapis.com", "POST", "/v1/token", NULL,
		   sts_body(oidc("alice", "[\"analysts\"]")), CG, &r), ACCESS_ANSWER,
	       "STS token exchange is answered by sluiced");
	is_int(r.status, 200, "... 200 (%s)", r.body ? r.body : "");
	j = json_loads(r.body ? r.body : "", 0, NULL);
	ok(!strncmp(json_string_value(json_object_get(j, "access_token")) ?: "", "sluice1.", 8),
	   "... with a sluice token");
	snprintf(authz, sizeof(authz), "Bearer %s",
		 json_string_value(json_object_get(j, "access_token")) ?: "");
	json_decref(j);
	is_int(req(&env, "STS.googleapis.com", "POST", "/v1/token?x=1", NULL,
		   sts_body("not-a-jwt"), CG, &r), ACCESS_ANSWER,
	       "a bad subject token is answered too (host case and query ignored)");
	ok(r.status == 400 && r.body && strstr(r.body, "\"error\""),
	   "... with an OAuth error, status %d (%s)", r.status, r.body ? r.body : "");
	is_int(req(&env, "sts.googleapis.com", "POST", "/v1/introspect", NULL, "", CG, &r),
	       ACCESS_REFUSE, "another STS path is refused");
	ok(r.status == 404 && !r.body && strstr(r.message, "/v1/token"),
	   "... 404 naming the one answered (%s)", r.message);
	is_int(req(&env, "sts.googleapis.com", "GET", "/v1/token", NULL, NULL, CG, &r),
	       ACCESS_REFUSE, "a GET of the STS token endpoint is refused");

	/* IAM Credentials */
	is_int(req(&env, "iamcredentials.googleapis.com", "POST",
		   "/v1/projects/-/serviceAccounts/bq%40demo.iam.gserviceaccount.com:"
		   "generateAccessToken", authz,
		   "{\"scope\":[\"https://www.googleapis.com/auth/bigquery\"]}", CG, &r),
	       ACCESS_ANSWER, "generateAccessToken is answered by sluiced");
	is_int(r.status, 200, "... 200 (%s)", r.body ? r.body : "");
	j = json_loads(r.body ? r.body : "", 0, NULL);
	snprintf(tok2, sizeof(tok2), "Bearer %s",
		 json_string_value(json_object_get(j, "accessToken")) ?: "");
	json_decref(j);
	ok(!strncmp(tok2, "Bearer sluice1.", 15), "... with a sluice token");
	is_int(req(&env, "iamcredentials.googleapis.com", "POST",
		   "/v1/projects/-/serviceAccounts/a@b:generateAccessToken", authz,
		   "{\"scope\":[\"s\"]}", CG + 1, &r), ACCESS_ANSWER,
	       "generateAccessToken from another cgroup is answered ...");
	is_int(r.status, 403, "... with 403 (%s)", r.body ? r.body : "");
	is_int(req(&env, "iamcredentials.googleapis.com", "POST",
		   "/v1/projects/-/serviceAccounts/a@b:signBlob", authz, "{}", CG, &r),
	       ACCESS_REFUSE, "signBlob is refused");
	ok(r.status == 403 && strstr(r.message, "signBlob"), "... 403 naming it (%s)", r.message);
	is_int(req(&env, "iamcredentials.googleapis.com", "POST",
		   "/v1/projects/-/serviceAccounts/a@b:generateIdToken", authz, "{}", CG, &r),
	       ACCESS_REFUSE, "generateIdToken is refused");

	/* Google's own token endpoints: the agent must not hold a Google credential */
	is_int(req(&env, "oauth2.googleapis.com", "POST", "/token", NULL,
		   "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x",
		   CG, &r), ACCESS_ANSWER, "an oauth2 JWT-bearer grant is answered with identity ...");
	ok(r.status == 403 && strstr(r.message, "should not hold a Google credential") &&
		   strstr(r.message, "external_account"),
	   "... 403 saying what to give the agent instead (%s)", r.message);
	j = json_loads(r.body ? r.body : "", 0, NULL);
	ok(!strcmp(json_string_value(json_object_get(j, "error")) ?: "", "access_denied") &&
		   !strcmp(json_string_value(json_object_get(j, "error_description")) ?: "",
			   r.message),
	   "... as an OAuth error an OAuth client shows (%s)", r.body ? r.body : "");
	json_decref(j);
	is_int(req(&env, "www.googleapis.com", "POST", "/oauth2/v4/token", NULL, "x=y", CG, &r),
	       ACCESS_ANSWER, "the legacy www.googleapis.com/oauth2/v4/token too");
	is_int(r.status, 403, "... 403");
	is_int(req(&env, "oauth2.googleapis.com", "GET", "/tokeninfo?access_token=x", NULL, NULL,
		   CG, &r), ACCESS_REFUSE, "other oauth2 calls are refused with identity");
	ok(r.status == 403 && !r.body && strstr(r.message, "should not hold"), "... 403 (%s)",
	   r.message);

	/* BigQuery: a sluice token of this cgroup, sent up as sluiced's credential */
	is_int(req(&env, "bigquery.googleapis.com", "POST", "/bigquery/v2/projects/p/queries",
		   authz, "{}", CG, &r), ACCESS_FORWARD,
	       "BigQuery with the agent's sluice token is forwarded");
	is_str(r.authorization, "Bearer sluiced-own-token",
	       "... with sluiced's credential in place of the agent's");
	ok(r.n_groups == 1 && !strcmp(r.groups[0], "analysts"), "... the OIDC groups for the policy");
	is_str(r.subject, "alice", "... and the subject");
	is_int(req(&env, "bigquery.europe-west1.rep.googleapis.com", "GET",
		   "/bigquery/v2/projects/p/datasets", tok2, NULL, CG, &r), ACCESS_FORWARD,
	       "a regional host with the generateAccessToken token is forwarded");
	is_str(r.authorization, "Bearer sluiced-own-token", "... with sluiced's credential");
	is_int(req(&env, "bigquery.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets",
		   authz, NULL, CG + 1, &r), ACCESS_REFUSE,
	       "a sluice token copied to another container is refused");
	ok(r.status == 401 && strstr(r.message, "another container") && !r.authorization[0],
	   "... 401 saying so (%s)", r.message);
	is_int(req(&env, "bigquery.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets",
		   "Bearer ya29.a0AfH6SMBx", NULL, CG, &r), ACCESS_REFUSE,
	       "a Google access token is refused");
	ok(r.status == 401 && strstr(r.message, "should not hold Google credentials") &&
		   !strcmp(r.status_name, "UNAUTHENTICATED"),
	   "... 401 UNAUTHENTICATED: the agent should not hold Google credentials (%s)", r.message);
	is_int(req(&env, "www.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets", NULL,
		   NULL, CG, &r), ACCESS_REFUSE, "no Authorization on the legacy host: refused");
	ok(r.status == 401 && strstr(r.message, "STS"), "... 401 saying how to get one (%s)",
	   r.message);
	is_int(req(&env, "bigquery.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets",
		   "Bearer something-else", NULL, CG, &r), ACCESS_REFUSE,
	       "a bearer that is not a sluice token is refused");
	is_int(r.status, 401, "... 401 (%s)", r.message);
	authz[strlen(authz) - 3] ^= 1;
	is_int(req(&env, "bigquery.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets",
		   authz, NULL, CG, &r), ACCESS_REFUSE, "a tampered sluice token is refused");
	authz[strlen(authz) - 3] ^= 1;

	/* Not a Google API sluice models: relayed as it is */
	is_int(req(&env, "storage.googleapis.com", "GET", "/b/x/o", "Bearer abc", NULL, CG, &r),
	       ACCESS_FORWARD, "another intercepted host is forwarded unchanged");
	is_str(r.authorization, "Bearer abc", "... with the agent's header");

	/* identity without credential: the checked header goes up as it is */
	env.cred = NULL;
	is_int(req(&env, "bigquery.googleapis.com", "POST", "/bigquery/v2/projects/p/queries",
		   authz, "{}", CG, &r), ACCESS_FORWARD, "identity without credential: forwarded");
	is_str(r.authorization, authz, "... with the agent's (checked) header");
	access_result_free(&r);
	access_result_free(&r); /* twice is fine */
}

/* A credential with no valid token: 503 saying why. */
static void no_credential(struct identity *id)
{
	struct cred_conf cc = { .name = "bigquery", .source = CRED_TOKEN_FILE, .token_file = tokfile };
	struct loop_env env = { 0 };
	struct access_result r = { 0 };
	char err[512];
	struct cred *c = cred_new(&cc, err, sizeof(err));

	env.cred = c;
	if (!ok(c != NULL, "a token-file credential (%s)", c ? "" : err))
		return;
	is_int(req(&env, "bigquery.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets",
		   "Bearer x", NULL, CG, &r), ACCESS_REFUSE,
	       "a credential without a token yet: refused");
	ok(r.status == 503 && strstr(r.message, "sluiced has no valid Google credential right "
					  "now: ") && strstr(r.message, "retry"),
	   "... 503 saying so (%s)", r.message);
	/* the file disappears: the thread's first read fails */
	unlink(tokfile);
	cred_start(c, err, sizeof(err));
	for (int i = 0; i < 100; i++) {
		req(&env, "bigquery.googleapis.com", "GET", "/bigquery/v2/projects/p/datasets",
		    "Bearer x", NULL, CG, &r);
		if (r.status == 503 && strstr(r.message, tokfile))
			break;
		usleep(50000);
	}
	ok(r.action == ACCESS_REFUSE && r.status == 503 && strstr(r.message, tokfile),
	   "a credential that cannot be read: 503 with the reason (%s)", r.message);
	access_result_free(&r);
	cred_free(c);
	write_file(tokfile, "sluiced-own-token\n", 0600);
	(void)id;
}

static int conf_text(const char *text, struct sluice_conf *c, char *err, size_t errlen)
{
	write_file(conf_path, text, 0644);
	conf_free(c);
	err[0] = '\0';
	return conf_load(conf_path, c, err, errlen);
}

static void config(void)
{
	struct sluice_conf c = { 0 };
	char err[512], text[2048], want[400];

	is_int(conf_text("{}", &c, err, sizeof(err)), 0, "no identity or credential section");
	ok(!c.identity && !c.cred, "... both NULL (%s)", err);
	snprintf(text, sizeof(text),
		 "{\n\"identity\": {\"issuers\": [{\"issuer\": \"" ISS "\", \"audience\": \"" AUD
		 "\",\n  \"jwks_file\": \"%s\", \"groups_claim\": \"groups\"}],\n"
		 "  \"token_ttl_s\": 900},\n"
		 "\"credential\": {\"source\": \"token_file\", \"token_file\": \"%s\"}\n}",
		 jwks_path, tokfile);
	is_int(conf_text(text, &c, err, sizeof(err)), 0, "identity and credential sections load (%s)",
	       err);
	ok(c.identity && c.identity->n_issuers == 1 && c.identity->token_ttl_s == 900 &&
		   !strcmp(c.identity->issuers[0].groups_claim, "groups"),
	   "... the identity section");
	ok(c.cred && c.cred->source == CRED_TOKEN_FILE && !strcmp(c.cred->token_file, tokfile) &&
		   c.cred->name && !strcmp(c.cred->name, "bigquery"),
	   "... the credential section");
	is_int(conf_text("{\n\"workers\": 1,\n\"identity\": {\"issuers\": [{\"issuer\": \"x\", "
			 "\"audience\": \"y\",\n \"jwks_file\": \"/f\", \"algs\": [\"HS256\"]}]}}",
			 &c, err, sizeof(err)), -1, "HS256 in an issuer is refused");
	snprintf(want, sizeof(want), "%s:4: identity.issuers[0].algs: ", conf_path);
	ok(!strncmp(err, want, strlen(want)), "... with FILE:LINE: KEY (%s)", err);
	is_int(conf_text("{\n\n\"identity\": {}}", &c, err, sizeof(err)), -1,
	       "an identity section without issuers is refused");
	snprintf(want, sizeof(want), "%s:3: identity: ", conf_path);
	ok(!strncmp(err, want, strlen(want)) && strstr(err, "issuers"), "... saying so (%s)", err);
	is_int(conf_text("{\"workers\": 1,\n\"credential\": {\"source\": \"magic\"}}", &c, err,
			 sizeof(err)), -1, "an unknown credential source is refused");
	snprintf(want, sizeof(want), "%s:2: credential.source: ", conf_path);
	ok(!strncmp(err, want, strlen(want)), "... with FILE:LINE: KEY (%s)", err);
	is_int(conf_text("{\"credential\": {\"source\": \"service_account\"}}", &c, err,
			 sizeof(err)), -1, "service_account without key_file is refused");
	is_int(conf_text("{\"workers\": \"x\", \"credential\": {\"source\": \"magic\"}}", &c, err,
			 sizeof(err)), -1, "two errors ...");
	ok(strstr(err, "workers") && !strstr(err, "credential"), "... the first is reported (%s)",
	   err);
	conf_free(&c);
}

int main(void)
{
	struct identity_conf ic = { 0 };
	struct cred_conf cc = { .name = "bigquery", .source = CRED_TOKEN_FILE };
	struct identity *id;
	struct cred *cred;
	char err[512], tok[256];
	int i;

	now = time(NULL);
	if (!mkdtemp(dir))
		tap_skip_all("no temporary directory");
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/token", dir);
	snprintf(conf_path, sizeof(conf_path), "%s/sluice.json", dir);
	rsa = EVP_RSA_gen(2048);
	write_jwks();
	write_file(tokfile, "sluiced-own-token\n", 0600);

	ic.n_issuers = 1;
	ic.issuers[0] = (struct identity_issuer){ .issuer = ISS, .audience = AUD,
						  .jwks_file = jwks_path, .groups_claim = "groups",
						  .leeway_s = 60 };
	ic.token_ttl_s = 3600;
	ic.refresh_interval_s = 60;
	id = identity_new(&ic, err, sizeof(err));
	ok(id != NULL, "identity (%s)", id ? "" : err);
	cc.token_file = tokfile;
	cred = cred_new(&cc, err, sizeof(err));
	ok(cred && !cred_start(cred, err, sizeof(err)), "token-file credential (%s)",
	   cred ? "" : err);
	if (!id || !cred)
		return tap_done();
	for (i = 0; i < 100 && cred_current(cred, tok, sizeof(tok), err, sizeof(err)); i++)
		usleep(30000);

	plain();
	with_identity(id, cred);
	no_credential(id);
	config();

	cred_free(cred);
	identity_free(id);
	EVP_PKEY_free(rsa);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			printf("# could not remove %s\n", dir);
	}
	return tap_done();
}
