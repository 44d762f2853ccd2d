/* Description: OIDC JWT verification against a JWKS made at test time (RSA and EC P-256
 * keys generated here), the RFC 8725 attacks it must refuse, JWKS refresh on an unknown kid
 * (rate-limited, cached keys kept) and file reload, sluice tokens (round trip, another
 * cgroup, expiry, tampering), the STS and IAM Credentials answers, Google credential
 * detection and the configuration loader. */
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <time.h>

#include "identity.h"
#include "tap.h"

#define ISS "https://issuer.example.com"
#define AUD "sluice-test"

static char dir[] = "/tmp/sluice-identity-test-XXXXXX";
static char jwks_path[256], keyfile[256];
static EVP_PKEY *rsa, *ec, *rsa2, *evil;
static time_t now;
static int fetches;          /* calls of the fetch callback */
static int fetch_mode;       /* 0: fail, 1: serve the JWKS with rsa2 */

static void b64(const void *in, size_t len, char *out, size_t outlen)
{
	identity_b64url_encode(in, len, out, outlen);
}

/* A JWK (JSON text, new reference) of <k>'s public key with <kid>. */
static json_t *jwk_of(EVP_PKEY *k, const char *kid)
{
	unsigned char buf[1024];
	char s1[1500], s2[1500];
	BIGNUM *n = NULL, *e = NULL;
	size_t len = 0;
	json_t *j;

	if (EVP_PKEY_is_a(k, "RSA")) {
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
		b64(buf, (size_t)BN_bn2bin(n, buf), s1, sizeof(s1));
		b64(buf, (size_t)BN_bn2bin(e, buf), s2, sizeof(s2));
		BN_free(n);
		BN_free(e);
		return json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "use", "sig",
				 "n", s1, "e", s2);
	}
	EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &len);
	b64(buf + 1, 32, s1, sizeof(s1));
	b64(buf + 33, 32, s2, sizeof(s2));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "kid", kid,
		      "alg", "ES256", "x", s1, "y", s2);
	return j;
}

/* Write a JWKS with the given keys to <path>. */
static void write_jwks(const char *path, int with_rsa2)
{
	json_t *keys = json_array(), *doc;

	json_array_append_new(keys, jwk_of(rsa, "rsa1"));
	json_array_append_new(keys, jwk_of(ec, "ec1"));
	json_array_append_new(keys, json_pack("{s:s, s:s}", "kty", "OKP", "kid", "ed"));
	if (with_rsa2)
		json_array_append_new(keys, jwk_of(rsa2, "rsa2"));
	doc = json_pack("{s:o}", "keys", keys);
	json_dump_file(doc, path, 0);
	json_decref(doc);
}

static char *jwks_text(int with_rsa2)
{
	char p[300];
	FILE *f;
	char *buf = calloc(1, 1 << 16);

	snprintf(p, sizeof(p), "%s/fetched.json", dir);
	write_jwks(p, with_rsa2);
	f = fopen(p, "r");
	fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	return buf;
}

/* The fetch callback: counts calls; serves a JWKS with rsa2 in mode 1. */
static int fetch(void *arg, const struct identity_issuer *is, char **json, size_t *len,
		 char *err, size_t errlen)
{
	fetches++;
	if (!fetch_mode) {
		snprintf(err, errlen, "connection refused (test)");
		return -ECONNREFUSED;
	}
	*json = jwks_text(1);
	*len = strlen(*json);
	return 0;
}

/* Sign "<hdr>.<payload>" with <k> (RS256 or ES256 by key type), or as HS256 with <secret>
 * when <k> is NULL; <alg_none> leaves the signature empty. Returns a static token. */
static const char *sign_raw(const char *hdr, const char *payload, EVP_PKEY *k,
			    const char *secret, int alg_none)
{
	static char tok[40000];
	unsigned char sig[512], raw[64];
	size_t siglen = sizeof(sig);
	unsigned hl = 0;
	EVP_MD_CTX *md;
	int n;

	b64(hdr, strlen(hdr), tok, sizeof(tok));
	n = (int)strlen(tok);
	tok[n++] = '.';
	b64(payload, strlen(payload), tok + n, sizeof(tok) - (size_t)n);
	n = (int)strlen(tok);
	if (alg_none) {
		strcpy(tok + n, ".");
		return tok;
	}
	if (!k) {
		HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)tok, (size_t)n,
		     sig, &hl);
		siglen = hl;
	} else {
		md = EVP_MD_CTX_new();
		EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k);
		EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok, (size_t)n);
		EVP_MD_CTX_free(md);
		if (EVP_PKEY_is_a(k, "EC")) {
			const unsigned char *p = sig;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);

			BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
			BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
			ECDSA_SIG_free(es);
			memcpy(sig, raw, 64);
			siglen = 64;
		}
	}
	tok[n++] = '.';
	b64(sig, siglen, tok + n, sizeof(tok) - (size_t)n);
	return tok;
}

/* A standard payload with overrides: <iss>, <aud> (JSON text), exp/nbf offsets. */
static char *payload(const char *iss, const char *aud, long exp_off, long nbf_off)
{
	static char p[2048];

	snprintf(p, sizeof(p),
		 "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"agent-7\",\"exp\":%ld,\"nbf\":%ld,"
		 "\"iat\":%ld,\"groups\":[\"analysts\",\"oncall\"],\"environment\":\"production\"}",
		 iss, aud, (long)now + exp_off, (long)now + nbf_off, (long)now);
	return p;
}

static const char *good(const char *alg, const char *kid, EVP_PKEY *k)
{
	char h[256];

	snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
	return sign_raw(h, payload(ISS, "\"" AUD "\"", 600, -10), k, NULL, 0);
}

static int verify(struct identity *id, const char *tok, char *err, size_t errlen)
{
	struct identity_claims c;
	int rc;

	err[0] = '\0';
	rc = identity_verify_jwt(id, tok, strlen(tok), now, &c, err, errlen);
	identity_claims_free(&c);
	return rc;
}

static char *pem_pub(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_PUBKEY(b, k);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static char *pem_priv(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void valid_tokens(struct identity *id)
{
	struct identity_claims c;
	char err[512];
	const char *tok = good("RS256", "rsa1", rsa);
	jwt_t *j = NULL;
	char *pem, *s;

	is_int(identity_verify_jwt(id, tok, strlen(tok), now, &c, err, sizeof(err)), 0,
	       "a valid RS256 token is accepted (%s)", err);
	is_str(c.sub, "agent-7", "... sub");
	is_str(c.iss, ISS, "... iss");
	ok(c.n_groups == 2 && !strcmp(c.groups[0], "analysts") && !strcmp(c.groups[1], "oncall"),
	   "... groups from the configured claim");
	is_str(json_string_value(json_object_get(c.claims, "environment")), "production",
	       "... every claim is there for policy matching");
	ok(c.exp == now + 600, "... exp");
	identity_claims_free(&c);
	is_int(verify(id, good("ES256", "ec1", ec), err, sizeof(err)), 0,
	       "a valid ES256 token is accepted (%s)", err);

	/* Interop: tokens made by libjwt itself. */
	pem = pem_priv(rsa);
	jwt_new(&j);
	jwt_add_grants_json(j, payload(ISS, "[\"other\",\"" AUD "\"]", 600, -10));
	jwt_add_header(j, "kid", "rsa1");
	jwt_set_alg(j, JWT_ALG_RS256, (unsigned char *)pem, (int)strlen(pem));
	s = jwt_encode_str(j);
	is_int(verify(id, s, err, sizeof(err)), 0,
	       "a libjwt RS256 token with aud as an array is accepted (%s)", err);
	free(s);
	jwt_free(j);
	free(pem);
	pem = pem_priv(ec);
	jwt_new(&j);
	jwt_add_grants_json(j, payload(ISS, "\"" AUD "\"", 600, -10));
	jwt_add_header(j, "kid", "ec1");
	jwt_set_alg(j, JWT_ALG_ES256, (unsigned char *)pem, (int)strlen(pem));
	s = jwt_encode_str(j);
	is_int(verify(id, s, err, sizeof(err)), 0, "a libjwt ES256 token is accepted (%s)", err);
	free(s);
	jwt_free(j);
	free(pem);

	tok = sign_raw("{\"alg\":\"RS256\"}", payload(ISS, "\"" AUD "\"", 600, -10), rsa, NULL, 0);
	is_int(verify(id, tok, err, sizeof(err)), 0,
	       "a token without kid is tried against the issuer's keys of its type (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
		       payload(ISS, "\"" AUD "\"", -30, -100), rsa, NULL, 0);
	is_int(verify(id, tok, err, sizeof(err)), 0, "expired 30 s ago is within the leeway");
}

static void attacks(struct identity *id)
{
	char err[512], h[2048], *pub;
	const char *tok, *p = payload(ISS, "\"" AUD "\"", 600, -10);
	char big[IDENTITY_MAX_TOKEN + 100];
	json_t *jwk;
	char *js;

	tok = sign_raw("{\"alg\":\"none\",\"kid\":\"rsa1\"}", p, NULL, NULL, 1);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "none"),
	   "alg none is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"None\"}", p, NULL, NULL, 1);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM, "alg None too (%s)", err);

	pub = pem_pub(rsa);
	tok = sign_raw("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", p, NULL, pub, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "HMAC"),
	   "HS256 signed with the RSA public key PEM as secret is refused (%s)", err);
	free(pub);
	tok = sign_raw("{\"alg\":\"RS512\",\"kid\":\"rsa1\"}", p, rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "only RS256 and ES256"),
	   "RS512 is not in the allowlist (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"ec1\"}", p, ec, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -ENOKEY,
	   "RS256 naming an EC key finds no key: key type follows the alg (%s)", err);

	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload(ISS, "\"" AUD "\"", -120, -200),
		       rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "expired"),
	   "expired is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload(ISS, "\"" AUD "\"", 900, 300),
		       rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "not yet valid"),
	   "nbf in the future is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
		       "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"x\"}", rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "exp"),
	   "no exp is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
		       payload("https://evil.example.com", "\"" AUD "\"", 600, -10), rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "not trusted"),
	   "wrong iss is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
		       payload(ISS, "[\"a\",\"b\"]", 600, -10), rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "audience"),
	   "wrong aud is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"b64\"],\"b64\":false}", p,
		       rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "crit"),
	   "crit is refused (%s)", err);

	/* Another key signs, but claims to be rsa1: the signature fails. */
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", p, evil, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "signature"),
	   "a signature by another key is refused (%s)", err);
	/* Embedded jwk / jku / x5u: ignored, the attacker's key is never used. */
	jwk = jwk_of(evil, "attacker");
	js = json_dumps(jwk, JSON_COMPACT);
	snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"kid\":\"attacker\",\"jwk\":%s}", js);
	tok = sign_raw(h, p, evil, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -ENOKEY && strstr(err, "attacker"),
	   "an embedded jwk is ignored: its kid is unknown (%s)", err);
	snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"jwk\":%s,"
			       "\"jku\":\"https://evil.example.com/jwks\","
			       "\"x5u\":\"https://evil.example.com/x\"}", js);
	tok = sign_raw(h, p, evil, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "signature"),
	   "an embedded jwk/jku/x5u with a known kid: verified with the JWKS key only (%s)", err);
	free(js);
	json_decref(jwk);

	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"../../etc/passwd\"}", p, rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -ENOKEY && strstr(err, "../../etc/passwd"),
	   "a kid with path characters is only a name that matches no key (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\\u0000x\"}", p, rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) < 0, "a kid with a NUL is no prefix match (%s)", err);

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[100] = big[200] = '.';
	ok(verify(id, big, err, sizeof(err)) == -E2BIG && strstr(err, "too large"),
	   "an oversized token is refused (%s)", err);
	ok(verify(id, "abc.d$f.ghi", err, sizeof(err)) == -EINVAL && strstr(err, "base64url"),
	   "non-base64url characters are refused (%s)", err);
	ok(verify(id, "abc.def", err, sizeof(err)) == -EINVAL && strstr(err, "3 parts"),
	   "two parts are refused (%s)", err);
	ok(verify(id, "a.b.c.d.e", err, sizeof(err)) == -EINVAL && strstr(err, "JWE"),
	   "a JWE is refused (%s)", err);
	ok(verify(id, "bm90IGpzb24.e30.AAAA", err, sizeof(err)) == -EINVAL && strstr(err, "header"),
	   "a header that is not JSON is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
		       "{\"iss\":\"https://evil.example.com\",\"iss\":\"" ISS "\"}", rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EINVAL && strstr(err, "duplicate"),
	   "a payload with duplicate keys is refused (%s)", err);
	ok(verify(id, "", err, sizeof(err)) == -EINVAL, "an empty token is refused (%s)", err);
	tok = sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "{\"iss\":\"" ISS "\"",
		       rsa, NULL, 0);
	ok(verify(id, tok, err, sizeof(err)) == -EINVAL, "a truncated payload is refused (%s)",
	   err);
}

static void refresh(struct identity *id)
{
	char err[512];
	const char *tok;
	time_t saved = now;

	is_int(identity_jwks_count(id, ISS), 2, "the JWKS file gave 2 usable keys (OKP skipped)");
	now += 61; /* the attacks above used this interval's refresh */
	fetches = 0;
	fetch_mode = 0;
	tok = good("RS256", "rsa2", rsa2);
	ok(verify(id, tok, err, sizeof(err)) == -ENOKEY && strstr(err, "rsa2") &&
		   strstr(err, "refused"),
	   "an unknown kid is refused after a refresh attempt (%s)", err);
	is_int(fetches, 1, "... which called the fetch callback once");
	is_int(identity_jwks_count(id, ISS), 2, "... and the failed fetch kept the cached keys");
	ok(verify(id, tok, err, sizeof(err)) == -ENOKEY && strstr(err, "rate-limited"),
	   "a second miss right after is rate-limited (%s)", err);
	is_int(fetches, 1, "... without calling the callback");
	is_int(verify(id, good("RS256", "rsa1", rsa), err, sizeof(err)), 0,
	       "known keys keep working (%s)", err);
	fetch_mode = 1;
	now += 61;
	tok = good("RS256", "rsa2", rsa2);
	is_int(verify(id, tok, err, sizeof(err)), 0,
	       "after the interval, a refresh finds the new key (%s)", err);
	is_int(fetches, 2, "... with one more fetch");
	is_int(identity_jwks_count(id, ISS), 3, "... and the cache now has the fetched set");
	is_int(identity_jwks_set(id, ISS, "{\"keys\":[]}", 11, err, sizeof(err)), -EINVAL,
	       "a JWKS without usable keys is refused (%s)", err);
	is_int(identity_jwks_count(id, ISS), 3, "... and the cache kept");
	is_int(identity_jwks_set(id, "https://nobody", "{}", 2, err, sizeof(err)), -ENOENT,
	       "setting keys for an unknown issuer is refused");
	now = saved;
}

static void file_reload(struct identity *id)
{
	char err[512];
	struct timespec ts[2] = { { 0, 0 }, { 0, 0 } };

	identity_set_fetch(id, NULL, NULL);
	identity_jwks_set(id, ISS, "{\"keys\":[]}", 11, err, sizeof(err));
	write_jwks(jwks_path, 0);
	/* Force a visible mtime change even within the same timestamp tick. */
	ts[0].tv_sec = ts[1].tv_sec = now - 1000;
	utimensat(AT_FDCWD, jwks_path, ts, 0);
	now += 200;
	ok(verify(id, good("RS256", "rsa2", rsa2), err, sizeof(err)) == -ENOKEY,
	   "rsa2 removed from the JWKS file is gone after reload (%s)", err);
	write_jwks(jwks_path, 1);
	ts[0].tv_sec = ts[1].tv_sec = now - 500;
	utimensat(AT_FDCWD, jwks_path, ts, 0);
	is_int(verify(id, good("RS256", "rsa2", rsa2), err, sizeof(err)), 0,
	       "a JWKS file changed on disk is re-read on its mtime change (%s)", err);
	FILE *f = fopen(jwks_path, "w");
	fputs("{not json", f);
	fclose(f);
	ts[0].tv_sec = ts[1].tv_sec = now - 400;
	utimensat(AT_FDCWD, jwks_path, ts, 0);
	is_int(verify(id, good("RS256", "rsa1", rsa), err, sizeof(err)), 0,
	       "a JWKS file that became invalid keeps the cached keys (%s)", err);
	write_jwks(jwks_path, 1);
	now -= 200;
}

static void sluice_tokens(struct identity *id, struct identity *other)
{
	struct identity_claims who, c;
	char tok[IDENTITY_MAX_SLUICE_TOKEN + 1], t2[IDENTITY_MAX_SLUICE_TOKEN + 1], err[512],
		authz[IDENTITY_MAX_SLUICE_TOKEN + 16];
	const char *jwt = good("RS256", "rsa1", rsa);
	char *dot;
	int n;

	identity_verify_jwt(id, jwt, strlen(jwt), now, &who, err, sizeof(err));
	n = identity_issue_token(id, &who, 4242, 300, NULL, now, tok, sizeof(tok));
	ok(n > 0 && !strncmp(tok, "sluice1.", 8) && (size_t)n == strlen(tok),
	   "a sluice token is issued (%d bytes)", n);
	is_int(identity_check_token(id, tok, (size_t)n, 4242, now + 10, &c, err, sizeof(err)), 0,
	       "it checks from the same cgroup (%s)", err);
	ok(c.sub && !strcmp(c.sub, "agent-7") && !strcmp(c.iss, ISS) && c.n_groups == 2 &&
		   !strcmp(c.groups[1], "oncall") && c.cgroup_id == 4242 && c.exp == now + 300,
	   "... with sub, iss, groups, cgroup and exp");
	is_str(json_string_value(json_object_get(c.claims, "environment")), "production",
	       "... and the subject token's claims");
	identity_claims_free(&c);
	ok(identity_check_token(id, tok, (size_t)n, 4243, now, &c, err, sizeof(err)) == -EPERM &&
		   strstr(err, "another container") && strstr(err, "4242") && strstr(err, "4243"),
	   "presented from another cgroup it is refused (%s)", err);
	ok(identity_check_token(id, tok, (size_t)n, 4242, now + 300, &c, err, sizeof(err)) ==
			   -ETIMEDOUT && strstr(err, "expired"),
	   "expired it is refused (%s)", err);
	strcpy(t2, tok);
	t2[12] = t2[12] == 'A' ? 'B' : 'A';
	ok(identity_check_token(id, t2, strlen(t2), 4242, now, &c, err, sizeof(err)) == -EPERM &&
		   strstr(err, "bad signature"),
	   "a tampered payload is refused (%s)", err);
	strcpy(t2, tok);
	dot = strrchr(t2, '.');
	dot[3] = dot[3] == 'A' ? 'B' : 'A';
	ok(identity_check_token(id, t2, strlen(t2), 4242, now, &c, err, sizeof(err)) == -EPERM,
	   "a tampered signature is refused (%s)", err);
	ok(identity_check_token(other, tok, (size_t)n, 4242, now, &c, err, sizeof(err)) == -EPERM,
	   "another sluiced's key does not accept it (%s)", err);
	ok(identity_check_token(id, jwt, strlen(jwt), 4242, now, &c, err, sizeof(err)) == -EINVAL,
	   "an OIDC JWT is not a sluice token (%s)", err);
	n = identity_issue_token(id, &who, 1, 100000, NULL, now, tok, sizeof(tok));
	identity_check_token(id, tok, (size_t)n, 1, now, &c, err, sizeof(err));
	ok(c.exp == now + 600, "a sluice token never outlives its subject token");
	identity_claims_free(&c);

	snprintf(authz, sizeof(authz), "Bearer %s", tok);
	is_int(identity_check_bearer(id, authz, 1, now, &c, err, sizeof(err)), 0,
	       "check_bearer takes a Bearer sluice token (%s)", err);
	identity_claims_free(&c);
	ok(identity_check_bearer(id, "Bearer ya29.a0AfH6SMBxyz", 1, now, &c, err, sizeof(err)) ==
			   -EPERM && strstr(err, "should not hold Google credentials"),
	   "a Google access token is refused (%s)", err);
	ok(identity_check_bearer(id, NULL, 1, now, &c, err, sizeof(err)) == -EACCES,
	   "no Authorization is refused (%s)", err);
	snprintf(authz, sizeof(authz), "Bearer %s", jwt);
	ok(identity_check_bearer(id, authz, 1, now, &c, err, sizeof(err)) == -EINVAL,
	   "an OIDC bearer is refused unless allow_oidc_bearer (%s)", err);
	identity_claims_free(&who);
}

static void google_tokens(void)
{
	const char *idtok;

	ok(identity_is_google_token("ya29.c.b0Aaekm1", 15), "ya29. is a Google access token");
	ok(identity_is_google_token("1//0gABCDEF", 11), "1// is a Google refresh token");
	ok(identity_is_google_token("AIzaSyA1234567890abcdefghijklmnopqrstuv", 39),
	   "AIza... is a Google API key");
	idtok = sign_raw("{\"alg\":\"RS256\"}", "{\"iss\":\"https://accounts.google.com\"}", evil,
			 NULL, 0);
	ok(identity_is_google_token(idtok, strlen(idtok)), "a Google ID token is recognized");
	ok(!identity_is_google_token("sluice1.abc.def", 15), "a sluice token is not");
	idtok = good("RS256", "rsa1", rsa);
	ok(!identity_is_google_token(idtok, strlen(idtok)), "an OIDC token of our issuer is not");
}

/* Form-encode a subject token the way URLSearchParams does. */
static void sts(struct identity *id)
{
	char body[40000], out[40000], err[512], authz[40100];
	const char *jwt = good("ES256", "ec1", ec), *body_s;
	json_t *j, *t;
	struct identity_claims c;
	int status = 0, rc;

	snprintf(body, sizeof(body),
		 "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Atoken-exchange"
		 "&audience=%%2F%%2Fiam.googleapis.com%%2Fprojects%%2F123%%2Flocations%%2Fglobal"
		 "%%2FworkloadIdentityPools%%2Fp%%2Fproviders%%2Fq"
		 "&scope=https%%3A%%2F%%2Fwww.googleapis.com%%2Fauth%%2Fcloud-platform"
		 "&requested_token_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Atoken-type%%3Aaccess_token"
		 "&subject_token=%s"
		 "&subject_token_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Atoken-type%%3Ajwt", jwt);
	rc = identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	is_int(rc, 0, "STS exchange of a valid OIDC token succeeds (%s)", out);
	is_int(status, 200, "... 200");
	j = json_loads(out, 0, NULL);
	ok(j && !strncmp(json_string_value(json_object_get(j, "access_token")) ?: "", "sluice1.", 8),
	   "... access_token is a sluice token");
	is_str(json_string_value(json_object_get(j, "issued_token_type")),
	       "urn:ietf:params:oauth:token-type:access_token", "... issued_token_type");
	is_str(json_string_value(json_object_get(j, "token_type")), "Bearer", "... token_type");
	t = json_object_get(j, "expires_in");
	ok(json_is_integer(t) && json_integer_value(t) == 600,
	   "... expires_in is capped by the subject token (600)");
	snprintf(authz, sizeof(authz), "Bearer %s",
		 json_string_value(json_object_get(j, "access_token")));
	is_int(identity_check_bearer(id, authz, 77, now, &c, err, sizeof(err)), 0,
	       "... and it is accepted from the same cgroup (%s)", err);
	identity_claims_free(&c);

	/* IAM generateAccessToken with it. */
	body_s = "{\"scope\":[\"https://www.googleapis.com/auth/bigquery\"],\"lifetime\":\"300s\"}";
	rc = identity_iam_generate_access_token(
		id, "/v1/projects/-/serviceAccounts/bq%40demo.iam.gserviceaccount.com:generateAccessToken",
		authz, body_s, strlen(body_s), 77, now, out, sizeof(out), &status);
	is_int(rc, 0, "generateAccessToken with the sluice token succeeds (%s)", out);
	is_int(status, 200, "... 200");
	json_decref(j);
	j = json_loads(out, 0, NULL);
	t = json_object_get(j, "expireTime");
	ok(json_is_string(t) && strlen(json_string_value(t)) == 20 &&
		   json_string_value(t)[10] == 'T' && json_string_value(t)[19] == 'Z',
	   "... expireTime is RFC 3339 (%s)", json_string_value(t));
	snprintf(authz, sizeof(authz), "Bearer %s",
		 json_string_value(json_object_get(j, "accessToken")) ?: "");
	is_int(identity_check_bearer(id, authz, 77, now, &c, err, sizeof(err)), 0,
	       "... accessToken is a sluice token for the same cgroup (%s)", err);
	ok(c.service_account && !strcmp(c.service_account, "bq@demo.iam.gserviceaccount.com") &&
		   c.exp == now + 300 && !strcmp(c.sub, "agent-7"),
	   "... naming the service account, same subject, the requested lifetime");
	identity_claims_free(&c);
	rc = identity_iam_generate_access_token(
		id, "/v1/projects/-/serviceAccounts/sa@x:generateAccessToken", authz,
		"{\"scope\":[\"s\"]}", 16, 78, now, out, sizeof(out), &status);
	ok(rc == -EPERM && status == 403 && strstr(out, "PERMISSION_DENIED") &&
		   strstr(out, "another container"),
	   "generateAccessToken from another cgroup: 403 (%s)", out);
	rc = identity_iam_generate_access_token(
		id, "/v1/projects/-/serviceAccounts/sa@x:generateAccessToken", NULL,
		"{\"scope\":[\"s\"]}", 16, 77, now, out, sizeof(out), &status);
	ok(rc < 0 && status == 401 && strstr(out, "UNAUTHENTICATED"),
	   "generateAccessToken without a bearer: 401 (%s)", out);
	rc = identity_iam_generate_access_token(
		id, "/v1/projects/-/serviceAccounts/sa@x:generateAccessToken", authz, "{}", 2, 77,
		now, out, sizeof(out), &status);
	ok(rc < 0 && status == 400 && strstr(out, "scope"),
	   "generateAccessToken without scope: 400 (%s)", out);
	rc = identity_iam_generate_access_token(id, "/v1/projects/-/serviceAccounts/sa@x:signJwt",
						authz, "{}", 2, 77, now, out, sizeof(out), &status);
	ok(rc < 0 && status == 404, "another IAM method: 404 (%s)", out);
	json_decref(j);

	/* Errors, OAuth-shaped. */
	snprintf(body, sizeof(body), "grant_type=client_credentials&subject_token=%s"
				     "&subject_token_type=urn:ietf:params:oauth:token-type:jwt", jwt);
	identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(status == 400 && strstr(out, "\"unsupported_grant_type\""),
	   "another grant_type: 400 unsupported_grant_type (%s)", out);
	snprintf(body, sizeof(body), "grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
				     "&subject_token_type=urn:ietf:params:oauth:token-type:jwt");
	identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(status == 400 && strstr(out, "\"invalid_request\"") && strstr(out, "subject_token"),
	   "no subject_token: 400 invalid_request (%s)", out);
	snprintf(body, sizeof(body), "grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
				     "&subject_token=%s&subject_token_type=urn:ietf:params:oauth:"
				     "token-type:saml2", jwt);
	identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(status == 400 && strstr(out, "subject_token_type"),
	   "a SAML subject_token_type: 400 (%s)", out);
	snprintf(body, sizeof(body), "grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
				     "&subject_token=%s&subject_token_type=urn:ietf:params:oauth:"
				     "token-type:id_token",
		 sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
			  payload(ISS, "\"" AUD "\"", -3600, -7200), rsa, NULL, 0));
	rc = identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(rc < 0 && status == 400 && strstr(out, "\"invalid_grant\"") && strstr(out, "expired"),
	   "an expired subject token: 400 invalid_grant saying so (%s)", out);
	snprintf(body, sizeof(body), "grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
				     "&subject_token=ya29.abcdef&subject_token_type=urn:ietf:"
				     "params:oauth:token-type:jwt");
	identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(status == 400 && strstr(out, "should not hold Google credentials"),
	   "a Google token as subject: refused saying why (%s)", out);
	snprintf(body, sizeof(body), "grant_type=a&grant_type=b");
	identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(status == 400 && strstr(out, "twice"), "a repeated parameter: 400 (%s)", out);
	snprintf(body, sizeof(body), "grant_type=%%zz");
	identity_sts_exchange(id, body, strlen(body), 77, now, out, sizeof(out), &status);
	ok(status == 400 && strstr(out, "malformed"), "bad percent-encoding: 400 (%s)", out);
}

static int conf_from(const char *text, struct identity_conf *c, char *err, size_t errlen)
{
	json_t *doc = json_loads(text, 0, NULL);
	int rc = identity_conf_load(json_object_get(doc, "identity"), "identity", "t.json", text,
				    strlen(text), c, err, errlen);

	json_decref(doc);
	return rc;
}

static void config(void)
{
	struct identity_conf c;
	char err[512];

	is_int(conf_from("{\"identity\": {\n\"issuers\": [{\"issuer\": \"https://a\", \"audience\": "
			 "\"x\", \"jwks_uri\": \"https://a/jwks\", \"algs\": [\"ES256\"], "
			 "\"groups_claim\": \"g\"}],\n\"token_ttl_s\": 900}}",
			 &c, err, sizeof(err)),
	       0, "a configuration loads (%s)", err);
	ok(c.n_issuers == 1 && c.issuers[0].algs == IDENTITY_ALG_ES256 && c.token_ttl_s == 900 &&
		   c.issuers[0].leeway_s == IDENTITY_DEFAULT_LEEWAY &&
		   !strcmp(c.issuers[0].groups_claim, "g"),
	   "... with its values and defaults");
	identity_conf_free(&c);
	ok(conf_from("{\"identity\": {\n\"issuers\": [{\"issuer\": \"https://a\", \"audience\": "
		     "\"x\", \"jwks_file\": \"/f\",\n \"algs\": [\"HS256\"]}]}}",
		     &c, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "t.json:3: identity.issuers[0].algs: ") && strstr(err, "HS"),
	   "HS256 in algs is refused with file, line and key (%s)", err);
	ok(conf_from("{\"identity\": {\"issuers\": [{\"issuer\": \"https://a\", \"jwks_file\": "
		     "\"/f\"}]}}", &c, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "identity.issuers[0].audience: required"),
	   "a missing audience is refused (%s)", err);
	ok(conf_from("{\"identity\": {\"issuers\": [{\"issuer\": \"https://a\", \"audience\": "
		     "\"x\"}]}}", &c, err, sizeof(err)) == -EINVAL && strstr(err, "jwks_file"),
	   "an issuer without keys is refused (%s)", err);
	ok(conf_from("{\"identity\": {\"tokn_ttl_s\": 5}}", &c, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "identity.tokn_ttl_s: unknown key"),
	   "an unknown key is refused (%s)", err);
	is_int(conf_from("{}", &c, err, sizeof(err)), 0, "no identity section: defaults");
	identity_conf_free(&c);
}

static void key_file(struct identity_conf *conf, const char *jwt)
{
	struct identity *a, *b;
	struct identity_claims who, c;
	char err[512], tok[IDENTITY_MAX_SLUICE_TOKEN];
	int n;

	conf->hmac_key_file = keyfile;
	a = identity_new(conf, err, sizeof(err));
	ok(a != NULL, "an identity with a token key file starts (%s)", a ? "" : err);
	b = identity_new(conf, err, sizeof(err));
	identity_verify_jwt(a, jwt, strlen(jwt), now, &who, err, sizeof(err));
	n = identity_issue_token(a, &who, 9, 0, NULL, now, tok, sizeof(tok));
	is_int(b ? identity_check_token(b, tok, (size_t)n, 9, now, &c, err, sizeof(err)) : -1, 0,
	       "a token survives a restart with the key file (%s)", err);
	identity_claims_free(&c);
	identity_claims_free(&who);
	identity_free(a);
	identity_free(b);
	chmod(keyfile, 0644);
	a = identity_new(conf, err, sizeof(err));
	ok(!a && strstr(err, "group or others") && strstr(err, "chmod 600"),
	   "a 0644 token key file is refused (%s)", err);
	identity_free(a);
	conf->hmac_key_file = NULL;
}

int main(void)
{
	struct identity_conf conf;
	struct identity *id, *other;
	char err[512];

	now = time(NULL);
	if (!mkdtemp(dir))
		tap_skip_all("no temporary directory");
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/token.key", dir);
	rsa = EVP_RSA_gen(2048);
	rsa2 = EVP_RSA_gen(2048);
	evil = EVP_RSA_gen(2048);
	ec = EVP_EC_gen("P-256");
	write_jwks(jwks_path, 0);

	memset(&conf, 0, sizeof(conf));
	conf.n_issuers = 2;
	conf.issuers[0] = (struct identity_issuer){ .issuer = ISS, .audience = AUD,
						    .jwks_file = jwks_path,
						    .jwks_uri = "https://issuer.example.com/jwks",
						    .groups_claim = "groups", .leeway_s = 60 };
	conf.issuers[1] = (struct identity_issuer){ .issuer = "https://rs-only.example.com",
						    .audience = AUD, .jwks_file = jwks_path,
						    .algs = IDENTITY_ALG_RS256, .leeway_s = 0 };
	id = identity_new(&conf, err, sizeof(err));
	ok(id != NULL, "identity_new loads the JWKS file (%s)", id ? "" : err);
	other = identity_new(&conf, err, sizeof(err));
	if (!id || !other)
		return tap_done();
	identity_set_fetch(id, fetch, NULL);

	valid_tokens(id);
	{
		const char *tok = sign_raw("{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
					   payload("https://rs-only.example.com", "\"" AUD "\"", 600,
						   -10), ec, NULL, 0);
		ok(verify(id, tok, err, sizeof(err)) == -EPERM && strstr(err, "not allowed"),
		   "ES256 for an RS256-only issuer is refused (%s)", err);
	}
	attacks(id);
	refresh(id);
	file_reload(id);
	sluice_tokens(id, other);
	google_tokens();
	sts(id);
	config();
	key_file(&conf, good("RS256", "rsa1", rsa));

	identity_free(id);
	identity_free(other);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(evil);
	EVP_PKEY_free(ec);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			printf("# could not remove %s\n", dir);
	}
	return tap_done();
}
