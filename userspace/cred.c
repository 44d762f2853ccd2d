/* cred.c - sluiced's Google credential: a refresher thread per credential obtains access
 * tokens (service-account JWT-bearer grant, metadata server, or token file) with blocking
 * HTTP(S) of its own, and workers copy the cached token under a mutex.
 *
 * The HTTP client is deliberately small: one request per connection ("Connection: close"),
 * Content-Length or chunked responses up to CRED_MAX_RESPONSE bytes, TLS 1.2+ verified
 * against the configured CA file or the system store with SNI and the URL's host name. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cred.h"
#include "identity.h"
#include "jsonpos.h"
#include "log.h"

#define MOD "cred"
#define CRED_MAX_RESPONSE (256 * 1024)
#define CRED_MAX_KEYFILE (64 * 1024)
#define TOKEN_FILE_POLL_MS 1000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

struct sa_key {
	char *email, *kid, *token_uri;
	EVP_PKEY *pkey;
};

struct cred {
	struct cred_conf conf;        /* deep copy */
	SSL_CTX *ctx;                 /* verifying client context */
	pthread_t thread;
	int started;

	pthread_mutex_t mu;           /* guards everything below */
	pthread_cond_t cv;            /* CLOCK_MONOTONIC */
	int stop, kick;
	struct sa_key sa;
	char token[CRED_MAX_TOKEN];
	long long expiry_ms;          /* monotonic; 0: no token */
	long long safety_ms;          /* stop handing out the token this close to expiry */
	struct cred_status st;
	int attempted;                /* at least one attempt finished */
	struct timespec file_mtime;   /* token file when last read */
	ino_t file_ino;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *cname(const struct cred *c)
{
	return c->conf.name ? c->conf.name : "default";
}

/* Copy printable ASCII of <in> (at most <max> chars) into <out>, for quoting a server's
 * error text. */
static void printable(const char *in, size_t max, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; in && in[i] && i < max && o + 1 < outlen; i++)
		out[o++] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[o] = '\0';
}

/* The last OpenSSL error reason (clears the queue). */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r ? r : "unknown error");
	ERR_clear_error();
	return buf;
}

/* ---- files ------------------------------------------------------------------------- */

/* Read the credential file <path> (at most <max> bytes), refusing one that group or others
 * can access or that another user owns. Returns a malloc'd NUL-terminated buffer (cleanse
 * it before freeing) or NULL with <err>; <st> gets its stat. */
static char *read_secret(const char *path, size_t max, struct stat *st, size_t *len, char *err,
			 size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;

	if (fd < 0) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) || !S_ISREG(st->st_mode)) {
		err_set(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st->st_mode & 077) {
		err_set(err, errlen, "%s: credential file is readable or writable by group or "
				    "others (mode %04o): chmod 600 it", path,
		       (unsigned)(st->st_mode & 07777));
		goto out;
	}
	if (st->st_uid != geteuid()) {
		err_set(err, errlen, "%s: credential file is owned by uid %u, not by sluiced (uid "
				    "%u): chown it", path, (unsigned)st->st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((size_t)st->st_size > max) {
		err_set(err, errlen, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf)
		goto out;
	while (got < (size_t)st->st_size && (n = read(fd, buf + got, (size_t)st->st_size - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

static void free_secret(char *buf, size_t len)
{
	if (buf)
		OPENSSL_cleanse(buf, len);
	free(buf);
}

static void sa_free(struct sa_key *k)
{
	free(k->email);
	free(k->kid);
	free(k->token_uri);
	EVP_PKEY_free(k->pkey);
	memset(k, 0, sizeof(*k));
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Load the service-account key file <path> into <k>. Messages name the file and the field,
 * never its contents. Returns 0 or -errno with <err>. */
static int sa_load(const char *path, struct sa_key *k, char *err, size_t errlen)
{
	struct stat st;
	json_error_t je;
	json_t *doc = NULL, *pk = NULL;
	const char *type, *email, *kid, *uri, *pem;
	size_t len = 0;
	char *buf = read_secret(path, CRED_MAX_KEYFILE, &st, &len, err, errlen), why[128];
	BIO *b = NULL;
	int rc = -EINVAL;

	memset(k, 0, sizeof(*k));
	if (!buf)
		return -EACCES;
	doc = json_loadb(buf, len, 0, &je);
	if (!json_is_object(doc)) {
		/* je.text may quote the file: only the line is reported. */
		err_set(err, errlen, "%s:%d: not a service-account key (JSON object expected)", path,
		       je.line);
		goto out;
	}
	type = json_string_value(json_object_get(doc, "type"));
	email = json_string_value(json_object_get(doc, "client_email"));
	kid = json_string_value(json_object_get(doc, "private_key_id"));
	uri = json_string_value(json_object_get(doc, "token_uri"));
	pk = json_object_get(doc, "private_key");
	pem = json_string_value(pk);
	if (type && strcmp(type, "service_account")) {
		err_set(err, errlen, "%s: type is not \"service_account\" (only service-account keys "
				    "are supported)", path);
		goto out;
	}
	if (!email || !*email || !pem) {
		err_set(err, errlen, "%s: client_email and private_key are required", path);
		goto out;
	}
	if (!uri)
		uri = "https://oauth2.googleapis.com/token";
	if (strncmp(uri, "https://", 8)) {
		err_set(err, errlen, "%s: token_uri must be an https:// URL", path);
		goto out;
	}
	ERR_clear_error();
	b = BIO_new_mem_buf(pem, -1);
	k->pkey = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
	if (!k->pkey) {
		err_set(err, errlen, "%s: private_key is not a PEM private key (%s)", path,
		       ossl_reason(why, sizeof(why)));
		goto out;
	}
	if (!EVP_PKEY_is_a(k->pkey, "RSA") || EVP_PKEY_get_bits(k->pkey) < 2048) {
		err_set(err, errlen, "%s: private_key must be an RSA key of 2048 bits or more", path);
		goto out;
	}
	k->email = strdup(email);
	k->kid = kid ? strdup(kid) : NULL;
	k->token_uri = strdup(uri);
	if (!k->email || !k->token_uri) {
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	if (json_is_string(pk))
		OPENSSL_cleanse((char *)json_string_value(pk), strlen(json_string_value(pk)));
	json_decref(doc);
	free_secret(buf, len);
	if (rc)
		sa_free(k);
	return rc;
}

/* ---- the assertion ----------------------------------------------------------------- */

/* Sign "<b64 header>.<b64 payload>" in <buf> (length <n>) with <key> and append the
 * signature. Returns the new length or -errno. */
static int rs256_sign(EVP_PKEY *key, char *buf, int n, size_t cap)
{
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok, m;

	ERR_clear_error();
	ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestSign(md, sig, &siglen, (unsigned char *)buf, (size_t)n) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok)
		return -EIO;
	if ((size_t)n + 2 > cap)
		return -ENOSPC;
	buf[n++] = '.';
	m = identity_b64url_encode(sig, siglen, buf + n, cap - (size_t)n);
	return m < 0 ? m : n + m;
}

/* The assertion for key <k> (caller holds c->mu). */
static int assertion_locked(struct cred *c, time_t now, char *out, size_t outlen, char *err,
			    size_t errlen)
{
	json_t *h, *p;
	char *hs, *ps;
	int n, m, rc;

	if (!c->sa.pkey) {
		err_set(err, errlen, "credential %s is not a service-account key", cname(c));
		return -EINVAL;
	}
	h = c->sa.kid ? json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", c->sa.kid)
		      : json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	p = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", c->sa.email, "scope",
		      c->conf.scope ? c->conf.scope : CRED_DEFAULT_SCOPE, "aud", c->sa.token_uri,
		      "iat", (json_int_t)now, "exp", (json_int_t)now + CRED_ASSERTION_LIFETIME);
	hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
	ps = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(h);
	json_decref(p);
	rc = -ENOMEM;
	if (!hs || !ps)
		goto out;
	rc = -ENOSPC;
	n = identity_b64url_encode(hs, strlen(hs), out, outlen);
	if (n < 0 || (size_t)n + 1 >= outlen)
		goto out;
	out[n++] = '.';
	m = identity_b64url_encode(ps, strlen(ps), out + n, outlen - (size_t)n);
	if (m < 0)
		goto out;
	rc = rs256_sign(c->sa.pkey, out, n + m, outlen);
out:
	if (rc < 0)
		err_set(err, errlen, "credential %s: cannot sign the assertion (%s)", cname(c),
		       rc == -ENOSPC ? "buffer too small" : "signing failed");
	free(hs);
	free(ps);
	return rc;
}

int cred_sa_assertion(struct cred *c, time_t now, char *out, size_t outlen, char *err,
		      size_t errlen)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = assertion_locked(c, now, out, outlen, err, errlen);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* ---- HTTP(S) client ---------------------------------------------------------------- */

struct url {
	int tls;
	char host[256];
	char port[8];
	char path[1024];
};

/* Split "http[s]://HOST[:PORT][/PATH]" (HOST may be [v6]). Returns 0 or -1. */
static int url_parse(const char *s, struct url *u)
{
	const char *h, *e, *p;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (!strncmp(s, "https://", 8)) {
		u->tls = 1;
		h = s + 8;
		strcpy(u->port, "443");
	} else if (!strncmp(s, "http://", 7)) {
		h = s + 7;
		strcpy(u->port, "80");
	} else {
		return -1;
	}
	p = h + strcspn(h, "/?#");
	if (*h == '[') {
		e = memchr(h, ']', (size_t)(p - h));
		if (!e)
			return -1;
		hl = (size_t)(e - h - 1);
		memcpy(u->host, h + 1, hl < sizeof(u->host) ? hl : 0);
		e++;
	} else {
		e = memchr(h, ':', (size_t)(p - h));
		if (!e)
			e = p;
		hl = (size_t)(e - h);
		if (hl >= sizeof(u->host))
			return -1;
		memcpy(u->host, h, hl);
	}
	if (!u->host[0] || hl >= sizeof(u->host))
		return -1;
	if (*e == ':') {
		if ((size_t)(p - e - 1) >= sizeof(u->port) || p == e + 1)
			return -1;
		memcpy(u->port, e + 1, (size_t)(p - e - 1));
		u->port[p - e - 1] = '\0';
	} else if (e != p) {
		return -1;
	}
	snprintf(u->path, sizeof(u->path), "%s", *p == '/' ? p : "/");
	return strchr(u->path, '#') || strpbrk(u->host, " \r\n@") ? -1 : 0;
}

/* Connect to <host>:<port> within <deadline> (monotonic ms). Returns the fd or -errno with
 * <err>. */
static int tcp_connect(const char *host, const char *port, long long deadline, char *err,
		       size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	struct pollfd pfd;
	struct timeval tv;
	int fd = -1, rc, soerr = 0, left;
	socklen_t sl = sizeof(soerr);

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		err_set(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	rc = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
			rc = -errno;
			close(fd);
			fd = -1;
			continue;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&pfd, 1, left) != 1) {
			rc = -ETIMEDOUT;
			close(fd);
			fd = -1;
			continue;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			rc = -soerr;
			close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		err_set(err, errlen, "cannot connect to %s port %s: %s", host, port, strerror(-rc));
		return rc;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	left = (int)(deadline - mono_ms());
	if (left < 1)
		left = 1;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

struct conn {
	int fd;
	SSL *ssl;
};

static int conn_write(struct conn *k, const char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if (k->ssl) {
			int w = SSL_write(k->ssl, buf + off, (int)(len - off));

			n = w > 0 ? w : -1;
		} else {
			n = send(k->fd, buf + off, len - off, MSG_NOSIGNAL);
		}
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Read into <buf>: >0 bytes, 0 end of stream, -1 error or timeout. */
static ssize_t conn_read(struct conn *k, char *buf, size_t cap)
{
	int r, e;

	if (!k->ssl)
		return recv(k->fd, buf, cap, 0);
	r = SSL_read(k->ssl, buf, (int)cap);
	if (r > 0)
		return r;
	e = SSL_get_error(k->ssl, r);
	ERR_clear_error();
	return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

/* Find header <name> in the header block <h> (up to the blank line); copies its value. */
static int header_value(const char *h, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *line = strstr(h, "\r\n"), *end;

	while (line && line[2] != '\r') {
		line += 2;
		end = strstr(line, "\r\n");
		if (!end)
			break;
		if ((size_t)(end - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(out, outlen, "%.*s", (int)(end - v), v);
			return 1;
		}
		line = end;
	}
	return 0;
}

/* Decode a chunked body in place. Returns the decoded length or -1. */
static long dechunk(char *b, size_t len)
{
	size_t in = 0, out = 0;
	unsigned long sz;
	char *end;

	for (;;) {
		errno = 0;
		sz = strtoul(b + in, &end, 16);
		if (errno || end == b + in)
			return -1;
		end = strstr(end, "\r\n");
		if (!end)
			return -1;
		in = (size_t)(end - b) + 2;
		if (!sz)
			return (long)out;
		if (sz > len - in)
			return -1;
		memmove(b + out, b + in, sz);
		out += sz;
		in += sz + 2;
		if (in > len)
			return -1;
	}
}

/* Is the response in <buf>/<len> complete? Returns 1 yes, 0 needs more. */
static int response_complete(const char *buf, size_t len)
{
	const char *hend = strstr(buf, "\r\n\r\n");
	char v[64];

	if (!hend)
		return 0;
	if (header_value(buf, "Content-Length", v, sizeof(v)))
		return len - (size_t)(hend + 4 - buf) >= strtoul(v, NULL, 10);
	if (header_value(buf, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked"))
		return strstr(hend + 4, "\r\n0\r\n\r\n") != NULL || !strncmp(hend + 4, "0\r\n\r\n", 5);
	return 0;
}

/* One HTTP/1.1 request to <url> (with the configured address/CA override). <hdrs> are
 * extra header lines (each ending "\r\n"). On 0, *<status> and the malloc'd body in
 * *<body> (NUL-terminated). Returns 0 or -errno with <err>. */
static int http_request(struct cred *c, const char *method, const char *url_s, const char *hdrs,
			const char *body, size_t body_len, int *status, char **resp, char *err,
			size_t errlen)
{
	struct url u;
	struct conn k = { -1, NULL };
	long long deadline = mono_ms() + (c->conf.timeout_ms ? c->conf.timeout_ms
							    : CRED_DEFAULT_TIMEOUT_MS);
	char *req = NULL, *buf = NULL, *hend, ohost[256], oport[8], why[160], v[64];
	const char *chost = NULL, *cport = NULL;
	size_t len = 0, reqlen = 0, reqused = 0;
	ssize_t n;
	int rc = -EIO;

	*resp = NULL;
	if (url_parse(url_s, &u)) {
		err_set(err, errlen, "bad URL %s", url_s);
		return -EINVAL;
	}
	if (c->conf.address) {
		const char *colon = strrchr(c->conf.address, ':');

		if (!colon || colon == c->conf.address ||
		    (size_t)(colon - c->conf.address) >= sizeof(ohost) || strlen(colon + 1) >= sizeof(oport)) {
			err_set(err, errlen, "override address %s is not IP:PORT", c->conf.address);
			return -EINVAL;
		}
		snprintf(ohost, sizeof(ohost), "%.*s", (int)(colon - c->conf.address),
			 c->conf.address);
		if (ohost[0] == '[') {
			memmove(ohost, ohost + 1, strlen(ohost));
			ohost[strcspn(ohost, "]")] = '\0';
		}
		snprintf(oport, sizeof(oport), "%s", colon + 1);
		chost = ohost;
		cport = oport;
	} else {
		chost = u.host;
		cport = u.port;
	}
	k.fd = tcp_connect(chost, cport, deadline, err, errlen);
	if (k.fd < 0)
		return k.fd;
	if (u.tls) {
		ERR_clear_error();
		k.ssl = SSL_new(c->ctx);
		if (!k.ssl || !SSL_set_fd(k.ssl, k.fd)) {
			err_set(err, errlen, "TLS setup failed: %s", ossl_reason(why, sizeof(why)));
			goto out;
		}
		if (inet_pton(AF_INET, u.host, v) == 1 || inet_pton(AF_INET6, u.host, v) == 1) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k.ssl), u.host);
		} else {
			SSL_set_tlsext_host_name(k.ssl, u.host);
			SSL_set1_host(k.ssl, u.host);
		}
		if (SSL_connect(k.ssl) != 1) {
			long vr = SSL_get_verify_result(k.ssl);

			if (vr != X509_V_OK)
				err_set(err, errlen, "TLS to %s failed: certificate verify failed: %s",
				       u.host, X509_verify_cert_error_string(vr));
			else
				err_set(err, errlen, "TLS to %s failed: %s", u.host,
				       ossl_reason(why, sizeof(why)));
			goto out;
		}
	}
	reqlen = strlen(method) + strlen(u.path) + strlen(u.host) + (hdrs ? strlen(hdrs) : 0) +
		 body_len + 256;
	req = malloc(reqlen);
	if (!req) {
		rc = -ENOMEM;
		goto out;
	}
	n = snprintf(req, reqlen,
		     "%s %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: sluiced\r\n"
		     "Accept: application/json\r\nConnection: close\r\n%s",
		     method, u.path, u.host,
		     (u.tls && strcmp(u.port, "443")) || (!u.tls && strcmp(u.port, "80")) ? ":" : "",
		     (u.tls && strcmp(u.port, "443")) || (!u.tls && strcmp(u.port, "80")) ? u.port
											   : "",
		     hdrs ? hdrs : "");
	if (body)
		n += snprintf(req + n, reqlen - (size_t)n, "Content-Length: %zu\r\n", body_len);
	n += snprintf(req + n, reqlen - (size_t)n, "\r\n");
	if (body) {
		memcpy(req + n, body, body_len);
		n += (ssize_t)body_len;
	}
	reqused = (size_t)n;
	if (conn_write(&k, req, (size_t)n)) {
		err_set(err, errlen, "sending the request to %s failed", u.host);
		goto out;
	}
	buf = malloc(CRED_MAX_RESPONSE + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		n = conn_read(&k, buf + len, CRED_MAX_RESPONSE - len);
		if (n < 0) {
			err_set(err, errlen, "reading the response from %s failed%s", u.host,
			       mono_ms() >= deadline ? ": timed out" : "");
			rc = mono_ms() >= deadline ? -ETIMEDOUT : -EIO;
			goto out;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (!n || response_complete(buf, len))
			break;
		if (len == CRED_MAX_RESPONSE) {
			err_set(err, errlen, "response from %s larger than %d bytes", u.host,
			       CRED_MAX_RESPONSE);
			goto out;
		}
	}
	hend = strstr(buf, "\r\n\r\n");
	if (!hend || sscanf(buf, "HTTP/1.%*1[01] %d", status) != 1) {
		err_set(err, errlen, "malformed HTTP response from %s", u.host);
		goto out;
	}
	if (header_value(buf, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked")) {
		long dl = dechunk(hend + 4, len - (size_t)(hend + 4 - buf));

		if (dl < 0) {
			err_set(err, errlen, "malformed chunked response from %s", u.host);
			goto out;
		}
		hend[4 + dl] = '\0';
	} else if (header_value(buf, "Content-Length", v, sizeof(v))) {
		size_t cl = strtoul(v, NULL, 10);

		if (cl > len - (size_t)(hend + 4 - buf)) {
			err_set(err, errlen, "truncated response from %s", u.host);
			goto out;
		}
		hend[4 + cl] = '\0';
	}
	*resp = strdup(hend + 4);
	rc = *resp ? 0 : -ENOMEM;
out:
	if (k.ssl) {
		SSL_shutdown(k.ssl);
		SSL_free(k.ssl);
	}
	ERR_clear_error();
	close(k.fd);
	if (req)
		OPENSSL_cleanse(req, reqused);
	free(req);
	free(buf);
	return rc;
}

/* Take {"access_token", "expires_in"} from a token endpoint's 200 <body>. Returns 0 or
 * -EIO with <err>. */
static int parse_token(const char *body, char *tok, size_t toklen, long *expires_in, char *err,
		       size_t errlen)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *t = json_string_value(json_object_get(j, "access_token"));
	json_t *e = json_object_get(j, "expires_in");
	int rc = -EIO;

	if (!t || !*t || strlen(t) >= toklen || strpbrk(t, " \r\n\t")) {
		err_set(err, errlen, "the token endpoint's answer has no usable access_token");
		goto out;
	}
	if (!json_is_integer(e) || json_integer_value(e) <= 0) {
		err_set(err, errlen, "the token endpoint's answer has no positive expires_in");
		goto out;
	}
	strcpy(tok, t);
	*expires_in = (long)json_integer_value(e);
	rc = 0;
out:
	if (t)
		OPENSSL_cleanse((char *)t, strlen(t));
	json_decref(j);
	return rc;
}

/* Describe a failed token endpoint answer: status plus its OAuth/Google error text. */
static void endpoint_error(int status, const char *body, const char *what, char *err,
			   size_t errlen)
{
	json_t *j = json_loads(body, 0, NULL), *e = json_object_get(j, "error");
	const char *code = json_string_value(e), *desc;
	char a[80] = "", b[200] = "";

	desc = json_string_value(json_object_get(j, "error_description"));
	if (json_is_object(e)) {
		code = json_string_value(json_object_get(e, "status"));
		desc = json_string_value(json_object_get(e, "message"));
	}
	printable(code, 64, a, sizeof(a));
	printable(desc, 180, b, sizeof(b));
	err_set(err, errlen, "%s answered HTTP %d%s%s%s%s", what, status, a[0] ? ": " : "", a,
	       b[0] ? ": " : "", b);
	json_decref(j);
}

int cred_http_get(const char *url, const char *address, const char *ca_file, int timeout_ms,
		  int *status, char **body, char *err, size_t errlen)
{
	struct cred c;
	char why[160];
	int rc;

	memset(&c, 0, sizeof(c));
	*body = NULL;
	c.conf.name = "http";
	c.conf.address = (char *)address;
	c.conf.ca_file = (char *)ca_file;
	c.conf.timeout_ms = timeout_ms;
	ERR_clear_error();
	c.ctx = SSL_CTX_new(TLS_client_method());
	if (!c.ctx || !SSL_CTX_set_min_proto_version(c.ctx, TLS1_2_VERSION) ||
	    (ca_file ? SSL_CTX_load_verify_locations(c.ctx, ca_file, NULL) != 1
		     : SSL_CTX_set_default_verify_paths(c.ctx) != 1)) {
		err_set(err, errlen, "TLS context (CA %s): %s", ca_file ? ca_file : "system store",
		       ossl_reason(why, sizeof(why)));
		SSL_CTX_free(c.ctx);
		return -EIO;
	}
	SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(c.ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	rc = http_request(&c, "GET", url, NULL, NULL, 0, status, body, err, errlen);
	SSL_CTX_free(c.ctx);
	return rc;
}

/* ---- sources ------------------------------------------------------------------------- */

/* Fetch a token from the service-account token endpoint. */
static int fetch_sa(struct cred *c, char *tok, size_t toklen, long *life, char *err,
		    size_t errlen)
{
	char *assertion = malloc(8192), *body = NULL, *resp = NULL, uri[1024];
	int n, status = 0, rc;

	if (!assertion)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	n = assertion_locked(c, time(NULL), assertion, 8192, err, errlen);
	snprintf(uri, sizeof(uri), "%s", c->sa.token_uri ? c->sa.token_uri : "");
	pthread_mutex_unlock(&c->mu);
	if (n < 0) {
		free(assertion);
		return n;
	}
	body = malloc((size_t)n + 128);
	if (!body) {
		rc = -ENOMEM;
		goto out;
	}
	/* The assertion is base64url and '.', all form-safe. */
	n = snprintf(body, (size_t)n + 128,
		     "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
		     "&assertion=%s", assertion);
	rc = http_request(c, "POST", uri,
			  "Content-Type: application/x-www-form-urlencoded\r\n", body, (size_t)n,
			  &status, &resp, err, errlen);
	if (rc)
		goto out;
	if (status != 200) {
		endpoint_error(status, resp, uri, err, errlen);
		rc = -EIO;
		goto out;
	}
	rc = parse_token(resp, tok, toklen, life, err, errlen);
out:
	OPENSSL_cleanse(assertion, 8192);
	free(assertion);
	if (body)
		OPENSSL_cleanse(body, strlen(body));
	free(body);
	if (resp)
		OPENSSL_cleanse(resp, strlen(resp));
	free(resp);
	return rc;
}

/* Fetch a token from the metadata server. */
static int fetch_metadata(struct cred *c, char *tok, size_t toklen, long *life, char *err,
			  size_t errlen)
{
	char url[1100], *resp = NULL;
	const char *base = c->conf.metadata_url ? c->conf.metadata_url : CRED_DEFAULT_METADATA_URL;
	int status = 0, rc;

	size_t bl = strcspn(base, "?#");

	while (bl > 8 && base[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, CRED_METADATA_PATH);
	rc = http_request(c, "GET", url, "Metadata-Flavor: Google\r\n", NULL, 0, &status, &resp,
			  err, errlen);
	if (rc)
		return rc;
	if (status != 200) {
		endpoint_error(status, resp, "the metadata server", err, errlen);
		rc = -EIO;
	} else {
		rc = parse_token(resp, tok, toklen, life, err, errlen);
	}
	OPENSSL_cleanse(resp, strlen(resp));
	free(resp);
	return rc;
}

/* Read the token file if it changed (or <force>). Returns 1 read, 0 unchanged, -errno. A
 * file holds the token alone or {"access_token", "expires_in"} (from its mtime). */
static int read_token_file(struct cred *c, int force, char *tok, size_t toklen, long long *exp_ms,
			   char *err, size_t errlen)
{
	struct stat st;
	size_t len = 0, b, e;
	char *buf;
	long life = 0;

	if (!force && !stat(c->conf.token_file, &st) &&
	    st.st_mtim.tv_sec == c->file_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->file_mtime.tv_nsec && st.st_ino == c->file_ino)
		return 0;
	buf = read_secret(c->conf.token_file, CRED_MAX_TOKEN + 4096, &st, &len, err, errlen);
	if (!buf)
		return -EACCES;
	c->file_mtime = st.st_mtim;
	c->file_ino = st.st_ino;
	for (b = 0; b < len && strchr(" \t\r\n", buf[b]); b++)
		;
	for (e = len; e > b && strchr(" \t\r\n", buf[e - 1]); e--)
		;
	buf[e] = '\0';
	*exp_ms = 0;
	if (buf[b] == '{') {
		if (parse_token(buf + b, tok, toklen, &life, err, errlen)) {
			free_secret(buf, len);
			return -EINVAL;
		}
		*exp_ms = (long long)st.st_mtim.tv_sec * 1000 + life * 1000 -
			  (long long)time(NULL) * 1000 + mono_ms();
	} else if (e == b || e - b >= toklen || strpbrk(buf + b, " \t\r\n")) {
		free_secret(buf, len);
		err_set(err, errlen, "%s: no token in the file (one line expected)",
		       c->conf.token_file);
		return -EINVAL;
	} else {
		memcpy(tok, buf + b, e - b + 1);
	}
	free_secret(buf, len);
	return 1;
}

/* ---- the refresher --------------------------------------------------------------------- */

/* When to refresh a token of <life_ms> obtained at <got>: 80% of its life, at least 5 min
 * before expiry for long tokens, half-way for very short ones. */
static long long refresh_at(long long got, long long life_ms)
{
	long long margin = life_ms / 5;

	if (margin < 300000 && margin < life_ms / 2)
		margin = life_ms / 2 < 300000 ? life_ms / 2 : 300000;
	return got + life_ms - margin;
}

/* One attempt; caller does not hold c->mu. Returns the next wake-up (monotonic ms). */
static long long refresh_once(struct cred *c, long long *backoff)
{
	char tok[CRED_MAX_TOKEN], err[256] = "";
	long life = 0;
	long long now = mono_ms(), exp_ms = 0, next;
	int rc;

	if (c->conf.source == CRED_TOKEN_FILE) {
		pthread_mutex_lock(&c->mu);
		rc = read_token_file(c, !c->expiry_ms, tok, sizeof(tok), &exp_ms, err, sizeof(err));
		if (rc > 0) {
			memcpy(c->token, tok, strlen(tok) + 1);
			c->expiry_ms = exp_ms ? exp_ms : LLONG_MAX;
			c->safety_ms = 0;
			c->st.fetches++;
			c->st.last_error[0] = '\0';
			log_info(MOD, "credential %s: token read from %s", cname(c),
				 c->conf.token_file);
		} else if (rc < 0) {
			c->st.failures++;
			snprintf(c->st.last_error, sizeof(c->st.last_error), "%s", err);
			log_warn(MOD, "credential %s: %s", cname(c), err);
		}
		c->attempted = 1;
		pthread_mutex_unlock(&c->mu);
		OPENSSL_cleanse(tok, sizeof(tok));
		return now + TOKEN_FILE_POLL_MS;
	}
	rc = c->conf.source == CRED_SERVICE_ACCOUNT
		     ? fetch_sa(c, tok, sizeof(tok), &life, err, sizeof(err))
		     : fetch_metadata(c, tok, sizeof(tok), &life, err, sizeof(err));
	now = mono_ms();
	pthread_mutex_lock(&c->mu);
	c->attempted = 1;
	if (!rc) {
		memcpy(c->token, tok, strlen(tok) + 1);
		c->expiry_ms = now + life * 1000LL;
		c->safety_ms = life * 100LL < 10000 ? life * 100LL : 10000;
		c->st.fetches++;
		c->st.last_error[0] = '\0';
		*backoff = BACKOFF_MIN_MS;
		next = refresh_at(now, life * 1000LL);
		log_debug(MOD, "credential %s: new token, valid %ld s", cname(c), life);
	} else {
		c->st.failures++;
		snprintf(c->st.last_error, sizeof(c->st.last_error), "%s", err);
		next = now + *backoff;
		*backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
		log_warn(MOD, "credential %s: token refresh failed (retry in %lld ms): %s",
			 cname(c), next - now, err);
	}
	pthread_mutex_unlock(&c->mu);
	OPENSSL_cleanse(tok, sizeof(tok));
	return next;
}

static void *refresher(void *arg)
{
	struct cred *c = arg;
	long long next = 0, backoff = BACKOFF_MIN_MS;
	struct timespec ts;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		if (c->kick || mono_ms() >= next) {
			c->kick = 0;
			pthread_mutex_unlock(&c->mu);
			next = refresh_once(c, &backoff);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		ts.tv_sec = next / 1000;
		ts.tv_nsec = (next % 1000) * 1000000;
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct cred *cred_new(const struct cred_conf *conf, char *err, size_t errlen)
{
	struct cred *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	char why[160], tok[CRED_MAX_TOKEN];
	long long exp_ms;
	struct url u;

	if (!c) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->conf = *conf;
	c->conf.name = dup_or_null(conf->name);
	c->conf.key_file = dup_or_null(conf->key_file);
	c->conf.scope = dup_or_null(conf->scope);
	c->conf.metadata_url = dup_or_null(conf->metadata_url);
	c->conf.token_file = dup_or_null(conf->token_file);
	c->conf.address = dup_or_null(conf->address);
	c->conf.ca_file = dup_or_null(conf->ca_file);

	ERR_clear_error();
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx || !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION)) {
		err_set(err, errlen, "TLS context: %s", ossl_reason(why, sizeof(why)));
		goto fail;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (c->conf.ca_file ? SSL_CTX_load_verify_locations(c->ctx, c->conf.ca_file, NULL) != 1
			    : SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		err_set(err, errlen, "credential %s: cannot load CA %s: %s", cname(c),
		       c->conf.ca_file ? c->conf.ca_file : "(system store)",
		       ossl_reason(why, sizeof(why)));
		goto fail;
	}
	switch (c->conf.source) {
	case CRED_SERVICE_ACCOUNT:
		if (!c->conf.key_file) {
			err_set(err, errlen, "credential %s: key_file is required", cname(c));
			goto fail;
		}
		if (sa_load(c->conf.key_file, &c->sa, err, errlen))
			goto fail;
		if (url_parse(c->sa.token_uri, &u) || !u.tls) {
			err_set(err, errlen, "%s: token_uri is not an https:// URL", c->conf.key_file);
			goto fail;
		}
		break;
	case CRED_METADATA:
		if (url_parse(c->conf.metadata_url ? c->conf.metadata_url
						   : CRED_DEFAULT_METADATA_URL, &u)) {
			err_set(err, errlen, "credential %s: metadata_url is not http://HOST[:PORT]",
			       cname(c));
			goto fail;
		}
		break;
	case CRED_TOKEN_FILE:
		if (!c->conf.token_file) {
			err_set(err, errlen, "credential %s: token_file is required", cname(c));
			goto fail;
		}
		if (read_token_file(c, 1, tok, sizeof(tok), &exp_ms, err, errlen) < 0) {
			OPENSSL_cleanse(tok, sizeof(tok));
			goto fail;
		}
		OPENSSL_cleanse(tok, sizeof(tok));
		memset(&c->file_mtime, 0, sizeof(c->file_mtime)); /* read again by the thread */
		break;
	default:
		err_set(err, errlen, "credential %s: unknown source", cname(c));
		goto fail;
	}
	return c;
fail:
	cred_free(c);
	return NULL;
}

int cred_start(struct cred *c, char *err, size_t errlen)
{
	int rc;

	if (c->started)
		return 0;
	rc = pthread_create(&c->thread, NULL, refresher, c);
	if (rc) {
		err_set(err, errlen, "credential %s: cannot start its thread: %s", cname(c),
		       strerror(rc));
		return -rc;
	}
	thread_name(c->thread, "sluiced-cred");
	c->started = 1;
	return 0;
}

int cred_reload(struct cred *c, char *err, size_t errlen)
{
	struct sa_key k;
	int rc;

	if (c->conf.source == CRED_SERVICE_ACCOUNT) {
		rc = sa_load(c->conf.key_file, &k, err, errlen);
		if (rc)
			return rc;
		pthread_mutex_lock(&c->mu);
		sa_free(&c->sa);
		c->sa = k;
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_lock(&c->mu);
	c->kick = 1;
	if (c->conf.source == CRED_TOKEN_FILE)
		memset(&c->file_mtime, 0, sizeof(c->file_mtime));
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

void cred_free(struct cred *c)
{
	if (!c)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	sa_free(&c->sa);
	SSL_CTX_free(c->ctx);
	OPENSSL_cleanse(c->token, sizeof(c->token));
	free(c->conf.name);
	free(c->conf.key_file);
	free(c->conf.scope);
	free(c->conf.metadata_url);
	free(c->conf.token_file);
	free(c->conf.address);
	free(c->conf.ca_file);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int cred_current(struct cred *c, char *out, size_t outlen, char *err, size_t errlen)
{
	long long now = mono_ms();
	size_t n;
	int rc;

	pthread_mutex_lock(&c->mu);
	if (c->expiry_ms && now < c->expiry_ms - c->safety_ms) {
		n = strlen(c->token);
		if (n >= outlen) {
			rc = -ENOSPC;
			err_set(err, errlen, "credential %s: token longer than the buffer", cname(c));
		} else {
			memcpy(out, c->token, n + 1);
			rc = 0;
		}
	} else if (!c->attempted || (!c->st.last_error[0] && !c->expiry_ms)) {
		rc = -EAGAIN;
		err_set(err, errlen, "sluice: credential %s: no Google token yet (the first fetch "
				    "is under way)", cname(c));
	} else {
		rc = -EIO;
		err_set(err, errlen, "sluice: credential %s: no valid Google token%s%s", cname(c),
		       c->st.last_error[0] ? ": " : (c->expiry_ms ? ": the token expired" : ""),
		       c->st.last_error);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void cred_status(struct cred *c, struct cred_status *st)
{
	long long now = mono_ms();

	pthread_mutex_lock(&c->mu);
	*st = c->st;
	st->expires_in_ms = !c->expiry_ms ? 0
			    : c->expiry_ms == LLONG_MAX ? LONG_MAX
						       : (long)(c->expiry_ms - now);
	pthread_mutex_unlock(&c->mu);
}

/* ---- configuration ----------------------------------------------------------------------- */



static char *cstr(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || !*json_string_value(v)) {
		snprintf(kp, sizeof(kp), "%s.%s", path, key);
		jsonpos_fail(c, kp, "must be a non-empty string");
		return NULL;
	}
	return strdup(json_string_value(v));
}


int cred_conf_load(json_t *obj, const char *path, const char *file, const char *text,
		   size_t len, struct cred_conf *out, char *err, size_t errlen)
{
	static const char *const keys[] = { "source", "key_file", "scope", "metadata_url",
					    "token_file", "override", "timeout_ms", NULL };
	static const char *const okeys[] = { "address", "ca_file", NULL };
	struct jsonpos_ctx c = { file ? file : "(config)", text, len, err, errlen, 0 };
	json_t *src, *ov, *t;
	char kp[400], op[300];
	const char *s;

	memset(out, 0, sizeof(*out));
	out->source = CRED_METADATA;
	if (!obj)
		return 0;
	if (!json_is_object(obj)) {
		jsonpos_fail(&c, path, "must be an object ({...})");
		return -EINVAL;
	}
	jsonpos_known_keys(&c, obj, path, keys);
	out->key_file = cstr(&c, obj, path, "key_file");
	out->scope = cstr(&c, obj, path, "scope");
	out->metadata_url = cstr(&c, obj, path, "metadata_url");
	out->token_file = cstr(&c, obj, path, "token_file");
	src = json_object_get(obj, "source");
	snprintf(kp, sizeof(kp), "%s.source", path);
	s = json_string_value(src);
	if (src && !s)
		jsonpos_fail(&c, kp, "must be \"service_account\", \"metadata\" or \"token_file\"");
	else if (!s)
		out->source = out->key_file ? CRED_SERVICE_ACCOUNT
			      : out->token_file ? CRED_TOKEN_FILE : CRED_METADATA;
	else if (!strcmp(s, "service_account"))
		out->source = CRED_SERVICE_ACCOUNT;
	else if (!strcmp(s, "metadata"))
		out->source = CRED_METADATA;
	else if (!strcmp(s, "token_file"))
		out->source = CRED_TOKEN_FILE;
	else
		jsonpos_fail(&c, kp, "must be \"service_account\", \"metadata\" or \"token_file\"");
	if (out->source == CRED_SERVICE_ACCOUNT && !out->key_file)
		jsonpos_fail(&c, kp, "service_account needs key_file (the service-account JSON key)");
	if (out->source == CRED_TOKEN_FILE && !out->token_file)
		jsonpos_fail(&c, kp, "token_file needs token_file");
	if (out->metadata_url && strncmp(out->metadata_url, "http://", 7)) {
		snprintf(kp, sizeof(kp), "%s.metadata_url", path);
		jsonpos_fail(&c, kp, "must be http://HOST[:PORT] (the metadata server speaks plain HTTP)");
	}
	t = json_object_get(obj, "timeout_ms");
	if (t && (!json_is_integer(t) || json_integer_value(t) < 100 ||
		  json_integer_value(t) > 120000)) {
		snprintf(kp, sizeof(kp), "%s.timeout_ms", path);
		jsonpos_fail(&c, kp, "must be an integer between 100 and 120000");
	}
	out->timeout_ms = t ? (int)json_integer_value(t) : 0;
	ov = json_object_get(obj, "override");
	snprintf(op, sizeof(op), "%s.override", path);
	if (ov && !json_is_object(ov)) {
		jsonpos_fail(&c, op, "must be an object {address, ca_file}");
	} else if (ov) {
		jsonpos_known_keys(&c, ov, op, okeys);
		out->address = cstr(&c, ov, op, "address");
		out->ca_file = cstr(&c, ov, op, "ca_file");
		if (out->address && !strrchr(out->address, ':')) {
			snprintf(kp, sizeof(kp), "%s.address", op);
			jsonpos_fail(&c, kp, "must be IP:PORT");
		}
	}
	if (c.failed) {
		cred_conf_free(out);
		return -EINVAL;
	}
	return 0;
}

void cred_conf_free(struct cred_conf *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->key_file);
	free(c->scope);
	free(c->metadata_url);
	free(c->token_file);
	free(c->address);
	free(c->ca_file);
	memset(c, 0, sizeof(*c));
}
