/* Description: sluiced's Google credential: the service-account JWT-bearer assertion
 * (signature and claims checked with OpenSSL), key and token file checks (modes, no key
 * material in messages), and the refresher against fake token endpoints run in this test:
 * an HTTPS OAuth endpoint (test CA, SNI host oauth2.googleapis.com reached through an
 * address override), a plain HTTP metadata server, and a token file that changes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "cred.h"
#include "identity.h"
#include "tap.h"

static char dir[] = "/tmp/sluice-cred-test-XXXXXX";
static char keyfile[256], cafile[256], otherca[256], tokfile[256], badhost_key[256];
static EVP_PKEY *sa_key;

/* The fake endpoint. */
struct server {
	int fd, port, tls, stop;
	SSL_CTX *ctx;
	pthread_t th;
	pthread_mutex_t mu;
	int mode;            /* 0: tokens, 1: HTTP 500 */
	int expires_in;
	int requests;
	char last_req[16384];
	int assertion_ok;    /* the last assertion verified with the SA public key */
};

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror("write");
		fchmod(fd, mode);
		close(fd);
	}
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

/* A service-account key file for <key> with <token_uri>. */
static void write_sa(const char *path, EVP_PKEY *key, const char *token_uri, mode_t mode)
{
	char *pem = pem_priv(key), *s;
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
			      "project_id", "demo", "private_key_id", "kid-123", "private_key", pem,
			      "client_email", "sluiced@demo.iam.gserviceaccount.com", "token_uri",
			      token_uri);

	s = json_dumps(j, 0);
	write_file(path, s, mode);
	free(s);
	free(pem);
	json_decref(j);
}

static X509 *make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *ikey)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL) ^ (long)(size_t)x);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (san) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, ikey ? ikey : key, EVP_sha256());
	return x;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");

	PEM_write_X509(f, x);
	fclose(f);
}

/* Verify the JWT-bearer assertion <a> with the SA public key; 1 when valid. */
static int assertion_valid(const char *a, json_t **payload)
{
	const char *d1 = strchr(a, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char sig[600], buf[4096];
	EVP_MD_CTX *md;
	int n, ok;

	if (!d2)
		return 0;
	n = identity_b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof(sig));
	md = EVP_MD_CTX_new();
	ok = n > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, sa_key) == 1 &&
	     EVP_DigestVerify(md, sig, (size_t)n, (const unsigned char *)a, (size_t)(d2 - a)) == 1;
	EVP_MD_CTX_free(md);
	if (payload) {
		n = identity_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof(buf));
		*payload = n > 0 ? json_loadb((char *)buf, (size_t)n, 0, NULL) : NULL;
	}
	return ok;
}

static void serve_one(struct server *s, int fd)
{
	char req[16384], resp[1024], body[512];
	SSL *ssl = NULL;
	size_t len = 0;
	int n, status;
	char *hend, *cl, *a;

	if (s->tls) {
		ssl = SSL_new(s->ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)
			goto out;
	}
	for (;;) {
		n = ssl ? SSL_read(ssl, req + len, (int)(sizeof(req) - 1 - len))
			: (int)recv(fd, req + len, sizeof(req) - 1 - len, 0);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		req[len] = '\0';
		hend = strstr(req, "\r\n\r\n");
		if (!hend)
			continue;
		cl = strcasestr(req, "Content-Length:");
		if (!cl || len - (size_t)(hend + 4 - req) >= strtoul(cl + 15, NULL, 10))
			break;
	}
	pthread_mutex_lock(&s->mu);
	s->requests++;
	memcpy(s->last_req, req, len + 1);
	a = strstr(req, "assertion=");
	s->assertion_ok = a && assertion_valid(a + 10, NULL);
	if (s->mode == 1) {
		status = 500;
		snprintf(body, sizeof(body),
			 "{\"error\":\"internal_failure\",\"error_description\":\"backend down\"}");
	} else {
		status = 200;
		snprintf(body, sizeof(body),
			 "{\"access_token\":\"%s-%d\",\"expires_in\":%d,\"token_type\":\"Bearer\"}",
			 s->tls ? "tok" : "meta", s->requests, s->expires_in);
	}
	pthread_mutex_unlock(&s->mu);
	if (status == 200 && s->requests % 2) /* alternate framings */
		n = snprintf(resp, sizeof(resp),
			     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	else
		n = snprintf(resp, sizeof(resp),
			     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n", status,
			     strlen(body), body);
	if (ssl)
		SSL_write(ssl, resp, n);
	else if (send(fd, resp, (size_t)n, MSG_NOSIGNAL) < 0)
		perror("send");
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	int fd;

	while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
		if (poll(&p, 1, 50) != 1)
			continue;
		fd = accept(s->fd, NULL, NULL);
		if (fd >= 0)
			serve_one(s, fd);
	}
	return NULL;
}

static void server_start(struct server *s, int tls, X509 *cert, EVP_PKEY *key)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->tls = tls;
	s->expires_in = 2;
	if (tls) {
		s->ctx = SSL_CTX_new(TLS_server_method());
		SSL_CTX_use_certificate(s->ctx, cert);
		SSL_CTX_use_PrivateKey(s->ctx, key);
	}
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(s->fd, (struct sockaddr *)&sa, sizeof(sa));
	listen(s->fd, 16);
	getsockname(s->fd, (struct sockaddr *)&sa, &sl);
	s->port = ntohs(sa.sin_port);
	pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(s->th, NULL);
	close(s->fd);
	SSL_CTX_free(s->ctx);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll cred_current until it returns <want> or <ms> pass; the last rc. */
static int wait_current(struct cred *c, int want, int ms, char *tok, size_t toklen, char *err,
			size_t errlen)
{
	long long end = now_ms() + ms;
	int rc;

	do {
		rc = cred_current(c, tok, toklen, err, errlen);
		if (rc == want)
			return rc;
		usleep(20000);
	} while (now_ms() < end);
	return rc;
}

static void assertion(void)
{
	struct cred_conf conf = { .name = "bq", .source = CRED_SERVICE_ACCOUNT, .key_file = keyfile };
	struct cred *c;
	char err[512], a[8192];
	const char *d1;
	unsigned char buf[1024];
	json_t *p, *h;
	time_t now = time(NULL);
	int n;

	c = cred_new(&conf, err, sizeof(err));
	ok(c != NULL, "a service-account credential loads (%s)", c ? "" : err);
	if (!c)
		return;
	n = cred_sa_assertion(c, now, a, sizeof(a), err, sizeof(err));
	ok(n > 0 && assertion_valid(a, &p), "the assertion's RS256 signature verifies");
	is_str(json_string_value(json_object_get(p, "iss")), "sluiced@demo.iam.gserviceaccount.com",
	       "iss is client_email");
	is_str(json_string_value(json_object_get(p, "scope")), CRED_DEFAULT_SCOPE,
	       "scope is BigQuery by default");
	is_str(json_string_value(json_object_get(p, "aud")), "https://oauth2.googleapis.com/token",
	       "aud is token_uri");
	ok(json_integer_value(json_object_get(p, "iat")) == now &&
		   json_integer_value(json_object_get(p, "exp")) == now + 3600,
	   "iat is now, exp is iat + 3600");
	json_decref(p);
	d1 = strchr(a, '.');
	n = identity_b64url_decode(a, (size_t)(d1 - a), buf, sizeof(buf));
	h = json_loadb((char *)buf, n > 0 ? (size_t)n : 0, 0, NULL);
	ok(!strcmp(json_string_value(json_object_get(h, "alg")) ?: "", "RS256") &&
		   !strcmp(json_string_value(json_object_get(h, "kid")) ?: "", "kid-123"),
	   "header: alg RS256, kid private_key_id");
	json_decref(h);
	is_int(cred_current(c, a, sizeof(a), err, sizeof(err)), -EAGAIN,
	       "before its thread runs, cred_current is -EAGAIN (%s)", err);
	cred_free(c);
}

static void key_files(void)
{
	struct cred_conf conf = { .name = "bq", .source = CRED_SERVICE_ACCOUNT, .key_file = keyfile };
	char err[512], p[300];
	struct cred *c;

	chmod(keyfile, 0644);
	c = cred_new(&conf, err, sizeof(err));
	ok(!c && strstr(err, "group or others") && strstr(err, "chmod 600") &&
		   !strstr(err, "PRIVATE"),
	   "a 0644 key file is refused (%s)", err);
	cred_free(c);
	chmod(keyfile, 0640);
	c = cred_new(&conf, err, sizeof(err));
	ok(!c, "a 0640 key file is refused too");
	cred_free(c);
	chmod(keyfile, 0600);

	path_in(p, sizeof(p), "broken.json");
	write_file(p, "{\"private_key\": \"SECRETMARKER-abc\" oops", 0600);
	conf.key_file = p;
	c = cred_new(&conf, err, sizeof(err));
	ok(!c && !strstr(err, "SECRETMARKER") && strstr(err, "broken.json"),
	   "a broken key file is refused without quoting it (%s)", err);
	cred_free(c);
	write_file(p, "{\"type\": \"service_account\", \"client_email\": \"a@b\", \"private_key\": "
		      "\"-----BEGIN PRIVATE KEY-----\\nSECRETMARKER\\n-----END PRIVATE KEY-----\\n\"}",
		   0600);
	c = cred_new(&conf, err, sizeof(err));
	ok(!c && !strstr(err, "SECRETMARKER") && strstr(err, "private_key"),
	   "a bad private_key is refused without quoting it (%s)", err);
	cred_free(c);
	conf.key_file = "/nonexistent/key.json";
	c = cred_new(&conf, err, sizeof(err));
	ok(!c && strstr(err, "/nonexistent/key.json"), "a missing key file is named (%s)", err);
	cred_free(c);
}

static void oauth_endpoint(X509 *cert, EVP_PKEY *key)
{
	struct server s;
	struct cred_conf conf = { .name = "bq", .source = CRED_SERVICE_ACCOUNT, .key_file = keyfile,
				  .ca_file = cafile };
	struct cred_status st;
	char err[512], tok[CRED_MAX_TOKEN], addr[64], first[64];
	struct cred *c;
	long long t0;
	int rc;

	server_start(&s, 1, cert, key);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s.port);
	conf.address = addr;
	c = cred_new(&conf, err, sizeof(err));
	ok(c && !cred_start(c, err, sizeof(err)), "started against the fake endpoint (%s)",
	   c ? "" : err);
	if (!c) {
		server_stop(&s);
		return;
	}
	rc = wait_current(c, 0, 5000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == 0 && !strncmp(tok, "tok-", 4), "cred_current returns the endpoint's token (%s)",
	   rc ? err : tok);
	snprintf(first, sizeof(first), "%.60s", tok);
	pthread_mutex_lock(&s.mu);
	ok(!strncmp(s.last_req, "POST /token HTTP/1.1\r\n", 22) &&
		   strcasestr(s.last_req, "\r\nHost: oauth2.googleapis.com\r\n") &&
		   strcasestr(s.last_req, "Content-Type: application/x-www-form-urlencoded") &&
		   strstr(s.last_req, "\r\n\r\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type"
				      "%3Ajwt-bearer&assertion="),
	   "the request is a JWT-bearer POST to the token_uri (over TLS to SNI "
	   "oauth2.googleapis.com, verified by the test CA)");
	ok(s.assertion_ok, "... whose assertion the endpoint verifies");
	pthread_mutex_unlock(&s.mu);

	/* expires_in 2 s: a refresh comes before expiry. */
	t0 = now_ms();
	while (now_ms() - t0 < 3000) {
		if (!cred_current(c, tok, sizeof(tok), err, sizeof(err)) && strcmp(tok, first))
			break;
		usleep(20000);
	}
	ok(strcmp(tok, first) && now_ms() - t0 < 2000,
	   "a new token (%s) replaced %s before the first expired (%lld ms)", tok, first,
	   now_ms() - t0);
	cred_status(c, &st);
	ok(st.fetches >= 2 && st.failures == 0 && st.expires_in_ms > 0,
	   "status: %ld fetches, %ld failures", st.fetches, st.failures);

	/* The endpoint fails: the old token is served until it expires, then a clear error. */
	pthread_mutex_lock(&s.mu);
	s.mode = 1;
	pthread_mutex_unlock(&s.mu);
	t0 = now_ms();
	do {
		cred_status(c, &st);
		if (st.failures)
			break;
		usleep(10000);
	} while (now_ms() - t0 < 3000);
	rc = cred_current(c, tok, sizeof(tok), err, sizeof(err));
	ok(st.failures >= 1 && rc == 0 && !strncmp(tok, "tok-", 4),
	   "after a failed refresh the cached token is still served (%s)", st.last_error);
	ok(strstr(st.last_error, "500") && strstr(st.last_error, "backend down"),
	   "... and the failure is recorded with the endpoint's reason");
	rc = wait_current(c, -EIO, 3000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == -EIO && strstr(err, "no valid Google token") && strstr(err, "HTTP 500") &&
		   strstr(err, "internal_failure"),
	   "once it expired: -EIO with the reason (%s)", err);
	ok(!strstr(err, "PRIVATE") && !strstr(err, "assertion="), "... never quoting secrets");

	/* It recovers. */
	pthread_mutex_lock(&s.mu);
	s.mode = 0;
	s.expires_in = 3600;
	pthread_mutex_unlock(&s.mu);
	rc = wait_current(c, 0, 5000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == 0, "the endpoint back, a token is served again (%s)", rc ? err : tok);
	ok(!cred_reload(c, err, sizeof(err)), "reload re-reads the key (%s)", err);
	cred_free(c);
	{
		char *body = NULL;
		int status = 0;

		rc = cred_http_get("https://oauth2.googleapis.com/jwks", addr, cafile, 3000,
				   &status, &body, err, sizeof(err));
		ok(rc == 0 && status == 200 && body && strstr(body, "access_token"),
		   "cred_http_get fetches over verified TLS (%s)", rc ? err : body);
		pthread_mutex_lock(&s.mu);
		ok(!strncmp(s.last_req, "GET /jwks HTTP/1.1\r\n", 20), "... with a GET");
		pthread_mutex_unlock(&s.mu);
		free(body);
	}

	/* Verification failures. */
	conf.ca_file = otherca;
	c = cred_new(&conf, err, sizeof(err));
	cred_start(c, err, sizeof(err));
	rc = wait_current(c, -EIO, 5000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == -EIO && strstr(err, "certificate verify failed"),
	   "an endpoint the CA does not vouch for is refused (%s)", err);
	cred_free(c);
	conf.ca_file = cafile;
	conf.key_file = badhost_key;
	c = cred_new(&conf, err, sizeof(err));
	cred_start(c, err, sizeof(err));
	rc = wait_current(c, -EIO, 5000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == -EIO && strstr(err, "other.example.com") && strstr(err, "hostname mismatch"),
	   "a certificate for another host name is refused (%s)", err);
	cred_free(c);
	server_stop(&s);
}

#define MD_LINE "GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\n"

static void metadata(void)
{
	struct server s;
	struct cred_conf conf = { .name = "gce", .source = CRED_METADATA };
	char err[512], tok[CRED_MAX_TOKEN], url[64];
	struct cred *c;
	int rc;

	server_start(&s, 0, NULL, NULL);
	s.expires_in = 3599;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
	conf.metadata_url = url;
	c = cred_new(&conf, err, sizeof(err));
	ok(c && !cred_start(c, err, sizeof(err)), "a metadata credential starts (%s)",
	   c ? "" : err);
	rc = c ? wait_current(c, 0, 5000, tok, sizeof(tok), err, sizeof(err)) : -1;
	ok(rc == 0 && !strcmp(tok, "meta-1"), "the metadata server's token is served (%s)",
	   rc ? err : tok);
	pthread_mutex_lock(&s.mu);
	ok(!strncmp(s.last_req, MD_LINE, strlen(MD_LINE)) && strcasestr(s.last_req, "\r\nMetadata-Flavor: Google\r\n"),
	   "... asked with GET and Metadata-Flavor: Google");
	pthread_mutex_unlock(&s.mu);
	cred_free(c);
	server_stop(&s);

	conf.metadata_url = "http://127.0.0.1:1";
	c = cred_new(&conf, err, sizeof(err));
	cred_start(c, err, sizeof(err));
	rc = wait_current(c, -EIO, 5000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == -EIO && strstr(err, "cannot connect"), "an unreachable server: -EIO (%s)", err);
	cred_free(c);
}

static void token_file(void)
{
	struct cred_conf conf = { .name = "file", .source = CRED_TOKEN_FILE, .token_file = tokfile };
	char err[512], tok[CRED_MAX_TOKEN];
	struct timespec ts[2] = { { 0, 0 }, { 0, 0 } };
	struct cred *c;
	long long t0;
	int rc;

	write_file(tokfile, "file-token-1\n", 0644);
	c = cred_new(&conf, err, sizeof(err));
	ok(!c && strstr(err, "chmod 600"), "a 0644 token file is refused (%s)", err);
	cred_free(c);
	chmod(tokfile, 0600);
	c = cred_new(&conf, err, sizeof(err));
	ok(c && !cred_start(c, err, sizeof(err)), "a token-file credential starts (%s)",
	   c ? "" : err);
	if (!c)
		return;
	rc = wait_current(c, 0, 3000, tok, sizeof(tok), err, sizeof(err));
	ok(rc == 0 && !strcmp(tok, "file-token-1"), "the file's token is served (%s)",
	   rc ? err : tok);
	write_file(tokfile, "file-token-2", 0600);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) + 5;
	utimensat(AT_FDCWD, tokfile, ts, 0);
	t0 = now_ms();
	while (now_ms() - t0 < 4000) {
		if (!cred_current(c, tok, sizeof(tok), err, sizeof(err)) &&
		    !strcmp(tok, "file-token-2"))
			break;
		usleep(50000);
	}
	is_str(tok, "file-token-2", "a changed token file is re-read");
	cred_free(c);
}

static int conf_from(const char *text, struct cred_conf *c, char *err, size_t errlen)
{
	json_t *doc = json_loads(text, 0, NULL);
	int rc = cred_conf_load(json_object_get(doc, "credential"), "credential", "t.json", text,
				strlen(text), c, err, errlen);

	json_decref(doc);
	return rc;
}

static void config(void)
{
	struct cred_conf c;
	char err[512];

	is_int(conf_from("{\"credential\": {\"key_file\": \"/k.json\", \"override\": {\"address\": "
			 "\"127.0.0.1:8443\", \"ca_file\": \"/ca.pem\"}}}", &c, err, sizeof(err)),
	       0, "a configuration loads (%s)", err);
	ok(c.source == CRED_SERVICE_ACCOUNT && !strcmp(c.address, "127.0.0.1:8443") &&
		   !strcmp(c.ca_file, "/ca.pem"),
	   "... a key_file means service_account; the override is taken");
	cred_conf_free(&c);
	is_int(conf_from("{}", &c, err, sizeof(err)), 0, "no section: the metadata server");
	ok(c.source == CRED_METADATA, "... is the default");
	ok(conf_from("{\"credential\": {\n\"source\": \"service_account\"}}", &c, err,
		     sizeof(err)) == -EINVAL &&
		   strstr(err, "t.json:2: credential.source: ") && strstr(err, "key_file"),
	   "service_account without key_file is refused (%s)", err);
	ok(conf_from("{\"credential\": {\"metadata_url\": \"https://x\"}}", &c, err, sizeof(err)) ==
			   -EINVAL && strstr(err, "credential.metadata_url"),
	   "an https metadata_url is refused (%s)", err);
	ok(conf_from("{\"credential\": {\"keyfile\": \"x\"}}", &c, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "credential.keyfile: unknown key"),
	   "an unknown key is refused (%s)", err);
}

int main(void)
{
	EVP_PKEY *ca_key, *srv_key, *other_key;
	X509 *ca, *srv, *other;

	if (!mkdtemp(dir))
		tap_skip_all("no temporary directory");
	path_in(keyfile, sizeof(keyfile), "sa.json");
	path_in(badhost_key, sizeof(badhost_key), "sa-other-host.json");
	path_in(cafile, sizeof(cafile), "ca.pem");
	path_in(otherca, sizeof(otherca), "other-ca.pem");
	path_in(tokfile, sizeof(tokfile), "token");
	sa_key = EVP_RSA_gen(2048);
	write_sa(keyfile, sa_key, "https://oauth2.googleapis.com/token", 0600);
	write_sa(badhost_key, sa_key, "https://other.example.com/token", 0600);
	ca_key = EVP_EC_gen("P-256");
	srv_key = EVP_EC_gen("P-256");
	other_key = EVP_EC_gen("P-256");
	ca = make_cert("sluice test CA", NULL, ca_key, NULL, NULL);
	other = make_cert("another CA", NULL, other_key, NULL, NULL);
	srv = make_cert("oauth2.googleapis.com", "DNS:oauth2.googleapis.com", srv_key, ca, ca_key);
	write_cert(cafile, ca);
	write_cert(otherca, other);

	config();
	assertion();
	key_files();
	oauth_endpoint(srv, srv_key);
	metadata();
	token_file();

	X509_free(ca);
	X509_free(srv);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(sa_key);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			printf("# could not remove %s\n", dir);
	}
	return tap_done();
}
