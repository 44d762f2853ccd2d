/* identity.c - OIDC JWT verification (libjwt 1.10 for the signature, everything else here),
 * JWKS caches, sluice tokens, and sluiced's own answers to Google STS and IAM Credentials.
 *
 * The header and payload of a subject token are decoded and checked here before libjwt sees
 * the token, so that the algorithm and the key are chosen by sluice alone: the algorithm
 * must be in the issuer's allowlist (RS256/ES256; never none or HS*), the key is the JWKS
 * key whose kid is byte-for-byte equal and whose type fits the algorithm, converted to a
 * PEM public key (libjwt 1.10 takes PEM only). libjwt then verifies with exactly that key. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity.h"
#include "jsonpos.h"
#include "log.h"

#define MOD "identity"
#define HMAC_KEY_LEN 32
#define MAX_HEADER 4096   /* decoded JOSE header bytes */
#define MAX_PEM 4096      /* a PEM public key (RSA up to 8192 bits fits) */
#define MAX_JWKS (1 << 20)
#define TOKEN_PREFIX "sluice1."

struct jkey {
	char kid[256];
	int has_kid;
	unsigned alg;     /* IDENTITY_ALG_RS256 for RSA keys, IDENTITY_ALG_ES256 for P-256 */
	char pem[MAX_PEM];
	size_t pem_len;
};

struct keyset {
	struct jkey k[IDENTITY_MAX_KEYS];
	int n;
};

struct istate {
	pthread_mutex_t mu;
	struct keyset ks;
	struct timespec mtime;   /* of jwks_file when last loaded */
	off_t size;
	ino_t ino;
	time_t last_refresh;     /* 0: never */
};

struct identity {
	struct identity_conf conf;      /* deep copy */
	struct istate st[IDENTITY_MAX_ISSUERS];
	unsigned char hmac_key[HMAC_KEY_LEN];
	pthread_mutex_t fetch_mu;
	identity_fetch_fn fetch;
	void *fetch_arg;
};

/* Copy <in>/<len> to <out> for a message: printable ASCII only, at most 64 characters. */
static const char *printable(const char *in, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 5 < outlen && i < 64; i++)
		out[o++] = in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' ? in[i] : '?';
	if (i < len && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* ---- base64url ------------------------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int identity_b64url_encode(const void *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = in;
	size_t i, o = 0, need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0) + 1;
	unsigned v;

	if (need > outlen || need > (size_t)INT32_MAX)
		return -ENOSPC;
	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
		out[o++] = b64[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned)p[i] << 16;
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
	}
	out[o] = '\0';
	return (int)o;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int identity_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	size_t i, o = 0;
	unsigned v = 0;
	int bits = 0, d;

	if (len % 4 == 1 || len > (size_t)INT32_MAX)
		return -EINVAL;
	if (len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > outlen)
		return -ENOSPC;
	for (i = 0; i < len; i++) {
		d = b64val(in[i]);
		if (d < 0)
			return -EINVAL;
		v = v << 6 | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
			v &= (1u << bits) - 1;
		}
	}
	if (v) /* non-canonical trailing bits */
		return -EINVAL;
	return (int)o;
}

/* Decode the base64url JSON object <in>/<len> (at most <max> decoded bytes). Returns a new
 * reference or NULL. Duplicate keys are refused (no parser differential with libjwt). */
static json_t *b64_json(const char *in, size_t len, size_t max)
{
	unsigned char *buf;
	json_t *j = NULL;
	int n;

	if (len / 4 * 3 + 3 > max)
		return NULL;
	buf = malloc(len / 4 * 3 + 3);
	if (!buf)
		return NULL;
	n = identity_b64url_decode(in, len, buf, len / 4 * 3 + 3);
	if (n > 0)
		j = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* ---- JWKS ----------------------------------------------------------------------------- */

/* Decode the base64url member <name> of <jwk> into <out> (at most <max>). Returns the length
 * or -1. */
static int jwk_bytes(json_t *jwk, const char *name, unsigned char *out, size_t max)
{
	const char *s = json_string_value(json_object_get(jwk, name));

	if (!s)
		return -1;
	return identity_b64url_decode(s, strlen(s), out, max);
}

/* PEM of the public key <pkey> into <k>. Returns 0 or -1. */
static int to_pem(EVP_PKEY *pkey, struct jkey *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int rc = -1;

	if (b && PEM_write_bio_PUBKEY(b, pkey) == 1) {
		n = BIO_get_mem_data(b, &data);
		if (n > 0 && (size_t)n < sizeof(k->pem)) {
			memcpy(k->pem, data, (size_t)n);
			k->pem[n] = '\0';
			k->pem_len = (size_t)n;
			rc = 0;
		}
	}
	BIO_free(b);
	return rc;
}

/* Build the public key of one JWK: RSA (n, e; at least 2048 bits) or EC P-256 (x, y, on
 * the curve). Accepts the JWK object; fills <k> (kid copied). Returns 0, or -1 with <why>
 * (a static string) for a key to skip. */
static int jwk_to_key(json_t *jwk, struct jkey *k, const char **why)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	const char *crv;
	unsigned char nb[1024], eb[16], pub[65];
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	int nl, el, rc = -1;

	memset(k, 0, sizeof(*k));
	*why = "unsupported key type";
	if (!kty)
		return -1;
	if (use && strcmp(use, "sig")) {
		*why = "not a signing key (use)";
		return -1;
	}
	if (kid) {
		if (strlen(kid) >= sizeof(k->kid)) {
			*why = "kid too long";
			return -1;
		}
		strcpy(k->kid, kid);
		k->has_kid = 1;
	}
	ERR_clear_error();
	bld = OSSL_PARAM_BLD_new();
	if (!bld)
		goto out;
	if (!strcmp(kty, "RSA")) {
		if (alg && strcmp(alg, "RS256")) {
			*why = "alg is not RS256";
			goto out;
		}
		nl = jwk_bytes(jwk, "n", nb, sizeof(nb));
		el = jwk_bytes(jwk, "e", eb, sizeof(eb));
		if (nl <= 0 || el <= 0) {
			*why = "bad RSA n or e";
			goto out;
		}
		n = BN_bin2bn(nb, nl, NULL);
		e = BN_bin2bn(eb, el, NULL);
		if (!n || !e || BN_num_bits(n) < 2048) {
			*why = "RSA key shorter than 2048 bits";
			goto out;
		}
		if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
			goto out;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
		k->alg = IDENTITY_ALG_RS256;
	} else if (!strcmp(kty, "EC")) {
		crv = json_string_value(json_object_get(jwk, "crv"));
		if (!crv || strcmp(crv, "P-256") || (alg && strcmp(alg, "ES256"))) {
			*why = "EC key not on P-256 / not ES256";
			goto out;
		}
		pub[0] = 0x04;
		if (jwk_bytes(jwk, "x", pub + 1, 32) != 32 || jwk_bytes(jwk, "y", pub + 33, 32) != 32) {
			*why = "bad EC x or y";
			goto out;
		}
		if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
						     0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
			goto out;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		k->alg = IDENTITY_ALG_ES256;
	} else {
		goto out;
	}
	*why = "invalid key";
	params = OSSL_PARAM_BLD_to_param(bld);
	if (!ctx || !params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!chk || EVP_PKEY_public_check(chk) <= 0) {
		*why = "public key check failed (EC point not on the curve?)";
		goto out;
	}
	if (to_pem(pkey, k))
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return rc;
}

/* Parse a JWKS document {"keys": [...]} into <ks>; unusable keys are skipped (logged with
 * <what>). Returns the number of keys kept (0 is an error for callers) or -1 (malformed),
 * with <err>. */
static int jwks_parse(const char *json, size_t len, const char *what, struct keyset *ks,
		      char *err, size_t errlen)
{
	json_error_t je;
	json_t *doc, *keys, *jwk;
	const char *why;
	size_t i;

	ks->n = 0;
	if (len > MAX_JWKS) {
		err_set(err, errlen, "%s: JWKS larger than %d bytes", what, MAX_JWKS);
		return -1;
	}
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		err_set(err, errlen, "%s:%d: JWKS is not valid JSON: %s", what, je.line, je.text);
		return -1;
	}
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		err_set(err, errlen, "%s: JWKS has no \"keys\" array", what);
		json_decref(doc);
		return -1;
	}
	json_array_foreach(keys, i, jwk) {
		if (ks->n == IDENTITY_MAX_KEYS) {
			log_warn(MOD, "%s: more than %d keys, the rest ignored", what,
				 IDENTITY_MAX_KEYS);
			break;
		}
		if (!json_is_object(jwk) || jwk_to_key(jwk, &ks->k[ks->n], &why)) {
			if (json_is_object(jwk))
				log_debug(MOD, "%s: key %zu skipped: %s", what, i, why);
			continue;
		}
		ks->n++;
	}
	json_decref(doc);
	if (!ks->n)
		err_set(err, errlen, "%s: JWKS has no usable RSA (2048+ bits) or EC P-256 signing key",
		       what);
	return ks->n;
}

/* Read <path> whole (at most MAX_JWKS bytes) with its stat into <st>. Returns a malloc'd
 * buffer or NULL with <err>. */
static char *read_file(const char *path, struct stat *st, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	ssize_t n;
	size_t got = 0;

	if (fd < 0) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) || !S_ISREG(st->st_mode) || st->st_size > MAX_JWKS) {
		err_set(err, errlen, "%s: not a regular file of at most %d bytes", path, MAX_JWKS);
		goto fail;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf)
		goto fail;
	while (got < (size_t)st->st_size &&
	       (n = read(fd, buf + got, (size_t)st->st_size - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	*len = got;
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* (Re)load the JWKS file of issuer <i> into its cache when it changed (or when <force>).
 * Caller holds st->mu. A file that became invalid keeps the cached keys. Returns 0 or -1
 * with <err>. */
static int jwks_file_sync(struct identity *id, int i, int force, char *err, size_t errlen)
{
	struct istate *st = &id->st[i];
	const char *path = id->conf.issuers[i].jwks_file;
	struct keyset *ks;
	struct stat sb;
	size_t len;
	char *buf;

	if (!path)
		return 0;
	if (!force && !stat(path, &sb) && sb.st_mtim.tv_sec == st->mtime.tv_sec &&
	    sb.st_mtim.tv_nsec == st->mtime.tv_nsec && sb.st_size == st->size &&
	    sb.st_ino == st->ino)
		return 0;
	buf = read_file(path, &sb, &len, err, errlen);
	if (!buf)
		return -1;
	ks = malloc(sizeof(*ks));
	if (!ks || jwks_parse(buf, len, path, ks, err, errlen) <= 0) {
		free(ks);
		free(buf);
		return -1;
	}
	st->ks = *ks;
	st->mtime = sb.st_mtim;
	st->size = sb.st_size;
	st->ino = sb.st_ino;
	free(ks);
	free(buf);
	return 0;
}

static int issuer_index(const struct identity *id, const char *iss)
{
	int i;

	for (i = 0; iss && i < id->conf.n_issuers; i++)
		if (!strcmp(id->conf.issuers[i].issuer, iss))
			return i;
	return -1;
}

int identity_jwks_set(struct identity *id, const char *issuer, const char *json, size_t len,
		      char *err, size_t errlen)
{
	int i = issuer_index(id, issuer);
	struct keyset *ks;

	if (i < 0) {
		err_set(err, errlen, "no configured issuer \"%s\"", issuer ? issuer : "");
		return -ENOENT;
	}
	ks = malloc(sizeof(*ks));
	if (!ks)
		return -ENOMEM;
	if (jwks_parse(json, len, issuer, ks, err, errlen) <= 0) {
		free(ks);
		return -EINVAL;
	}
	pthread_mutex_lock(&id->st[i].mu);
	id->st[i].ks = *ks;
	pthread_mutex_unlock(&id->st[i].mu);
	free(ks);
	return 0;
}

int identity_jwks_count(const struct identity *id, const char *issuer)
{
	struct identity *m = (struct identity *)id;
	int i = issuer_index(id, issuer), n;

	if (i < 0)
		return -1;
	pthread_mutex_lock(&m->st[i].mu);
	n = m->st[i].ks.n;
	pthread_mutex_unlock(&m->st[i].mu);
	return n;
}

/* Copy into <pem> the key for <alg> and <kid> (NULL: none in the token) at position >= *<pos>
 * of issuer <i>'s cache; *<pos> advances past it. Returns 1 found, 0 none. */
static int key_lookup(struct identity *id, int i, unsigned alg, const char *kid, int *pos,
		      char *pem, size_t *pem_len)
{
	struct istate *st = &id->st[i];
	int found = 0;

	pthread_mutex_lock(&st->mu);
	for (; *pos < st->ks.n && !found; (*pos)++) {
		struct jkey *k = &st->ks.k[*pos];

		if (k->alg != alg || (kid && (!k->has_kid || strcmp(k->kid, kid))))
			continue;
		memcpy(pem, k->pem, k->pem_len + 1);
		*pem_len = k->pem_len;
		found = 1;
	}
	pthread_mutex_unlock(&st->mu);
	return found;
}

/* Refresh issuer <i>'s keys after a kid miss, at most once per refresh interval: re-read
 * its file, and fetch its jwks_uri through the callback. The cache is replaced only by a
 * document with at least one usable key. Returns 0 refreshed, -EAGAIN rate-limited, or
 * another -errno with <err>. */
static int jwks_refresh(struct identity *id, int i, time_t now, char *err, size_t errlen)
{
	struct istate *st = &id->st[i];
	const struct identity_issuer *is = &id->conf.issuers[i];
	identity_fetch_fn fn;
	void *arg;
	char *doc = NULL;
	size_t len = 0;
	int rc;

	pthread_mutex_lock(&st->mu);
	if (st->last_refresh && now - st->last_refresh < id->conf.refresh_interval_s &&
	    now >= st->last_refresh) {
		rc = (int)(id->conf.refresh_interval_s - (now - st->last_refresh));
		pthread_mutex_unlock(&st->mu);
		err_set(err, errlen, "key refresh rate-limited (next in %d s)", rc);
		return -EAGAIN;
	}
	st->last_refresh = now;
	rc = jwks_file_sync(id, i, 1, err, errlen);
	pthread_mutex_unlock(&st->mu);
	if (rc)
		log_warn(MOD, "issuer %s: JWKS file reload failed, cached keys kept: %s",
			 is->issuer, err);
	pthread_mutex_lock(&id->fetch_mu);
	fn = id->fetch;
	arg = id->fetch_arg;
	pthread_mutex_unlock(&id->fetch_mu);
	if (!is->jwks_uri || !fn)
		return rc ? -EIO : 0;
	rc = fn(arg, is, &doc, &len, err, errlen);
	if (rc) {
		free(doc);
		if (rc != -EINPROGRESS)
			log_warn(MOD, "issuer %s: JWKS fetch failed, cached keys kept: %s",
				 is->issuer, err);
		return rc;
	}
	rc = identity_jwks_set(id, is->issuer, doc, len, err, errlen);
	free(doc);
	if (rc)
		log_warn(MOD, "issuer %s: fetched JWKS refused, cached keys kept: %s", is->issuer,
			 err);
	return rc;
}

/* ---- claims ----------------------------------------------------------------------------- */

void identity_claims_free(struct identity_claims *c)
{
	if (!c)
		return;
	json_decref(c->own);
	memset(c, 0, sizeof(*c));
}

/* Fill out->groups from claim <v> (string or array of strings). Returns 0 or -1 with <err>. */
static int take_groups(json_t *v, const char *name, struct identity_claims *out, char *err,
		       size_t errlen)
{
	json_t *g;
	size_t i;

	out->n_groups = 0;
	if (!v)
		return 0;
	if (json_is_string(v)) {
		out->groups[out->n_groups++] = json_string_value(v);
		return 0;
	}
	if (!json_is_array(v)) {
		err_set(err, errlen, "claim \"%s\" must be a string or an array of strings", name);
		return -1;
	}
	if (json_array_size(v) > IDENTITY_MAX_GROUPS) {
		err_set(err, errlen, "claim \"%s\" has more than %d groups", name,
		       IDENTITY_MAX_GROUPS);
		return -1;
	}
	json_array_foreach(v, i, g) {
		if (!json_is_string(g)) {
			err_set(err, errlen, "claim \"%s\" must be an array of strings", name);
			return -1;
		}
		out->groups[out->n_groups++] = json_string_value(g);
	}
	return 0;
}

static int aud_matches(json_t *aud, const char *want)
{
	json_t *v;
	size_t i;

	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), want);
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), want))
			return 1;
	return 0;
}

/* A NumericDate claim: absent -> 0 with *<present> 0; not a number -> -1. */
static int num_claim(json_t *p, const char *name, long long *v, int *present)
{
	json_t *j = json_object_get(p, name);

	*present = j != NULL;
	*v = 0;
	if (!j)
		return 0;
	if (json_is_integer(j))
		*v = json_integer_value(j);
	else if (json_is_real(j))
		*v = (long long)json_real_value(j);
	else
		return -1;
	return 0;
}

/* Check the registered claims of verified payload <p> for issuer <is> at <now>. Returns 0,
 * or -EPERM/-EINVAL with <err>. */
static int check_claims(const struct identity_issuer *is, json_t *p, time_t now, char *err,
			size_t errlen)
{
	long long exp, nbf, iat;
	int has_exp, has_nbf, has_iat;
	json_t *aud = json_object_get(p, "aud");
	const char *sub = json_string_value(json_object_get(p, "sub"));

	if (num_claim(p, "exp", &exp, &has_exp) || num_claim(p, "nbf", &nbf, &has_nbf) ||
	    num_claim(p, "iat", &iat, &has_iat)) {
		err_set(err, errlen, "exp, nbf and iat must be numbers (seconds since the epoch)");
		return -EINVAL;
	}
	if (!has_exp) {
		err_set(err, errlen, "token has no exp claim: only expiring tokens are accepted");
		return -EPERM;
	}
	if ((long long)now > exp + is->leeway_s) {
		err_set(err, errlen, "token expired %lld s ago (exp %lld, leeway %d s)",
		       (long long)now - exp, exp, is->leeway_s);
		return -EPERM;
	}
	if (has_nbf && (long long)now + is->leeway_s < nbf) {
		err_set(err, errlen, "token not yet valid: nbf is %lld s in the future",
		       nbf - (long long)now);
		return -EPERM;
	}
	if (has_iat && (long long)now + is->leeway_s < iat) {
		err_set(err, errlen, "token issued in the future: iat is %lld s ahead",
		       iat - (long long)now);
		return -EPERM;
	}
	if (!aud || (!json_is_string(aud) && !json_is_array(aud))) {
		err_set(err, errlen, "token has no aud claim (want \"%s\")", is->audience);
		return -EPERM;
	}
	if (!aud_matches(aud, is->audience)) {
		err_set(err, errlen, "wrong audience: the token is not for \"%s\"", is->audience);
		return -EPERM;
	}
	if (!sub || !*sub) {
		err_set(err, errlen, "token has no sub claim");
		return -EPERM;
	}
	return 0;
}

static int alg_of(const char *name)
{
	if (!strcmp(name, "RS256"))
		return IDENTITY_ALG_RS256;
	if (!strcmp(name, "ES256"))
		return IDENTITY_ALG_ES256;
	return 0;
}

int identity_verify_jwt(const struct identity *cid, const char *token, size_t len, time_t now,
			struct identity_claims *out, char *err, size_t errlen)
{
	struct identity *id = (struct identity *)cid; /* only the caches change */
	const char *d1, *d2, *algname, *kid = NULL, *iss;
	char pbuf[80], *tok = NULL, *pem = NULL;
	json_t *hdr = NULL, *pl = NULL, *kidv;
	const struct identity_issuer *is;
	size_t i, pem_len = 0;
	unsigned alg;
	int ii, pos, rc, found, dots = 0, tried = 0;
	jwt_t *jwt = NULL;

	memset(out, 0, sizeof(*out));
	if (len > IDENTITY_MAX_TOKEN) {
		err_set(err, errlen, "token too large (%zu bytes, at most %d)", len,
		       IDENTITY_MAX_TOKEN);
		return -E2BIG;
	}
	for (i = 0; i < len; i++) {
		if (token[i] == '.')
			dots++;
		else if (b64val(token[i]) < 0) {
			err_set(err, errlen, "malformed token: not base64url at byte %zu", i);
			return -EINVAL;
		}
	}
	if (dots != 2) {
		err_set(err, errlen, "malformed token: a signed JWT has 3 parts, this one %d%s",
		       dots + 1, dots == 4 ? " (encrypted JWE tokens are not accepted)" : "");
		return -EINVAL;
	}
	d1 = memchr(token, '.', len);
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
	hdr = b64_json(token, (size_t)(d1 - token), MAX_HEADER);
	if (!hdr) {
		err_set(err, errlen, "malformed token: the header is not base64url JSON object");
		rc = -EINVAL;
		goto out;
	}
	algname = json_string_value(json_object_get(hdr, "alg"));
	if (!algname) {
		err_set(err, errlen, "malformed token: no alg in the header");
		rc = -EINVAL;
		goto out;
	}
	if (!strcasecmp(algname, "none")) {
		err_set(err, errlen, "alg \"none\" refused: unsigned tokens are never accepted");
		rc = -EPERM;
		goto out;
	}
	if (!strncasecmp(algname, "HS", 2)) {
		err_set(err, errlen, "alg \"%s\" refused: HMAC algorithms are never accepted for "
				    "subject tokens (RFC 8725)", printable(algname, strlen(algname),
									   pbuf, sizeof(pbuf)));
		rc = -EPERM;
		goto out;
	}
	alg = (unsigned)alg_of(algname);
	if (!alg) {
		err_set(err, errlen, "alg \"%s\" refused: only RS256 and ES256 are accepted",
		       printable(algname, strlen(algname), pbuf, sizeof(pbuf)));
		rc = -EPERM;
		goto out;
	}
	if (json_object_get(hdr, "crit")) {
		err_set(err, errlen, "header \"crit\" refused: no JWS extension is supported");
		rc = -EPERM;
		goto out;
	}
	kidv = json_object_get(hdr, "kid");
	if (kidv && !json_is_string(kidv)) {
		err_set(err, errlen, "malformed token: kid must be a string");
		rc = -EINVAL;
		goto out;
	}
	kid = json_string_value(kidv);
	/* jwk, jku, x5u, x5c, x5t: ignored on purpose (keys come from the configured JWKS). */
	pl = b64_json(d1 + 1, (size_t)(d2 - d1 - 1), IDENTITY_MAX_TOKEN);
	if (!pl) {
		err_set(err, errlen, "malformed token: the payload is not a base64url JSON object "
				    "(duplicate keys are refused)");
		rc = -EINVAL;
		goto out;
	}
	iss = json_string_value(json_object_get(pl, "iss"));
	ii = issuer_index(id, iss);
	if (ii < 0) {
		err_set(err, errlen, "issuer \"%s\" is not trusted (see identity.issuers)",
		       iss ? printable(iss, strlen(iss), pbuf, sizeof(pbuf)) : "(none)");
		rc = -EPERM;
		goto out;
	}
	is = &id->conf.issuers[ii];
	if (!(is->algs & alg)) {
		err_set(err, errlen, "alg %s is not allowed for issuer %s", algname, is->issuer);
		rc = -EPERM;
		goto out;
	}
	pthread_mutex_lock(&id->st[ii].mu);
	if (jwks_file_sync(id, ii, 0, err, errlen))
		log_warn(MOD, "issuer %s: JWKS file reload failed, cached keys kept: %s",
			 is->issuer, err);
	pthread_mutex_unlock(&id->st[ii].mu);

	tok = malloc(len + 1);
	pem = malloc(MAX_PEM);
	if (!tok || !pem) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(tok, token, len);
	tok[len] = '\0';
	pos = 0;
	found = key_lookup(id, ii, alg, kid, &pos, pem, &pem_len);
	if (!found) {
		char rerr[256] = "";

		rc = jwks_refresh(id, ii, now, rerr, sizeof(rerr));
		pos = 0;
		found = key_lookup(id, ii, alg, kid, &pos, pem, &pem_len);
		if (!found) {
			err_set(err, errlen, "no %s key%s%s%s for issuer %s%s%s",
			       alg == IDENTITY_ALG_RS256 ? "RSA" : "EC P-256",
			       kid ? " with kid \"" : "",
			       kid ? printable(kid, strlen(kid), pbuf, sizeof(pbuf)) : "",
			       kid ? "\"" : "", is->issuer, rc ? "; refresh: " : "", rc ? rerr : "");
			rc = -ENOKEY;
			goto out;
		}
	}
	rc = -EPERM;
	err_set(err, errlen, "signature does not verify with the issuer's key%s%s%s",
	       kid ? " \"" : "", kid ? printable(kid, strlen(kid), pbuf, sizeof(pbuf)) : "",
	       kid ? "\"" : "");
	while (found && tried < IDENTITY_MAX_KEYS) {
		tried++;
		if (!jwt_decode(&jwt, tok, (const unsigned char *)pem, (int)pem_len) && jwt &&
		    jwt_get_alg(jwt) == (alg == IDENTITY_ALG_RS256 ? JWT_ALG_RS256 : JWT_ALG_ES256)) {
			rc = 0;
			break;
		}
		jwt_free(jwt);
		jwt = NULL;
		if (kid) /* kid names one key: no trying others */
			break;
		found = key_lookup(id, ii, alg, NULL, &pos, pem, &pem_len);
	}
	if (rc)
		goto out;
	rc = check_claims(is, pl, now, err, errlen);
	if (rc)
		goto out;
	if (is->groups_claim &&
	    take_groups(json_object_get(pl, is->groups_claim), is->groups_claim, out, err,
			errlen)) {
		rc = -EPERM;
		goto out;
	}
	out->sub = json_string_value(json_object_get(pl, "sub"));
	out->iss = iss;
	out->exp = (time_t)json_number_value(json_object_get(pl, "exp"));
	out->claims = pl;
	out->own = pl;
	pl = NULL;
	if (err && errlen)
		err[0] = '\0';
out:
	if (rc)
		memset(out, 0, sizeof(*out));
	jwt_free(jwt);
	free(tok);
	if (pem)
		OPENSSL_cleanse(pem, MAX_PEM);
	free(pem);
	json_decref(hdr);
	json_decref(pl);
	return rc;
}

/* ---- sluice tokens ------------------------------------------------------------------ */

int identity_issue_token(const struct identity *id, const struct identity_claims *who,
			 uint64_t cgroup_id, int ttl_s, const char *sa, time_t now, char *out,
			 size_t outlen)
{
	json_t *p, *groups;
	char cg[24], *js;
	unsigned char mac[32];
	unsigned maclen = sizeof(mac);
	long long exp;
	size_t pre = strlen(TOKEN_PREFIX);
	int i, n, m;

	if (!who || !who->sub || !who->iss)
		return -EINVAL;
	if (ttl_s <= 0 || ttl_s > id->conf.token_ttl_s)
		ttl_s = id->conf.token_ttl_s;
	exp = (long long)now + ttl_s;
	if (who->exp && (long long)who->exp < exp)
		exp = who->exp;
	if (exp <= (long long)now)
		return -EINVAL;
	snprintf(cg, sizeof(cg), "%llu", (unsigned long long)cgroup_id);
	groups = json_array();
	for (i = 0; i < who->n_groups; i++)
		json_array_append_new(groups, json_string(who->groups[i]));
	p = json_pack("{s:i, s:s, s:s, s:o, s:s, s:I, s:I}", "v", 1, "sub", who->sub, "iss",
		      who->iss, "groups", groups, "cg", cg, "iat", (json_int_t)now, "exp",
		      (json_int_t)exp);
	if (!p)
		return -ENOMEM;
	if (who->claims)
		json_object_set(p, "claims", who->claims);
	if (sa)
		json_object_set_new(p, "sa", json_string(sa));
	js = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	if (!js)
		return -ENOMEM;
	if (outlen < pre + 1) {
		free(js);
		return -ENOSPC;
	}
	memcpy(out, TOKEN_PREFIX, pre);
	n = identity_b64url_encode(js, strlen(js), out + pre, outlen - pre);
	free(js);
	if (n < 0)
		return n;
	n += (int)pre;
	if (!HMAC(EVP_sha256(), id->hmac_key, HMAC_KEY_LEN, (unsigned char *)out, (size_t)n, mac,
		  &maclen))
		return -EIO;
	if ((size_t)n + 1 >= outlen)
		return -ENOSPC;
	out[n++] = '.';
	m = identity_b64url_encode(mac, maclen, out + n, outlen - (size_t)n);
	if (m < 0)
		return m;
	if (n + m > IDENTITY_MAX_SLUICE_TOKEN)
		return -ENOSPC;
	return n + m;
}

int identity_check_token(const struct identity *id, const char *token, size_t len,
			 uint64_t cgroup_id, time_t now, struct identity_claims *out, char *err,
			 size_t errlen)
{
	size_t pre = strlen(TOKEN_PREFIX);
	const char *dot, *cg, *sub, *iss;
	unsigned char mac[32], got[40];
	unsigned maclen = sizeof(mac);
	json_t *p, *exp;
	char *end;
	unsigned long long bound;

	memset(out, 0, sizeof(*out));
	if (len <= pre || len > IDENTITY_MAX_SLUICE_TOKEN || memcmp(token, TOKEN_PREFIX, pre)) {
		err_set(err, errlen, "not a sluice token (get one from the STS token exchange)");
		return -EINVAL;
	}
	dot = memrchr(token + pre, '.', len - pre);
	if (!dot || identity_b64url_decode(dot + 1, len - (size_t)(dot + 1 - token), got,
					   sizeof(got)) != 32) {
		err_set(err, errlen, "malformed sluice token");
		return -EINVAL;
	}
	if (!HMAC(EVP_sha256(), id->hmac_key, HMAC_KEY_LEN, (const unsigned char *)token,
		  (size_t)(dot - token), mac, &maclen) ||
	    CRYPTO_memcmp(mac, got, 32)) {
		err_set(err, errlen, "sluice token refused: bad signature (forged, altered, or "
				    "issued before sluiced restarted with a new key)");
		return -EPERM;
	}
	p = b64_json(token + pre, (size_t)(dot - token) - pre, IDENTITY_MAX_SLUICE_TOKEN);
	exp = p ? json_object_get(p, "exp") : NULL;
	cg = p ? json_string_value(json_object_get(p, "cg")) : NULL;
	sub = p ? json_string_value(json_object_get(p, "sub")) : NULL;
	iss = p ? json_string_value(json_object_get(p, "iss")) : NULL;
	if (!p || !json_is_integer(exp) || !cg || !sub || !iss ||
	    json_integer_value(json_object_get(p, "v")) != 1) {
		json_decref(p);
		err_set(err, errlen, "malformed sluice token payload");
		return -EINVAL;
	}
	if ((long long)now >= json_integer_value(exp)) {
		err_set(err, errlen, "sluice token expired %lld s ago: exchange a fresh subject "
				    "token", (long long)now - json_integer_value(exp));
		json_decref(p);
		return -ETIMEDOUT;
	}
	errno = 0;
	bound = strtoull(cg, &end, 10);
	if (errno || *end || bound != cgroup_id) {
		err_set(err, errlen, "sluice token refused: it was issued to another container "
				    "(cgroup %s) and is presented from cgroup %llu; tokens cannot "
				    "be shared between containers", cg,
		       (unsigned long long)cgroup_id);
		json_decref(p);
		return -EPERM;
	}
	out->own = p;
	out->sub = sub;
	out->iss = iss;
	out->exp = (time_t)json_integer_value(exp);
	out->cgroup_id = bound;
	out->service_account = json_string_value(json_object_get(p, "sa"));
	out->claims = json_object_get(p, "claims");
	if (take_groups(json_object_get(p, "groups"), "groups", out, err, errlen)) {
		identity_claims_free(out);
		return -EINVAL;
	}
	return 0;
}

int identity_is_google_token(const char *t, size_t len)
{
	const char *d1, *d2;
	json_t *p;
	const char *iss;
	int google = 0;

	if ((len > 5 && !memcmp(t, "ya29.", 5)) || (len > 3 && !memcmp(t, "1//", 3)) ||
	    (len == 39 && !memcmp(t, "AIza", 4)))
		return 1;
	d1 = memchr(t, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - t)) : NULL;
	if (!d2 || len > IDENTITY_MAX_TOKEN)
		return 0;
	p = b64_json(d1 + 1, (size_t)(d2 - d1 - 1), IDENTITY_MAX_TOKEN);
	iss = p ? json_string_value(json_object_get(p, "iss")) : NULL;
	google = iss && (!strcmp(iss, "https://accounts.google.com") ||
			 !strcmp(iss, "accounts.google.com"));
	json_decref(p);
	return google;
}

/* The token of a "Bearer X" header value into *<tok> and *<len>. Returns 0 or -1. */
static int bearer(const char *authz, const char **tok, size_t *len)
{
	const char *s;

	if (!authz || strncasecmp(authz, "Bearer ", 7))
		return -1;
	s = authz + 7;
	while (*s == ' ')
		s++;
	*tok = s;
	*len = strlen(s);
	while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
		(*len)--;
	return *len ? 0 : -1;
}

int identity_check_bearer(const struct identity *id, const char *authz, uint64_t cgroup_id,
			  time_t now, struct identity_claims *out, char *err, size_t errlen)
{
	const char *tok;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (bearer(authz, &tok, &len)) {
		err_set(err, errlen, "no bearer token: get one from the STS token exchange with "
				    "the agent's OIDC token");
		return -EACCES;
	}
	if (identity_is_google_token(tok, len)) {
		err_set(err, errlen, "a Google credential was presented: the agent should not hold "
				    "Google credentials; exchange its OIDC token for a sluice "
				    "token instead");
		return -EPERM;
	}
	if (len > strlen(TOKEN_PREFIX) && !memcmp(tok, TOKEN_PREFIX, strlen(TOKEN_PREFIX)))
		return identity_check_token(id, tok, len, cgroup_id, now, out, err, errlen);
	if (id->conf.allow_oidc_bearer)
		return identity_verify_jwt(id, tok, len, now, out, err, errlen);
	err_set(err, errlen, "not a sluice token: exchange the agent's OIDC token at the STS "
			    "endpoint first");
	return -EINVAL;
}

/* ---- STS and IAM Credentials ----------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode <in>/<len> ('+' is a space when <plus>) into a new string, NULL when
 * malformed or containing NUL. */
static char *pct_decode(const char *in, size_t len, int plus)
{
	char *o = malloc(len + 1);
	size_t i, n = 0;
	int h, l;

	if (!o)
		return NULL;
	for (i = 0; i < len; i++) {
		if (in[i] == '%') {
			if (i + 2 >= len) {
				free(o);
				return NULL;
			}
			h = hexval(in[i + 1]);
			l = hexval(in[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(o);
				return NULL;
			}
			o[n++] = (char)(h << 4 | l);
			i += 2;
		} else {
			o[n++] = plus && in[i] == '+' ? ' ' : in[i];
		}
	}
	o[n] = '\0';
	return o;
}

static const char *const sts_params[] = {
	"grant_type", "subject_token", "subject_token_type", "audience", "scope",
	"requested_token_type", "resource", "actor_token", "actor_token_type", "options", NULL
};
enum { P_GRANT, P_SUBJECT, P_SUBJECT_TYPE, P_AUDIENCE, P_SCOPE, P_REQ_TYPE, P_N = 10 };

/* Write an OAuth error response. Returns <rc>. */
static int oauth_error(char *out, size_t outlen, int *status, int code, const char *error,
		       const char *desc, int rc)
{
	json_t *j = json_pack("{s:s, s:s}", "error", error, "error_description", desc);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	*status = code;
	if (s && strlen(s) < outlen)
		strcpy(out, s);
	else if (outlen)
		snprintf(out, outlen, "{\"error\":\"%s\"}", error);
	free(s);
	json_decref(j);
	return rc;
}

int identity_sts_exchange(const struct identity *id, const char *body, size_t len,
			  uint64_t cgroup_id, time_t now, char *json_out, size_t outlen,
			  int *http_status)
{
	char *v[P_N] = { 0 }, *tok = NULL, *key, *s;
	char err[512], desc[600];
	const char *p = body, *end = body + len, *amp, *eq;
	struct identity_claims who;
	json_t *j;
	int i, n, rc;

	memset(&who, 0, sizeof(who));
	if (len > IDENTITY_MAX_FORM)
		return oauth_error(json_out, outlen, http_status, 400, "invalid_request",
				   "request body too large", -E2BIG);
	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (!amp)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (amp > p) {
			key = pct_decode(p, (size_t)((eq ? eq : amp) - p), 1);
			s = eq ? pct_decode(eq + 1, (size_t)(amp - eq - 1), 1) : strdup("");
			for (i = 0; key && sts_params[i] && strcmp(sts_params[i], key); i++)
				;
			if (!key || !s) {
				rc = oauth_error(json_out, outlen, http_status, 400,
						 "invalid_request", "malformed form encoding", -EINVAL);
				free(key);
				free(s);
				goto out;
			}
			if (sts_params[i] && v[i]) {
				snprintf(desc, sizeof(desc), "parameter %s given twice",
					 sts_params[i]);
				free(key);
				free(s);
				rc = oauth_error(json_out, outlen, http_status, 400,
						 "invalid_request", desc, -EINVAL);
				goto out;
			}
			if (sts_params[i])
				v[i] = s;
			else
				free(s);
			free(key);
		}
		p = amp + 1;
	}
	if (!v[P_GRANT] || strcmp(v[P_GRANT], "urn:ietf:params:oauth:grant-type:token-exchange")) {
		rc = oauth_error(json_out, outlen, http_status, 400, "unsupported_grant_type",
				 "grant_type must be urn:ietf:params:oauth:grant-type:token-exchange",
				 -EINVAL);
		goto out;
	}
	if (!v[P_SUBJECT] || !*v[P_SUBJECT]) {
		rc = oauth_error(json_out, outlen, http_status, 400, "invalid_request",
				 "subject_token is required", -EINVAL);
		goto out;
	}
	if (!v[P_SUBJECT_TYPE] ||
	    (strcmp(v[P_SUBJECT_TYPE], "urn:ietf:params:oauth:token-type:jwt") &&
	     strcmp(v[P_SUBJECT_TYPE], "urn:ietf:params:oauth:token-type:id_token"))) {
		rc = oauth_error(json_out, outlen, http_status, 400, "invalid_request",
				 "subject_token_type must be urn:ietf:params:oauth:token-type:jwt "
				 "or urn:ietf:params:oauth:token-type:id_token (sluice accepts OIDC "
				 "tokens only)", -EINVAL);
		goto out;
	}
	if (v[P_REQ_TYPE] &&
	    strcmp(v[P_REQ_TYPE], "urn:ietf:params:oauth:token-type:access_token")) {
		rc = oauth_error(json_out, outlen, http_status, 400, "invalid_request",
				 "requested_token_type must be "
				 "urn:ietf:params:oauth:token-type:access_token", -EINVAL);
		goto out;
	}
	if (id->conf.sts_audience &&
	    (!v[P_AUDIENCE] || strcmp(v[P_AUDIENCE], id->conf.sts_audience))) {
		snprintf(desc, sizeof(desc), "audience must be %s", id->conf.sts_audience);
		rc = oauth_error(json_out, outlen, http_status, 400, "invalid_target", desc,
				 -EPERM);
		goto out;
	}
	if (identity_is_google_token(v[P_SUBJECT], strlen(v[P_SUBJECT]))) {
		rc = oauth_error(json_out, outlen, http_status, 400, "invalid_grant",
				 "sluice: the subject token is a Google credential: the agent "
				 "should not hold Google credentials", -EPERM);
		goto out;
	}
	rc = identity_verify_jwt(id, v[P_SUBJECT], strlen(v[P_SUBJECT]), now, &who, err,
				 sizeof(err));
	if (rc) {
		snprintf(desc, sizeof(desc), "sluice: subject token refused: %s", err);
		rc = oauth_error(json_out, outlen, http_status, 400, "invalid_grant", desc, rc);
		goto out;
	}
	tok = malloc(IDENTITY_MAX_SLUICE_TOKEN + 1);
	n = tok ? identity_issue_token(id, &who, cgroup_id, 0, NULL, now, tok,
				       IDENTITY_MAX_SLUICE_TOKEN + 1)
		: -ENOMEM;
	if (n < 0) {
		rc = oauth_error(json_out, outlen, http_status, 500, "server_error",
				 "sluice could not issue a token", n);
		goto out;
	}
	j = json_pack("{s:s, s:s, s:s, s:I}", "access_token", tok, "issued_token_type",
		      "urn:ietf:params:oauth:token-type:access_token", "token_type", "Bearer",
		      "expires_in",
		      (json_int_t)(who.exp && who.exp - now < id->conf.token_ttl_s
					   ? who.exp - now
					   : id->conf.token_ttl_s));
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s || strlen(s) >= outlen) {
		free(s);
		*http_status = 500;
		rc = -ENOSPC;
		goto out;
	}
	strcpy(json_out, s);
	free(s);
	*http_status = 200;
	log_info(MOD, "sts: issued a token to %s (%s) for cgroup %llu", who.sub, who.iss,
		 (unsigned long long)cgroup_id);
	rc = 0;
out:
	identity_claims_free(&who);
	for (i = 0; i < P_N; i++) {
		if (v[i])
			OPENSSL_cleanse(v[i], strlen(v[i]));
		free(v[i]);
	}
	free(tok);
	return rc;
}

/* Write a Google API error {"error": {"code", "message", "status"}}. Returns <rc>. */
static int google_error(char *out, size_t outlen, int *status, int code, const char *st,
			const char *msg, int rc)
{
	json_t *j = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", code, "message", msg,
			      "status", st);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	*status = code;
	if (s && strlen(s) < outlen)
		strcpy(out, s);
	else if (outlen)
		snprintf(out, outlen, "{\"error\":{\"code\":%d}}", code);
	free(s);
	json_decref(j);
	return rc;
}

/* The service account of "/v1/projects/P/serviceAccounts/SA:generateAccessToken" into a new
 * string, NULL when <path> is not that. */
static char *iam_sa(const char *path)
{
	static const char pre[] = "/v1/projects/", mid[] = "/serviceAccounts/",
			  suf[] = ":generateAccessToken";
	const char *p, *sa, *end;

	if (!path || strncmp(path, pre, sizeof(pre) - 1))
		return NULL;
	p = path + sizeof(pre) - 1;
	p = strchr(p, '/');
	if (!p || p == path + sizeof(pre) - 1 || strncmp(p, mid, sizeof(mid) - 1))
		return NULL;
	sa = p + sizeof(mid) - 1;
	end = sa + strlen(sa);
	if ((size_t)(end - sa) <= sizeof(suf) - 1 ||
	    strcmp(end - (sizeof(suf) - 1), suf))
		return NULL;
	end -= sizeof(suf) - 1;
	if (memchr(sa, '/', (size_t)(end - sa)))
		return NULL;
	return pct_decode(sa, (size_t)(end - sa), 0);
}

int identity_iam_generate_access_token(const struct identity *id, const char *path,
				       const char *authz, const char *body, size_t len,
				       uint64_t cgroup_id, time_t now, char *json_out,
				       size_t outlen, int *http_status)
{
	struct identity_claims who;
	char err[512], msg[700], when[32], *sa, *tok = NULL, *s;
	json_t *req = NULL, *scope, *lt, *j;
	long long lifetime = 3600;
	const char *ls;
	struct tm tm;
	time_t exp;
	int rc, n;

	memset(&who, 0, sizeof(who));
	sa = iam_sa(path);
	if (!sa)
		return google_error(json_out, outlen, http_status, 404, "NOT_FOUND",
				    "sluice: not a generateAccessToken path", -ENOENT);
	rc = identity_check_bearer(id, authz, cgroup_id, now, &who, err, sizeof(err));
	if (rc) {
		snprintf(msg, sizeof(msg), "sluice: %s", err);
		rc = google_error(json_out, outlen, http_status,
				  rc == -EPERM && strstr(err, "another container") ? 403 : 401,
				  rc == -EPERM && strstr(err, "another container")
					  ? "PERMISSION_DENIED"
					  : "UNAUTHENTICATED",
				  msg, rc);
		goto out;
	}
	req = len <= IDENTITY_MAX_FORM ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)
				       : NULL;
	scope = json_object_get(req, "scope");
	if (!json_is_object(req) || !json_is_array(scope) || !json_array_size(scope)) {
		rc = google_error(json_out, outlen, http_status, 400, "INVALID_ARGUMENT",
				  "sluice: the body must be a JSON object with a non-empty "
				  "\"scope\" array", -EINVAL);
		goto out;
	}
	lt = json_object_get(req, "lifetime");
	if (lt) {
		char *e;

		ls = json_string_value(lt);
		lifetime = ls ? strtoll(ls, &e, 10) : -1;
		if (!ls || e == ls || strcmp(e, "s") || lifetime < 1 || lifetime > 43200) {
			rc = google_error(json_out, outlen, http_status, 400, "INVALID_ARGUMENT",
					  "sluice: lifetime must be \"Ns\" with N from 1 to 43200",
					  -EINVAL);
			goto out;
		}
	}
	tok = malloc(IDENTITY_MAX_SLUICE_TOKEN + 1);
	n = tok ? identity_issue_token(id, &who, cgroup_id, (int)lifetime, sa, now, tok,
				       IDENTITY_MAX_SLUICE_TOKEN + 1)
		: -ENOMEM;
	if (n < 0) {
		rc = google_error(json_out, outlen, http_status, 500, "INTERNAL",
				  "sluice could not issue a token", n);
		goto out;
	}
	exp = now + (lifetime < id->conf.token_ttl_s ? lifetime : id->conf.token_ttl_s);
	if (who.exp && who.exp < exp)
		exp = who.exp;
	gmtime_r(&exp, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	j = json_pack("{s:s, s:s}", "accessToken", tok, "expireTime", when);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s || strlen(s) >= outlen) {
		free(s);
		*http_status = 500;
		rc = -ENOSPC;
		goto out;
	}
	strcpy(json_out, s);
	free(s);
	*http_status = 200;
	rc = 0;
out:
	identity_claims_free(&who);
	json_decref(req);
	free(tok);
	free(sa);
	return rc;
}

/* ---- configuration and lifecycle --------------------------------------------------- */




static char *cstr(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key, int required)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	snprintf(kp, sizeof(kp), "%s.%s", path, key);
	if (!v || json_is_null(v)) {
		if (required)
			jsonpos_fail(c, kp, "required: a non-empty string");
		return NULL;
	}
	if (!json_is_string(v) || !*json_string_value(v)) {
		jsonpos_fail(c, kp, "must be a non-empty string");
		return NULL;
	}
	return strdup(json_string_value(v));
}

static long long cint(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key,
		      long long min, long long max, long long dflt)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	if (!v)
		return dflt;
	snprintf(kp, sizeof(kp), "%s.%s", path, key);
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		jsonpos_fail(c, kp, "must be an integer between %lld and %lld", min, max);
		return dflt;
	}
	return json_integer_value(v);
}

int identity_conf_load(json_t *obj, const char *path, const char *file, const char *text,
		       size_t len, struct identity_conf *out, char *err, size_t errlen)
{
	static const char *const top[] = { "issuers", "token_ttl_s", "refresh_interval_s",
					   "hmac_key_file", "sts_audience",
					   "allow_oidc_bearer", NULL };
	static const char *const ikeys[] = { "issuer", "audience", "jwks_file", "jwks_uri",
					     "algs", "groups_claim", "leeway_s", NULL };
	struct jsonpos_ctx c = { file ? file : "(config)", text, len, err, errlen, 0 };
	json_t *iss, *e, *a, *b;
	char ip[256], kp[300];
	size_t i, k;

	memset(out, 0, sizeof(*out));
	out->token_ttl_s = IDENTITY_DEFAULT_TTL;
	out->refresh_interval_s = IDENTITY_DEFAULT_REFRESH;
	if (!obj)
		return 0;
	if (!json_is_object(obj)) {
		jsonpos_fail(&c, path, "must be an object ({...})");
		return -EINVAL;
	}
	jsonpos_known_keys(&c, obj, path, top);
	out->token_ttl_s = (int)cint(&c, obj, path, "token_ttl_s", 60, 43200, IDENTITY_DEFAULT_TTL);
	out->refresh_interval_s = (int)cint(&c, obj, path, "refresh_interval_s", 1, 86400,
					    IDENTITY_DEFAULT_REFRESH);
	out->hmac_key_file = cstr(&c, obj, path, "hmac_key_file", 0);
	out->sts_audience = cstr(&c, obj, path, "sts_audience", 0);
	b = json_object_get(obj, "allow_oidc_bearer");
	if (b && !json_is_boolean(b)) {
		snprintf(kp, sizeof(kp), "%s.allow_oidc_bearer", path);
		jsonpos_fail(&c, kp, "must be true or false");
	}
	out->allow_oidc_bearer = json_is_true(b);
	iss = json_object_get(obj, "issuers");
	if (iss && (!json_is_array(iss) || json_array_size(iss) > IDENTITY_MAX_ISSUERS)) {
		snprintf(kp, sizeof(kp), "%s.issuers", path);
		jsonpos_fail(&c, kp, "must be an array of at most %d issuer objects",
		      IDENTITY_MAX_ISSUERS);
		iss = NULL;
	}
	json_array_foreach(iss, i, e) {
		struct identity_issuer *is = &out->issuers[out->n_issuers++];

		snprintf(ip, sizeof(ip), "%s.issuers[%zu]", path, i);
		if (!json_is_object(e)) {
			jsonpos_fail(&c, ip, "must be an object with issuer, audience and jwks_file "
				      "or jwks_uri");
			continue;
		}
		jsonpos_known_keys(&c, e, ip, ikeys);
		is->issuer = cstr(&c, e, ip, "issuer", 1);
		is->audience = cstr(&c, e, ip, "audience", 1);
		is->jwks_file = cstr(&c, e, ip, "jwks_file", 0);
		is->jwks_uri = cstr(&c, e, ip, "jwks_uri", 0);
		is->groups_claim = cstr(&c, e, ip, "groups_claim", 0);
		is->leeway_s = (int)cint(&c, e, ip, "leeway_s", 0, 600, IDENTITY_DEFAULT_LEEWAY);
		if (!is->jwks_file && !is->jwks_uri)
			jsonpos_fail(&c, ip, "needs jwks_file or jwks_uri: where the issuer's keys are");
		if (is->jwks_uri && strncmp(is->jwks_uri, "https://", 8)) {
			snprintf(kp, sizeof(kp), "%s.jwks_uri", ip);
			jsonpos_fail(&c, kp, "must be an https:// URL");
		}
		for (k = 0; is->issuer && k < i; k++)
			if (out->issuers[k].issuer && !strcmp(out->issuers[k].issuer, is->issuer)) {
				snprintf(kp, sizeof(kp), "%s.issuer", ip);
				jsonpos_fail(&c, kp, "issuer \"%s\" is listed twice", is->issuer);
			}
		a = json_object_get(e, "algs");
		snprintf(kp, sizeof(kp), "%s.algs", ip);
		if (a && (!json_is_array(a) || !json_array_size(a)))
			jsonpos_fail(&c, kp, "must be a non-empty array of \"RS256\" and \"ES256\"");
		json_array_foreach(a, k, b) {
			unsigned x = json_is_string(b) ? (unsigned)alg_of(json_string_value(b)) : 0;

			if (!x)
				jsonpos_fail(&c, kp, "only \"RS256\" and \"ES256\" are accepted (never none "
					      "or HS*)");
			is->algs |= x;
		}
		if (!is->algs)
			is->algs = IDENTITY_ALG_RS256 | IDENTITY_ALG_ES256;
	}
	if (c.failed) {
		identity_conf_free(out);
		return -EINVAL;
	}
	return 0;
}

void identity_conf_free(struct identity_conf *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->n_issuers; i++) {
		free(c->issuers[i].issuer);
		free(c->issuers[i].audience);
		free(c->issuers[i].jwks_file);
		free(c->issuers[i].jwks_uri);
		free(c->issuers[i].groups_claim);
	}
	free(c->hmac_key_file);
	free(c->sts_audience);
	memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Load the HMAC key from <path> (refused unless owned by us and 0600-ish), or create it.
 * Returns 0 or -errno with <err>. */
static int hmac_key_file(const char *path, unsigned char *key, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			err_set(err, errlen, "%s: cannot create: %s", path, strerror(errno));
			return -errno;
		}
		if (RAND_bytes(key, HMAC_KEY_LEN) != 1 ||
		    write(fd, key, HMAC_KEY_LEN) != HMAC_KEY_LEN || fsync(fd)) {
			close(fd);
			unlink(path);
			err_set(err, errlen, "%s: cannot write the token key", path);
			return -EIO;
		}
		close(fd);
		return 0;
	}
	if (fd < 0) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		err_set(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077 || st.st_uid != geteuid()) {
		close(fd);
		err_set(err, errlen, "%s: the token key is accessible by group or others, or not "
				    "owned by this user (mode %04o): chmod 600 it", path,
		       (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	n = read(fd, key, HMAC_KEY_LEN);
	close(fd);
	if (n != HMAC_KEY_LEN) {
		err_set(err, errlen, "%s: the token key must be %d bytes", path, HMAC_KEY_LEN);
		return -EINVAL;
	}
	return 0;
}

struct identity *identity_new(const struct identity_conf *conf, char *err, size_t errlen)
{
	struct identity *id = calloc(1, sizeof(*id));
	int i;

	if (!id) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&id->fetch_mu, NULL);
	id->conf = *conf;
	if (!id->conf.token_ttl_s)
		id->conf.token_ttl_s = IDENTITY_DEFAULT_TTL;
	if (!id->conf.refresh_interval_s)
		id->conf.refresh_interval_s = IDENTITY_DEFAULT_REFRESH;
	id->conf.hmac_key_file = dup_or_null(conf->hmac_key_file);
	id->conf.sts_audience = dup_or_null(conf->sts_audience);
	for (i = 0; i < conf->n_issuers; i++) {
		struct identity_issuer *d = &id->conf.issuers[i];
		const struct identity_issuer *s = &conf->issuers[i];

		pthread_mutex_init(&id->st[i].mu, NULL);
		d->issuer = dup_or_null(s->issuer);
		d->audience = dup_or_null(s->audience);
		d->jwks_file = dup_or_null(s->jwks_file);
		d->jwks_uri = dup_or_null(s->jwks_uri);
		d->groups_claim = dup_or_null(s->groups_claim);
		if (!d->algs)
			d->algs = IDENTITY_ALG_RS256 | IDENTITY_ALG_ES256;
	}
	for (i = 0; i < conf->n_issuers; i++) {
		if (!id->conf.issuers[i].issuer || !id->conf.issuers[i].audience) {
			err_set(err, errlen, "issuer %d: issuer and audience are required", i);
			goto fail;
		}
		if (id->conf.issuers[i].jwks_file && jwks_file_sync(id, i, 1, err, errlen))
			goto fail;
	}
	if (id->conf.hmac_key_file) {
		if (hmac_key_file(id->conf.hmac_key_file, id->hmac_key, err, errlen))
			goto fail;
	} else if (RAND_bytes(id->hmac_key, HMAC_KEY_LEN) != 1) {
		err_set(err, errlen, "no random bytes for the token key");
		goto fail;
	}
	return id;
fail:
	identity_free(id);
	return NULL;
}

void identity_free(struct identity *id)
{
	int i;

	if (!id)
		return;
	for (i = 0; i < id->conf.n_issuers; i++)
		pthread_mutex_destroy(&id->st[i].mu);
	pthread_mutex_destroy(&id->fetch_mu);
	identity_conf_free(&id->conf);
	OPENSSL_cleanse(id->hmac_key, sizeof(id->hmac_key));
	free(id);
}

void identity_set_fetch(struct identity *id, identity_fetch_fn fn, void *arg)
{
	pthread_mutex_lock(&id->fetch_mu);
	id->fetch = fn;
	id->fetch_arg = arg;
	pthread_mutex_unlock(&id->fetch_mu);
}
