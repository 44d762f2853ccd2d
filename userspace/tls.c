/* tls.c - the local CA, leaf minting with a thread-safe LRU cache, the two SSL_CTXs and
 * connections driven through a BIO of sluice's own (OpenSSL 3.0).
 *
 * Connections never touch a socket: ciphertext goes in through tls_conn_feed and comes
 * out through the sink the caller attached (its send queue) or tls_conn_take_out;
 * sluiced's io_uring loop moves it. The BIO is a pair of plain byte queues, not OpenSSL's
 * memory BIOs, which zero every byte they grow by and cost a second copy of every record
 * on the way out. Every OpenSSL call is preceded by ERR_clear_error() and followed by
 * clearing again once a reason has been taken, because the error queue is per thread and
 * a worker thread serves many connections. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "tls.h"
#include "tlshello.h"

#define LEAF_BUCKETS 2048 /* power of two, about 2 * TLS_LEAF_CACHE */
#define CA_LIFETIME (10L * 36525 * 864) /* 10 years of 365.25 days, in seconds */

/* TLS 1.2 suites: forward secret AEAD only. TLS 1.3 keeps OpenSSL's (all AEAD). */
static const char ciphers12[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct tls_ca {
	X509 *cert;
	EVP_PKEY *key;
};

struct leaf {
	char sni[256];
	X509 *cert;               /* the cache's reference */
	time_t minted;            /* when it was signed */
	struct leaf *hnext;       /* hash chain */
	struct leaf *prev, *next; /* LRU list, most recently used first */
};

struct tls_server {
	SSL_CTX *ctx;
	X509 *ca_cert;
	EVP_PKEY *ca_key, *leaf_key; /* one key for every leaf: minting is one signature */
	pthread_mutex_t lock;        /* guards the cache below */
	struct leaf *buckets[LEAF_BUCKETS];
	struct leaf *lru_head, *lru_tail;
	int n_leaves;
};

struct tls_client {
	SSL_CTX *ctx;
};

struct tls_conn {
	SSL *ssl;                 /* owns the BIO */
	struct buf in;            /* ciphertext fed; p[off..len) not yet read by OpenSSL */
	struct buf out;           /* ciphertext written while no sink is attached */
	tls_sink_fn sink;         /* where ciphertext goes as it is written, or NULL */
	void *sink_arg;
	int is_server, failed;
	int busy;                 /* carries requests: record buffers kept (tls_conn_trim) */
	char name[256];           /* server: the SNI it serves; client: the host it verifies */
	char alpn[32];
	char why[384];            /* why the connection failed */
};

/* <in> (may be NULL), cut to 80 bytes with anything not printable ASCII as '?', for
 * messages that quote a name that failed validation. */
static const char *printable(const char *in, char *out, size_t outlen)
{
	size_t i;

	if (!in)
		return "(null)";
	for (i = 0; in[i] && i < 80 && i + 1 < outlen; i++)
		out[i] = in[i] > 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
	return out;
}

/* OpenSSL's reason for the last error of this thread, which is then cleared. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r)
		snprintf(buf, len, "%s", r);
	else if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

static void ossl_err(char *err, size_t errlen, const char *what)
{
	char r[200];

	err_set(err, errlen, "%s: %s", what, ossl_reason(r, sizeof(r)));
}

/* Never prompt for a pass phrase: sluice keys are not encrypted. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* --- certificates ------------------------------------------------------------------- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* A new v3 certificate: random 128-bit serial, subject CN <cn> (NULL: empty subject),
 * issued by <issuer> (NULL: itself), valid from 1 h ago for <secs>, public key <pub>.
 * Returns it (caller frees) or NULL with OpenSSL's error queue set. */
static X509 *new_cert(const char *cn, X509 *issuer, long secs, EVP_PKEY *pub)
{
	unsigned char rnd[16];
	X509 *x = X509_new();
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
	BIGNUM *bn = NULL;
	int ok;

	ok = x && RAND_bytes(rnd, sizeof(rnd)) == 1 && X509_set_version(x, X509_VERSION_3);
	ok = ok && (bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) &&
	     BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	ok = ok && (!cn || X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						       (const unsigned char *)cn, -1, -1, 0));
	ok = ok && X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), secs) && X509_set_pubkey(x, pub);
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Write <key> or <cert> as PEM to <path>, whole or not at all and never over an existing
 * file: into a temporary file beside it (mkstemp: O_EXCL, mode 0600 from creation), then
 * chmod <mode>, fsync, and link(2) to <path>, which fails with EEXIST atomically. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert, char *err,
		     size_t errlen)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd, rc = 0, ok;

	errno = 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
		err_set(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkstemp(tmp);
	if (fd < 0 || fchmod(fd, mode) || !(f = fdopen(fd, "w"))) {
		rc = -errno;
		err_set(err, errlen, "cannot create a file beside %s: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return rc;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
	ERR_clear_error();
	if (!ok || fflush(f) || fsync(fd))
		rc = errno ? -errno : -EIO;
	if (fclose(f) && !rc)
		rc = -errno;
	if (rc)
		err_set(err, errlen, "cannot write %s: %s", tmp, strerror(-rc));
	else if (link(tmp, path)) {
		rc = -errno;
		if (rc == -EEXIST)
			err_set(err, errlen, "%s appeared while the CA was being created; it was "
					     "not overwritten", path);
		else
			err_set(err, errlen, "cannot create %s: %s", path, strerror(errno));
	}
	unlink(tmp);
	return rc;
}

/* Builds the nameConstraints value from validated suffixes; a leading '.' is kept (it
 * permits subdomains only). Returns 0 or -EINVAL with <err>. */
static int name_constraints(char *out, size_t outlen, const char *const *permitted, int n,
			    char *err, size_t errlen)
{
	char name[256];
	size_t off;
	int i, dot;

	if (n < 1 || n > TLS_CA_MAX_PERMIT || !permitted) {
		err_set(err, errlen, "between 1 and %d permitted DNS suffixes are needed, e.g. "
				     "googleapis.com", TLS_CA_MAX_PERMIT);
		return -EINVAL;
	}
	off = (size_t)snprintf(out, outlen, "critical");
	for (i = 0; i < n; i++) {
		dot = permitted[i] && permitted[i][0] == '.';
		if (!permitted[i] ||
		    tlshello_hostname(permitted[i] + dot, strlen(permitted[i] + dot), name,
				      sizeof(name))) {
			err_set(err, errlen, "permitted suffix \"%s\" is not a DNS name; write "
					     "e.g. googleapis.com", printable(permitted[i], name, 100));
			return -EINVAL;
		}
		off += (size_t)snprintf(out + off, outlen - off, ",permitted;DNS:%s%s",
					dot ? "." : "", name);
	}
	snprintf(out + off, outlen - off, ",excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:::/::");
	return 0;
}

/* See tls.h. Both paths are checked before anything is generated, and the key is removed
 * again if the certificate cannot be written, so a failure leaves neither file. */
int tls_ca_init(const char *cert_path, const char *key_path, const char *const *permitted_dns,
		int n_permitted, char *err, size_t errlen)
{
	char nc[TLS_CA_MAX_PERMIT * 270 + 128], host[256] = "unknown", cn[64];
	const char *paths[2] = { key_path, cert_path };
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	struct stat st;
	int rc, i;

	if (!cert_path || !key_path || !*cert_path || !*key_path || !strcmp(cert_path, key_path)) {
		err_set(err, errlen, "the CA certificate and key need two different paths");
		return -EINVAL;
	}
	rc = name_constraints(nc, sizeof(nc), permitted_dns, n_permitted, err, errlen);
	if (rc)
		return rc;
	for (i = 0; i < 2; i++) {
		if (lstat(paths[i], &st) == 0) {
			err_set(err, errlen, "%s already exists; a CA is never overwritten: move "
					     "it away first to create a new one", paths[i]);
			return -EEXIST;
		}
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(cn, sizeof(cn), "sluice local CA (%.44s)", host);
	ERR_clear_error();
	key = EVP_EC_gen("P-256");
	x = key ? new_cert(cn, NULL, CA_LIFETIME, key) : NULL;
	if (!x || add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(x, NULL, NID_subject_key_identifier, "hash") ||
	    add_ext(x, NULL, NID_name_constraints, nc) || !X509_sign(x, key, EVP_sha256())) {
		ossl_err(err, errlen, "cannot create the CA certificate");
		rc = -EIO;
	}
	if (!rc)
		rc = write_pem(key_path, 0600, key, NULL, err, errlen);
	if (!rc && (rc = write_pem(cert_path, 0644, NULL, x, err, errlen)))
		unlink(key_path);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* See tls.h. The key is opened once and checked through that descriptor (fstat), so the
 * mode that is checked is the mode of the file read. */
struct tls_ca *tls_ca_load(const char *cert_path, const char *key_path, char *err,
			   size_t errlen)
{
	struct tls_ca *ca = calloc(1, sizeof(*ca));
	char r[200];
	struct stat st;
	FILE *f;
	int fd = -1;

	if (!ca) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	fd = open(key_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		err_set(err, errlen, "cannot open the CA key %s: %s; create a CA with: sluicectl "
				     "ca init", key_path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, errlen, "CA key %s is not a regular file", key_path);
		goto fail;
	}
	if (st.st_mode & 077) {
		err_set(err, errlen, "CA key %s is accessible by group or others (mode %04o); "
				     "it must stay private: chmod 600 %s, and consider the key "
				     "exposed if others could read it", key_path,
			(unsigned)(st.st_mode & 07777), key_path);
		goto fail;
	}
	f = fdopen(fd, "r");
	if (!f)
		goto fail;
	fd = -1;
	ca->key = PEM_read_PrivateKey(f, NULL, no_password, NULL);
	fclose(f);
	if (!ca->key) {
		err_set(err, errlen, "cannot read a private key from %s: %s", key_path,
			ossl_reason(r, sizeof(r)));
		goto fail;
	}
	f = fopen(cert_path, "re");
	if (!f) {
		err_set(err, errlen, "cannot open the CA certificate %s: %s", cert_path,
			strerror(errno));
		goto fail;
	}
	ca->cert = PEM_read_X509(f, NULL, no_password, NULL);
	fclose(f);
	if (!ca->cert) {
		err_set(err, errlen, "cannot read a certificate from %s: %s", cert_path,
			ossl_reason(r, sizeof(r)));
		goto fail;
	}
	if (X509_check_ca(ca->cert) < 1) {
		err_set(err, errlen, "%s is not a CA certificate", cert_path);
		goto fail;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		err_set(err, errlen, "CA key %s does not belong to the certificate %s", key_path,
			cert_path);
		goto fail;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0) {
		err_set(err, errlen, "CA certificate %s has expired; create a new CA with "
				     "sluicectl ca init and install it in the agents' trust store",
			cert_path);
		goto fail;
	}
	if (X509_get_ext_by_NID(ca->cert, NID_name_constraints, -1) < 0)
		log_warn("tls", "CA certificate %s has no nameConstraints: agents trusting it "
				"accept it for any name", cert_path);
	ERR_clear_error();
	return ca;
fail:
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	tls_ca_free(ca);
	return NULL;
}

void tls_ca_free(struct tls_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca);
}

struct x509_st *tls_ca_cert(struct tls_ca *ca)
{
	return ca->cert;
}

/* --- leaf cache ----------------------------------------------------------------------- */

static unsigned hash_name(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h & (LEAF_BUCKETS - 1);
}

/* The link that points at <name>'s entry, or at the NULL ending its chain. */
static struct leaf **cache_find(struct tls_server *s, const char *name)
{
	struct leaf **pp = &s->buckets[hash_name(name)];

	while (*pp && strcmp((*pp)->sni, name))
		pp = &(*pp)->hnext;
	return pp;
}

static void lru_unlink(struct tls_server *s, struct leaf *e)
{
	*(e->prev ? &e->prev->next : &s->lru_head) = e->next;
	*(e->next ? &e->next->prev : &s->lru_tail) = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct tls_server *s, struct leaf *e)
{
	e->next = s->lru_head;
	*(s->lru_head ? &s->lru_head->prev : &s->lru_tail) = e;
	s->lru_head = e;
}

/* Is a leaf minted at <minted> still good to serve at <now>? Not when near its expiry,
 * nor after the clock went back past its notBefore (minted - 1 h). */
static int leaf_fresh(time_t minted, time_t now)
{
	return now >= minted - 1800 && now < minted + TLS_LEAF_LIFETIME - TLS_LEAF_RENEW;
}

/* Sign a leaf for <name> (validated, lower case). Returns it or NULL with <err>. */
static X509 *mint_leaf(struct tls_server *s, const char *name, char *err, size_t errlen)
{
	int short_name = strlen(name) <= 64; /* a CN holds 64 characters at most */
	char san[300];
	X509 *x;

	/* Without a subject the SAN must be critical (RFC 5280 4.2.1.6). */
	snprintf(san, sizeof(san), "%sDNS:%s", short_name ? "" : "critical,", name);
	ERR_clear_error();
	x = new_cert(short_name ? name : NULL, s->ca_cert, TLS_LEAF_LIFETIME, s->leaf_key);
	if (!x || add_ext(x, s->ca_cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, s->ca_cert, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, s->ca_cert, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, s->ca_cert, NID_subject_alt_name, san) ||
	    add_ext(x, s->ca_cert, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(x, s->ca_key, EVP_sha256())) {
		ossl_err(err, errlen, "cannot mint a leaf certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

/* See tls.h. Minting happens outside the lock; when two threads mint the same name at
 * once, the first one stored wins and the other's certificate is dropped. */
struct x509_st *tls_server_leaf(struct tls_server *s, const char *sni, char *err,
				size_t errlen)
{
	char name[256];
	time_t now = time(NULL);
	struct leaf *e, **pp;
	X509 *x;

	if (!sni || tlshello_hostname(sni, strlen(sni), name, sizeof(name))) {
		err_set(err, errlen, "\"%s\" is not a DNS host name",
			printable(sni, name, sizeof(name)));
		return NULL;
	}
	pthread_mutex_lock(&s->lock);
	e = *cache_find(s, name);
	if (e && leaf_fresh(e->minted, now)) {
		lru_unlink(s, e);
		lru_push(s, e);
		X509_up_ref(e->cert);
		pthread_mutex_unlock(&s->lock);
		return e->cert;
	}
	pthread_mutex_unlock(&s->lock);

	x = mint_leaf(s, name, err, errlen);
	if (!x)
		return NULL;
	pthread_mutex_lock(&s->lock);
	e = *cache_find(s, name);
	if (e && leaf_fresh(e->minted, now)) { /* another thread was faster */
		X509_free(x);
		x = e->cert;
	} else if (e) {
		X509_free(e->cert);
		e->cert = x;
		e->minted = now;
	} else if ((e = s->n_leaves < TLS_LEAF_CACHE ? calloc(1, sizeof(*e)) : s->lru_tail)) {
		if (e == s->lru_tail) { /* full: recycle the least recently used entry */
			lru_unlink(s, e);
			pp = cache_find(s, e->sni);
			*pp = e->hnext;
			X509_free(e->cert);
		} else {
			s->n_leaves++;
		}
		snprintf(e->sni, sizeof(e->sni), "%s", name);
		e->cert = x;
		e->minted = now;
		pp = cache_find(s, name);
		e->hnext = NULL;
		*pp = e;
		lru_push(s, e);
	} else { /* out of memory: serve it uncached */
		pthread_mutex_unlock(&s->lock);
		return x;
	}
	lru_unlink(s, e);
	lru_push(s, e);
	X509_up_ref(x);
	pthread_mutex_unlock(&s->lock);
	return x;
}

/* --- contexts ------------------------------------------------------------------------- */

static SSL_CTX *new_ctx(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(method);
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, ciphers12)) {
		ossl_err(err, errlen, "cannot set up a TLS context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/* Select "http/1.1" if the client offers it, else continue without ALPN. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int i = 0, n;

	for (; i < inlen; i += 1 + n) {
		n = in[i];
		if (i + 1 + n > inlen)
			break;
		if (n == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* The leaf was chosen from the peeked SNI: a handshake naming another host is refused. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (!t || !name || !strcasecmp(name, t->name))
		return SSL_TLSEXT_ERR_OK;
	snprintf(t->why, sizeof(t->why), "the ClientHello's server name differs from %s",
		 t->name);
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

struct tls_server *tls_server_new(struct tls_ca *ca, char *err, size_t errlen)
{
	struct tls_server *s = calloc(1, sizeof(*s));

	if (!s) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	X509_up_ref(ca->cert);
	s->ca_cert = ca->cert;
	EVP_PKEY_up_ref(ca->key);
	s->ca_key = ca->key;
	ERR_clear_error();
	s->leaf_key = EVP_EC_gen("P-256");
	if (!s->leaf_key) {
		ossl_err(err, errlen, "cannot generate the leaf key");
		tls_server_free(s);
		return NULL;
	}
	s->ctx = new_ctx(TLS_server_method(), err, errlen);
	if (!s->ctx) {
		tls_server_free(s);
		return NULL;
	}
	SSL_CTX_set_options(s->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(s->ctx, 0);
	SSL_CTX_set_alpn_select_cb(s->ctx, on_alpn, NULL);
	SSL_CTX_set_tlsext_servername_callback(s->ctx, on_servername);
	return s;
}

void tls_server_free(struct tls_server *s)
{
	struct leaf *e, *next;

	if (!s)
		return;
	for (e = s->lru_head; e; e = next) {
		next = e->next;
		X509_free(e->cert);
		free(e);
	}
	SSL_CTX_free(s->ctx);
	EVP_PKEY_free(s->leaf_key);
	EVP_PKEY_free(s->ca_key);
	X509_free(s->ca_cert);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct tls_client *tls_client_new(const char *ca_file, char *err, size_t errlen)
{
	struct tls_client *c = calloc(1, sizeof(*c));
	char what[PATH_MAX + 64];
	FILE *f;

	if (!c) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	if (ca_file && !(f = fopen(ca_file, "re"))) {
		err_set(err, errlen, "cannot open the CA bundle %s: %s", ca_file, strerror(errno));
		free(c);
		return NULL;
	}
	if (ca_file)
		fclose(f);
	c->ctx = new_ctx(TLS_client_method(), err, errlen);
	if (!c->ctx) {
		free(c);
		return NULL;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	snprintf(what, sizeof(what), "cannot load the CA bundle %s",
		 ca_file ? ca_file : "(system default)");
	if ((ca_file ? SSL_CTX_load_verify_file(c->ctx, ca_file) :
		       SSL_CTX_set_default_verify_paths(c->ctx)) != 1 ||
	    SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
		ossl_err(err, errlen, what);
		tls_client_free(c);
		return NULL;
	}
	return c;
}

void tls_client_free(struct tls_client *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

/* --- the connection's BIO ----------------------------------------------------------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Append <n> bytes to <b>, whose bytes before b->off are read: they make room first. */
static int bytes_put(struct buf *b, const void *p, size_t n)
{
	if (b->off && b->len + n > b->cap) {
		buf_consume(b, b->off);
		b->off = 0;
	}
	return buf_append(b, p, n, SIZE_MAX);
}

/* Move up to <cap> waiting bytes of <b> to <buf>. Returns the count. */
static size_t bytes_take(struct buf *b, void *buf, size_t cap)
{
	size_t n = b->len - b->off < cap ? b->len - b->off : cap;

	if (!n)
		return 0;
	memcpy(buf, b->p + b->off, n);
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
	return n;
}

/* OpenSSL reads ciphertext: what was fed, else "retry" (never end of stream: the loop
 * says when the peer closed). */
static int bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct tls_conn *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	*got = bytes_take(&t->in, buf, len);
	if (!*got && len) {
		BIO_set_retry_read(b);
		return 0;
	}
	return 1;
}

/* OpenSSL writes ciphertext: to the sink, else kept for tls_conn_take_out. */
static int bio_write(BIO *b, const char *buf, size_t len, size_t *put)
{
	struct tls_conn *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (t->sink ? t->sink(t->sink_arg, buf, len) : bytes_put(&t->out, buf, len))
		return 0;
	*put = len;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *t = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return (long)(t->in.len - t->in.off);
	case BIO_CTRL_WPENDING:
		return (long)(t->out.len - t->out.off);
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice");

	if (m && BIO_meth_set_read_ex(m, bio_read) && BIO_meth_set_write_ex(m, bio_write) &&
	    BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
		bio_method = m;
	else
		BIO_meth_free(m);
}

/* --- connections ---------------------------------------------------------------------- */

static struct tls_conn *conn_new(SSL_CTX *ctx, int is_server, const char *name)
{
	struct tls_conn *t;
	BIO *bio = NULL;

	pthread_once(&bio_once, bio_method_init);
	if (!bio_method || !(t = calloc(1, sizeof(*t))))
		return NULL;
	ERR_clear_error();
	t->is_server = is_server;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ssl = SSL_new(ctx);
	if (!t->ssl || !(bio = BIO_new(bio_method))) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	BIO_set_data(bio, t);
	SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: the SSL owns its one reference */
	SSL_set_app_data(t->ssl, t);
	if (is_server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	return t;
}

struct tls_conn *tls_conn_server(struct tls_server *s, const char *sni)
{
	char err[256], name[256], r[200];
	struct tls_conn *t;
	X509 *leaf = tls_server_leaf(s, sni, err, sizeof(err));

	if (!leaf) {
		log_warn("tls", "%s", err);
		return NULL;
	}
	tlshello_hostname(sni, strlen(sni), name, sizeof(name)); /* valid: it has a leaf */
	t = conn_new(s->ctx, 1, name);
	if (t && (SSL_use_certificate(t->ssl, leaf) != 1 ||
		  SSL_use_PrivateKey(t->ssl, s->leaf_key) != 1)) {
		log_warn("tls", "cannot use the leaf for %s: %s", name, ossl_reason(r, sizeof(r)));
		tls_conn_free(t);
		t = NULL;
	}
	X509_free(leaf);
	return t;
}

struct tls_conn *tls_conn_client(struct tls_client *c, const char *host)
{
	unsigned char ip[16];
	char name[256], r[200];
	struct tls_conn *t;
	int is_ip = host && (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1);
	int ok;

	if (!host || (!is_ip && tlshello_hostname(host, strlen(host), name, sizeof(name)))) {
		log_warn("tls", "cannot verify \"%s\": not a host name or IP address",
			 printable(host, name, sizeof(name)));
		return NULL;
	}
	t = conn_new(c->ctx, 0, is_ip ? host : name);
	if (!t)
		return NULL;
	SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip)
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
	else
		ok = SSL_set_tlsext_host_name(t->ssl, name) && SSL_set1_host(t->ssl, name);
	if (!ok) {
		log_warn("tls", "cannot set the host to verify: %s", ossl_reason(r, sizeof(r)));
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	buf_free(&t->in);
	buf_free(&t->out);
	free(t);
}

int tls_conn_sink(struct tls_conn *t, tls_sink_fn sink, void *arg)
{
	t->sink = sink;
	t->sink_arg = arg;
	if (sink && t->out.len > t->out.off) { /* written before: it goes first */
		if (sink(arg, t->out.p + t->out.off, t->out.len - t->out.off))
			return -1;
		t->out.off = t->out.len = 0;
	}
	return 0;
}

int tls_conn_feed(struct tls_conn *t, const void *buf, size_t len)
{
	return len && bytes_put(&t->in, buf, len) ? -1 : 0;
}

/* Record why the connection failed (<ret> from SSL_get_error), keeping a reason a callback
 * set. The verification result comes first: it says more than "certificate verify
 * failed". */
static void conn_failed(struct tls_conn *t, int ret)
{
	long v = SSL_get_verify_result(t->ssl);
	char r[200];

	t->failed = 1;
	if (t->why[0]) {
		ERR_clear_error();
	} else if (!t->is_server && v != X509_V_OK) {
		if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			snprintf(t->why, sizeof(t->why),
				 "hostname mismatch: the certificate is not valid for %s", t->name);
		else
			snprintf(t->why, sizeof(t->why), "certificate verify failed: %s",
				 X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else if (ERR_peek_last_error()) {
		snprintf(t->why, sizeof(t->why), "%s", ossl_reason(r, sizeof(r)));
	} else if (ret == SSL_ERROR_SYSCALL || ret == SSL_ERROR_ZERO_RETURN) {
		snprintf(t->why, sizeof(t->why), "the peer closed the connection");
	} else {
		snprintf(t->why, sizeof(t->why), "TLS failure (SSL error %d)", ret);
	}
}

int tls_conn_handshake(struct tls_conn *t, const char **why)
{
	int r, e;

	if (!t->failed) {
		ERR_clear_error();
		r = SSL_do_handshake(t->ssl);
		if (r == 1)
			return 1;
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		conn_failed(t, e);
	}
	if (why)
		*why = t->why;
	return -1;
}

long tls_conn_read(struct tls_conn *t, void *buf, size_t cap)
{
	size_t n = 0;
	int r, e;

	if (t->failed)
		return -2;
	if (!cap)
		return 0;
	ERR_clear_error();
	r = SSL_read_ex(t->ssl, buf, cap < INT_MAX ? cap : INT_MAX, &n);
	if (r == 1) {
		if (!t->busy) { /* a malloc and free of ~17 KB per record otherwise, each way */
			SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
			t->busy = 1;
		}
		return (long)n;
	}
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return -1;
	}
	conn_failed(t, e);
	return -2;
}

int tls_conn_has_input(struct tls_conn *t)
{
	return t->failed || t->in.len > t->in.off || SSL_has_pending(t->ssl);
}

long tls_conn_write(struct tls_conn *t, const void *buf, size_t len)
{
	size_t n = 0;
	int r, e;

	if (t->failed)
		return -1;
	if (!len)
		return 0;
	if (len > LONG_MAX)
		return -1;
	ERR_clear_error();
	r = SSL_write_ex(t->ssl, buf, len, &n);
	if (r == 1)
		return (long)n;
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	conn_failed(t, e);
	return -1;
}

size_t tls_conn_out_pending(struct tls_conn *t)
{
	return t->out.len - t->out.off;
}

long tls_conn_take_out(struct tls_conn *t, void *buf, size_t cap)
{
	return (long)bytes_take(&t->out, buf, cap < LONG_MAX ? cap : LONG_MAX);
}

void tls_conn_trim(struct tls_conn *t)
{
	if (t->in.len > t->in.off || t->out.len > t->out.off)
		return;
	if (t->busy) {
		SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
		t->busy = 0;
	}
	SSL_free_buffers(t->ssl); /* fails, harmlessly, while a record is half read */
	buf_free(&t->in);
	buf_free(&t->out);
}

void tls_conn_shutdown(struct tls_conn *t)
{
	if (t->failed || !SSL_is_init_finished(t->ssl))
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}

const char *tls_conn_alpn(struct tls_conn *t)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	SSL_get0_alpn_selected(t->ssl, &p, &n);
	if (!p || n >= sizeof(t->alpn))
		return "";
	memcpy(t->alpn, p, n);
	t->alpn[n] = '\0';
	return t->alpn;
}

struct ssl_st *tls_conn_ssl(struct tls_conn *t)
{
	return t->ssl;
}

/* --- sluicectl ca ... ------------------------------------------------------------------ */

/* Is argv[*i] option <name> ("--name V" or "--name=V")? 1 with *val set (and *i past V),
 * 0 if not, -1 when the value is missing. */
static int opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return **val ? 1 : -1;
	}
	if (argv[*i][n])
		return 0;
	if (*i + 1 >= argc || !*argv[*i + 1])
		return -1;
	*val = argv[++*i];
	return 1;
}

/* Create the directory holding <path> (mode 0700) when it is missing: one level only. */
static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) && errno != EEXIST) {
		fprintf(stderr, "sluicectl: ca init: cannot create the directory %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	return 0;
}

static const char ca_init_usage[] =
	"usage: sluicectl ca init [--cert FILE] [--key FILE] [--permit DNS_SUFFIX]...\n"
	"  Create the local CA that sluiced re-terminates TLS with. Its certificate can only\n"
	"  vouch for names under the permitted suffixes (default: googleapis.com), never for\n"
	"  IP addresses. Defaults: --cert " TLS_DEFAULT_CA_CERT " --key " TLS_DEFAULT_CA_KEY "\n";

int tls_cmd_ca_init(int argc, char **argv)
{
	const char *cert = TLS_DEFAULT_CA_CERT, *key = TLS_DEFAULT_CA_KEY, *v;
	const char *permit[TLS_CA_MAX_PERMIT] = { "googleapis.com" };
	char err[1024];
	int i, r, n = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(ca_init_usage, stdout);
			return 0;
		}
		if ((r = opt(argc, argv, &i, "--cert", &v)) == 1)
			cert = v;
		else if (r == 0 && (r = opt(argc, argv, &i, "--key", &v)) == 1)
			key = v;
		else if (r == 0 && (r = opt(argc, argv, &i, "--permit", &v)) == 1 &&
			 n < TLS_CA_MAX_PERMIT)
			permit[n++] = v;
		else if (r == 1) {
			fprintf(stderr, "sluicectl: ca init: at most %d --permit suffixes\n",
				TLS_CA_MAX_PERMIT);
			return 2;
		} else {
			fprintf(stderr, "sluicectl: ca init: %s '%s'\n%s",
				r < 0 ? "missing value after" : "unknown argument", argv[i],
				ca_init_usage);
			return 2;
		}
	}
	if (make_parent(cert) || make_parent(key))
		return 2;
	if (tls_ca_init(cert, key, permit, n ? n : 1, err, sizeof(err))) {
		fprintf(stderr, "sluicectl: ca init: %s\n", err);
		return 2;
	}
	printf("created the CA certificate %s and its private key %s (mode 0600)\n"
	       "it vouches only for names under:", cert, key);
	for (i = 0; i < (n ? n : 1); i++)
		printf(" %s", permit[i]);
	printf("\nnext: install the certificate in the agents' trust store, e.g.\n"
	       "  sluicectl ca export%s%s > /usr/local/share/ca-certificates/sluice.crt && "
	       "update-ca-certificates\n", strcmp(cert, TLS_DEFAULT_CA_CERT) ? " --cert " : "",
	       strcmp(cert, TLS_DEFAULT_CA_CERT) ? cert : "");
	return 0;
}

int tls_cmd_ca_export(int argc, char **argv)
{
	const char *cert = TLS_DEFAULT_CA_CERT;
	char r[200];
	FILE *f;
	X509 *x;
	int i, o;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: sluicectl ca export [--cert FILE]\n"
			       "  Print the CA certificate (PEM) for the agents' trust stores.\n");
			return 0;
		}
		if ((o = opt(argc, argv, &i, "--cert", &cert)) != 1) {
			fprintf(stderr, "sluicectl: ca export: %s '%s'\n"
					"usage: sluicectl ca export [--cert FILE]\n",
				o < 0 ? "missing value after" : "unknown argument", argv[i]);
			return 2;
		}
	}
	f = fopen(cert, "re");
	if (!f) {
		fprintf(stderr, "sluicectl: ca export: cannot open %s: %s; create the CA first "
				"with: sluicectl ca init\n", cert, strerror(errno));
		return 2;
	}
	ERR_clear_error();
	x = PEM_read_X509(f, NULL, no_password, NULL);
	fclose(f);
	if (!x) {
		fprintf(stderr, "sluicectl: ca export: %s holds no PEM certificate: %s\n", cert,
			ossl_reason(r, sizeof(r)));
		return 2;
	}
	i = PEM_write_X509(stdout, x) == 1 && fflush(stdout) == 0;
	X509_free(x);
	ERR_clear_error();
	if (!i) {
		fprintf(stderr, "sluicectl: ca export: cannot write to stdout: %s\n", strerror(errno));
		return 2;
	}
	return 0;
}
