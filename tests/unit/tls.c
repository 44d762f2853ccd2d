/* Description: the local CA (files, modes, constraints), leaf minting and caching, full
 * handshakes between tls_conn_client and tls_conn_server through memory, the failures a
 * client must report, concurrent minting, and the sluicectl ca commands. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "tap.h"
#include "tls.h"

static char dir[] = "/tmp/sluice-tls-test-XXXXXX";
static char cert[256], key[256], cert2[256], key2[256];
/* Failure reasons of the last handshake: arrays, so that a message printing them is
 * formatted after the call that fills them (argument evaluation order is unspecified). */
static char why_c[400], why_s[400];

/* Move all ciphertext <from> has for <to>; returns the bytes moved. */
static size_t move(struct tls_conn *from, struct tls_conn *to)
{
	char buf[16384];
	size_t total = 0;
	long n;

	while ((n = tls_conn_take_out(from, buf, sizeof(buf))) > 0) {
		tls_conn_feed(to, buf, (size_t)n);
		total += (size_t)n;
	}
	return total;
}

static void step(struct tls_conn *t, int *rc, char *why)
{
	const char *w = NULL;

	if (*rc == 0) {
		*rc = tls_conn_handshake(t, &w);
		if (*rc < 0)
			snprintf(why, sizeof(why_c), "%s", w);
	}
}

/* Run both handshakes, shuttling bytes, until both are done or nothing moves, with the
 * reasons in <wc> and <ws> (sizeof(why_c) bytes). Returns 1 both done, -1 the client
 * failed, -2 the server failed (and the client not), 0 stuck. */
static int handshake_w(struct tls_conn *c, struct tls_conn *s, char *wc, char *ws)
{
	int rc_c = 0, rc_s = 0, i;
	size_t moved;

	wc[0] = ws[0] = '\0';
	for (i = 0; i < 20; i++) {
		step(c, &rc_c, wc);
		moved = move(c, s);
		step(s, &rc_s, ws);
		moved += move(s, c);
		if (rc_c == 1 && rc_s == 1)
			return 1;
		if (!moved && (rc_c < 0 || rc_s < 0))
			break;
	}
	return rc_c < 0 ? -1 : rc_s < 0 ? -2 : 0;
}

static int handshake(struct tls_conn *c, struct tls_conn *s)
{
	return handshake_w(c, s, why_c, why_s);
}

static int pair(struct tls_client *cl, const char *host, struct tls_server *sv,
		const char *sni, struct tls_conn **c, struct tls_conn **s)
{
	*c = tls_conn_client(cl, host);
	*s = tls_conn_server(sv, sni);
	if (!*c || !*s)
		return 0;
	return handshake(*c, *s);
}

static void unpair(struct tls_conn *c, struct tls_conn *s)
{
	tls_conn_free(c);
	tls_conn_free(s);
}

static int leaf_san_is(X509 *x, const char *name)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	GENERAL_NAME *g;
	int ok = 0;

	if (gens && sk_GENERAL_NAME_num(gens) == 1) {
		g = sk_GENERAL_NAME_value(gens, 0);
		ok = g->type == GEN_DNS && (size_t)ASN1_STRING_length(g->d.dNSName) == strlen(name) &&
		     !memcmp(ASN1_STRING_get0_data(g->d.dNSName), name, strlen(name));
	}
	GENERAL_NAMES_free(gens);
	return ok;
}

/* Seconds from now until <t>. */
static long secs_left(const ASN1_TIME *t)
{
	int days = 0, secs = 0;

	ASN1_TIME_diff(&days, &secs, NULL, t);
	return days * 86400L + secs;
}

static int count_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void ca_files(void)
{
	const char *permit[] = { "googleapis.com" }, *bad[] = { "googleapis.com", "a b.com" };
	char err[512];
	struct stat st;
	struct tls_ca *ca;

	mode_t old = umask(0077);

	err[0] = '\0';
	if (!is_int(tls_ca_init(cert, key, permit, 1, err, sizeof(err)), 0, "ca init"))
		printf("# %s\n", err);
	umask(old);
	memset(&st, 0, sizeof(st));
	stat(key, &st);
	is_int(st.st_mode & 07777, 0600, "key is mode 0600");
	memset(&st, 0, sizeof(st));
	stat(cert, &st);
	is_int(st.st_mode & 07777, 0644, "certificate is mode 0644 (even under umask 077)");
	is_int(tls_ca_init(cert, key, permit, 1, err, sizeof(err)), -EEXIST,
	       "a second init is refused");
	ok(strstr(err, "already exists") && strstr(err, key), "... saying what exists (%s)", err);
	is_int(tls_ca_init(cert2, key, permit, 1, err, sizeof(err)), -EEXIST,
	       "an existing key alone is enough to refuse (%s)", err);
	ok(access(cert2, F_OK) != 0, "... and nothing was created");
	ok(count_files() == 2, "no temporary file is left behind");
	is_int(tls_ca_init(cert2, key2, bad, 2, err, sizeof(err)), -EINVAL,
	       "a permitted suffix that is not a DNS name is refused (%s)", err);
	is_int(tls_ca_init(cert2, key2, permit, 0, err, sizeof(err)), -EINVAL,
	       "no permitted suffix is refused (%s)", err);
	is_int(tls_ca_init(key2, key2, permit, 1, err, sizeof(err)), -EINVAL,
	       "one path for both is refused (%s)", err);

	chmod(key, 0644);
	ca = tls_ca_load(cert, key, err, sizeof(err));
	ok(!ca && strstr(err, "group or others") && strstr(err, "chmod 600"),
	   "a 0644 key is refused (%s)", err);
	tls_ca_free(ca);
	chmod(key, 0640);
	ca = tls_ca_load(cert, key, err, sizeof(err));
	ok(!ca, "a 0640 key is refused too");
	tls_ca_free(ca);
	chmod(key, 0600);
	ca = tls_ca_load(cert, "/nonexistent/ca.key", err, sizeof(err));
	ok(!ca && strstr(err, "sluicectl ca init"), "a missing key says what to do (%s)", err);
	tls_ca_free(ca);
	ca = tls_ca_load(key, key, err, sizeof(err));
	ok(!ca && strstr(err, "certificate"), "a key as certificate is refused (%s)", err);
	tls_ca_free(ca);
}

static void ca_extensions(X509 *x)
{
	NAME_CONSTRAINTS *nc;
	BASIC_CONSTRAINTS *bc;
	GENERAL_SUBTREE *t;
	X509_EXTENSION *ext;
	char cn[128] = "";
	int i, crit = -1, ip_ok = 0;

	ext = X509_get_ext(x, X509_get_ext_by_NID(x, NID_name_constraints, -1));
	ok(ext && X509_EXTENSION_get_critical(ext), "nameConstraints present and critical");
	nc = X509_get_ext_d2i(x, NID_name_constraints, &crit, NULL);
	ok(nc && sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) == 1, "one permitted subtree");
	t = nc ? sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 0) : NULL;
	ok(t && t->base->type == GEN_DNS &&
		   !strcmp((const char *)ASN1_STRING_get0_data(t->base->d.dNSName), "googleapis.com"),
	   "permitted: DNS googleapis.com");
	for (i = 0; nc && i < sk_GENERAL_SUBTREE_num(nc->excludedSubtrees); i++) {
		t = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, i);
		if (t->base->type == GEN_IPADD) {
			const unsigned char *p = ASN1_STRING_get0_data(t->base->d.iPAddress);
			int n = ASN1_STRING_length(t->base->d.iPAddress), j, zero = 1;

			for (j = 0; j < n; j++)
				zero &= p[j] == 0;
			ip_ok += zero && (n == 8 || n == 32) ? n : 100;
		}
	}
	is_int(ip_ok, 40, "excluded: every IPv4 and every IPv6 address");
	NAME_CONSTRAINTS_free(nc);

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	ok(bc && bc->ca && crit == 1 && bc->pathlen && ASN1_INTEGER_get(bc->pathlen) == 0,
	   "basicConstraints critical, CA:TRUE, pathlen:0");
	BASIC_CONSTRAINTS_free(bc);
	ext = X509_get_ext(x, X509_get_ext_by_NID(x, NID_key_usage, -1));
	ok(ext && X509_EXTENSION_get_critical(ext) &&
		   X509_get_key_usage(x) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN),
	   "keyUsage critical, keyCertSign + cRLSign only");
	ok(X509_get0_subject_key_id(x) != NULL, "subjectKeyIdentifier present");
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	ok(!strncmp(cn, "sluice local CA (", 17), "subject CN (%s)", cn);
	ok(secs_left(X509_get0_notAfter(x)) / 86400 == 3652, "valid 10 years");
	ok(EVP_PKEY_is_a(X509_get0_pubkey(x), "EC"), "EC key");
}

static void handshakes(X509 *ca, struct tls_server *sv, struct tls_client *cl)
{
	const char *sni = "bigquery.googleapis.com";
	static char big[200000], got[200000];
	struct tls_conn *c, *s, *c2, *s2;
	ASN1_INTEGER *serial1 = NULL;
	X509 *leaf, *l1, *l2;
	size_t total;
	long n;

	c = tls_conn_client(cl, sni);
	s = tls_conn_server(sv, sni);
	SSL_set_alpn_protos(tls_conn_ssl(c), (const unsigned char *)"\x02h2\x08http/1.1", 12);
	is_int(handshake(c, s), 1, "client and server complete a handshake");
	is_str(tls_conn_alpn(s), "http/1.1", "server chose http/1.1 over h2");
	is_str(tls_conn_alpn(c), "http/1.1", "client agrees on http/1.1");
	is_int(SSL_version(tls_conn_ssl(c)), TLS1_3_VERSION, "TLS 1.3 negotiated");
	leaf = SSL_get0_peer_certificate(tls_conn_ssl(c));
	ok(leaf && leaf_san_is(leaf, sni), "leaf SAN is exactly DNS:%s", sni);
	ok(leaf && (X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER) &&
		   X509_check_issued(ca, leaf) == X509_V_OK &&
		   X509_get0_authority_key_id(leaf),
	   "leaf: serverAuth, issued by the CA, with an AKI");
	ok(leaf && secs_left(X509_get0_notAfter(leaf)) > 86400 - 60 &&
		   secs_left(X509_get0_notAfter(leaf)) <= 86400 &&
		   secs_left(X509_get0_notBefore(leaf)) <= -3600 + 60,
	   "leaf valid from an hour ago for 24 hours");
	ok(leaf && ASN1_STRING_length(X509_get0_serialNumber(leaf)) >= 15,
	   "leaf serial is random 128-bit");
	serial1 = leaf ? ASN1_INTEGER_dup(X509_get0_serialNumber(leaf)) : NULL;

	is_int(tls_conn_write(c, "GET / HTTP/1.1\r\n\r\n", 18), 18, "client writes a request");
	ok(tls_conn_out_pending(c) > 18, "... which waits as ciphertext");
	move(c, s);
	n = tls_conn_read(s, got, sizeof(got));
	ok(n == 18 && !memcmp(got, "GET / HTTP/1.1\r\n\r\n", 18), "server reads it");
	is_int(tls_conn_read(s, got, sizeof(got)), 0, "then needs more input");
	for (n = 0; n < (long)sizeof(big); n++)
		big[n] = (char)(n * 7);
	is_int(tls_conn_write(s, big, sizeof(big)), sizeof(big), "server writes 200 kB");
	move(s, c);
	for (total = 0; (n = tls_conn_read(c, got + total, sizeof(got) - total)) > 0;)
		total += (size_t)n;
	ok(total == sizeof(big) && !memcmp(got, big, sizeof(big)), "client reads all of it");
	tls_conn_shutdown(c);
	move(c, s);
	is_int(tls_conn_read(s, got, sizeof(got)), -1, "close_notify reads as a clean close");
	unpair(c, s);

	is_int(pair(cl, sni, sv, sni, &c, &s), 1, "second connection to the same name");
	leaf = SSL_get0_peer_certificate(tls_conn_ssl(c));
	ok(leaf && serial1 && !ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), serial1),
	   "the cached leaf is presented again");
	is_int(pair(cl, "www.googleapis.com", sv, "www.googleapis.com", &c2, &s2), 1,
	       "another name");
	leaf = SSL_get0_peer_certificate(tls_conn_ssl(c2));
	ok(leaf && leaf_san_is(leaf, "www.googleapis.com") &&
		   ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), serial1),
	   "another name gets its own leaf");
	unpair(c, s);
	unpair(c2, s2);
	ASN1_INTEGER_free(serial1);
	l1 = tls_server_leaf(sv, sni, NULL, 0);
	l2 = tls_server_leaf(sv, "BigQuery.GoogleAPIs.COM", NULL, 0);
	ok(l1 && l1 == l2, "tls_server_leaf: same certificate for the same name, any case");
	X509_free(l1);
	X509_free(l2);

	c = tls_conn_client(cl, sni);
	s = tls_conn_server(sv, sni);
	SSL_set_max_proto_version(tls_conn_ssl(c), TLS1_2_VERSION);
	is_int(handshake(c, s), 1, "a TLS 1.2 client connects");
	ok(strstr(SSL_get_cipher_name(tls_conn_ssl(s)), "ECDHE-ECDSA-") &&
		   (strstr(SSL_get_cipher_name(tls_conn_ssl(s)), "GCM") ||
		    strstr(SSL_get_cipher_name(tls_conn_ssl(s)), "CHACHA20")),
	   "... with an ECDHE AEAD suite (%s)", SSL_get_cipher_name(tls_conn_ssl(s)));
	unpair(c, s);
	c = tls_conn_client(cl, sni);
	s = tls_conn_server(sv, sni);
	SSL_set_max_proto_version(tls_conn_ssl(c), TLS1_2_VERSION);
	SSL_set_cipher_list(tls_conn_ssl(c), "ECDHE-ECDSA-AES128-SHA256:AES128-GCM-SHA256");
	ok(handshake(c, s) < 0 && strstr(why_s, "no shared cipher"),
	   "TLS 1.2 with CBC or without ECDHE is refused (%s)", why_s);
	unpair(c, s);

	c = tls_conn_client(cl, sni);
	s = tls_conn_server(sv, sni);
	SSL_set_alpn_protos(tls_conn_ssl(c), (const unsigned char *)"\x02h2", 3);
	is_int(handshake(c, s), 1, "client offering only h2 connects");
	ok(!strcmp(tls_conn_alpn(s), "") && !strcmp(tls_conn_alpn(c), ""), "... without ALPN");
	unpair(c, s);
}

static void failures(struct tls_server *sv, struct tls_client *cl)
{
	struct tls_client *cl2, *sys;
	struct tls_conn *c, *s;
	char err[512], buf[4096];
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *r, *w;
	const char *why = NULL;
	long n;
	int rc;

	is_int(pair(cl, "evil.example.com", sv, "evil.example.com", &c, &s), -1,
	       "a leaf outside the permitted names fails verification");
	ok(strstr(why_c, "permitted subtree violation") != NULL,
	   "... because of nameConstraints (%s)", why_c);
	ok(why_s[0] != '\0', "the server sees the client's alert (%s)", why_s);
	unpair(c, s);

	c = tls_conn_client(cl, "storage.googleapis.com");
	s = tls_conn_server(sv, "bigquery.googleapis.com");
	SSL_set_tlsext_host_name(tls_conn_ssl(c), "bigquery.googleapis.com");
	is_int(handshake(c, s), -1, "a certificate for another host is refused");
	ok(strstr(why_c, "hostname mismatch") && strstr(why_c, "storage.googleapis.com"),
	   "... as a hostname mismatch (%s)", why_c);
	unpair(c, s);

	ok(pair(cl, "storage.googleapis.com", sv, "bigquery.googleapis.com", &c, &s) < 0 &&
		   strstr(why_s, "differs"),
	   "the server refuses a ClientHello naming another host than the peeked one (%s)",
	   why_s);
	ok(strstr(why_c, "unrecognized name") != NULL, "... with an alert (%s)", why_c);
	unpair(c, s);

	cl2 = tls_client_new(cert2, err, sizeof(err));
	ok(cl2 != NULL, "client trusting another CA");
	is_int(pair(cl2, "bigquery.googleapis.com", sv, "bigquery.googleapis.com", &c, &s), -1,
	       "unknown CA: the client fails");
	ok(strstr(why_c, "certificate verify failed: unable to get local issuer certificate"),
	   "... with the verify reason (%s)", why_c);
	unpair(c, s);
	tls_client_free(cl2);
	sys = tls_client_new(NULL, err, sizeof(err));
	ok(sys != NULL, "client with the system trust store");
	is_int(pair(sys, "bigquery.googleapis.com", sv, "bigquery.googleapis.com", &c, &s), -1,
	       "the system store does not trust the local CA (%s)", why_c);
	unpair(c, s);
	tls_client_free(sys);

	/* A TLS 1.1-only client: its ClientHello is refused. */
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	SSL_CTX_set_min_proto_version(ctx, TLS1_1_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
	ssl = SSL_new(ctx);
	r = BIO_new(BIO_s_mem());
	w = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, r, w);
	SSL_set_tlsext_host_name(ssl, "bigquery.googleapis.com");
	SSL_connect(ssl);
	s = tls_conn_server(sv, "bigquery.googleapis.com");
	n = BIO_read(w, buf, sizeof(buf));
	ok(n > 5 && buf[0] == 22 && buf[9] == 3 && buf[10] == 2, "a TLS 1.1 ClientHello");
	tls_conn_feed(s, buf, n > 0 ? (size_t)n : 0);
	rc = tls_conn_handshake(s, &why);
	is_int(rc, -1, "TLS 1.1 is refused");
	ok(why && strstr(why, "protocol"), "... as an unsupported protocol (%s)", why);
	ok(tls_conn_out_pending(s) > 0, "an alert waits to be sent");
	tls_conn_free(s);
	SSL_free(ssl);
	SSL_CTX_free(ctx);

	ok(!tls_client_new("/nonexistent/ca.pem", err, sizeof(err)) && strstr(err, "cannot open"),
	   "missing CA bundle refused (%s)", err);
	ok(!tls_conn_server(sv, "bad name!"), "no server connection for a bad name");
	ok(!tls_server_leaf(sv, "a_b.example", err, sizeof(err)) && strstr(err, "not a DNS"),
	   "no leaf for a bad name (%s)", err);
	ok(!tls_conn_client(cl, "a\nb"), "no client connection for a bad host");
}

struct worker {
	struct tls_server *sv;
	struct tls_client *cl;
	int id, errors;
};

/* 300 names of its own (1200 in all: past the 1024-entry cache), 20 shared with the other
 * threads, and a full handshake every 50 names. */
static void *mint_many(void *arg)
{
	struct worker *w = arg;
	struct tls_conn *c, *s;
	char name[64], wc[sizeof(why_c)], ws[sizeof(why_s)];
	X509 *x;
	int i;

	for (i = 0; i < 320; i++) {
		if (i < 300)
			snprintf(name, sizeof(name), "t%d-%d.googleapis.com", w->id, i);
		else
			snprintf(name, sizeof(name), "shared-%d.googleapis.com", i - 300);
		x = tls_server_leaf(w->sv, name, NULL, 0);
		w->errors += !x || !leaf_san_is(x, name);
		X509_free(x);
		if (i % 50 == 0) {
			c = tls_conn_client(w->cl, name);
			s = tls_conn_server(w->sv, name);
			w->errors += !c || !s || handshake_w(c, s, wc, ws) != 1;
			unpair(c, s);
		}
	}
	return NULL;
}

static void threads(struct tls_server *sv, struct tls_client *cl)
{
	struct worker w[4];
	pthread_t th[4];
	X509 *a, *b;
	int i, errors = 0;

	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ sv, cl, i, 0 };
		pthread_create(&th[i], NULL, mint_many, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		errors += w[i].errors;
	}
	is_int(errors, 0, "4 threads minted 1220 leaves and shook hands concurrently");
	a = tls_server_leaf(sv, "t3-299.googleapis.com", NULL, 0);
	b = tls_server_leaf(sv, "t3-299.googleapis.com", NULL, 0);
	ok(a && a == b, "a recent name is still cached after evictions");
	X509_free(a);
	X509_free(b);
}

/* Run a sluicectl command with stdout sent to <out>. */
static int run_cmd(int (*cmd)(int, char **), const char *out, int argc, ...)
{
	char *argv[16];
	va_list ap;
	int i, rc, saved, fd;

	va_start(ap, argc);
	for (i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	saved = dup(1);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	rc = cmd(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	return rc;
}

static void commands(void)
{
	char sub[300], c3[320], k3[320], out[300], text[4096] = "";
	struct stat st;
	FILE *f;
	X509 *x = NULL, *y = NULL;
	size_t n = 0;

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(c3, sizeof(c3), "%s/ca.pem", sub);
	snprintf(k3, sizeof(k3), "%s/ca.key", sub);
	snprintf(out, sizeof(out), "%s/out", dir);
	is_int(run_cmd(tls_cmd_ca_init, out, 7, "init", "--cert", c3, "--key", k3,
		       "--permit=googleapis.com", "--permit=example.org"), 0, "ca init command");
	memset(&st, 0, sizeof(st));
	stat(sub, &st);
	is_int(st.st_mode & 07777, 0700, "missing directory made 0700");
	f = fopen(out, "r");
	if (f) {
		n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
	}
	text[n] = '\0';
	ok(strstr(text, "example.org") && strstr(text, "ca export"),
	   "it says what it made and what to do next");
	is_int(run_cmd(tls_cmd_ca_init, out, 5, "init", "--cert", c3, "--key", k3), 2,
	       "ca init over an existing CA: exit 2");
	is_int(run_cmd(tls_cmd_ca_init, out, 2, "init", "--bogus"), 2, "unknown option: exit 2");
	is_int(run_cmd(tls_cmd_ca_init, out, 2, "init", "--cert"), 2, "missing value: exit 2");
	is_int(run_cmd(tls_cmd_ca_init, out, 3, "init", "--permit", "bad_suffix"), 2,
	       "bad suffix: exit 2");

	is_int(run_cmd(tls_cmd_ca_export, out, 3, "export", "--cert", c3), 0, "ca export command");
	f = fopen(out, "r");
	x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	f = fopen(c3, "r");
	y = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	ok(x && y && !X509_cmp(x, y), "it printed the CA certificate");
	X509_free(x);
	X509_free(y);
	is_int(run_cmd(tls_cmd_ca_export, out, 3, "export", "--cert", k3), 2,
	       "exporting a key file: exit 2");
	is_int(run_cmd(tls_cmd_ca_export, out, 3, "export", "--cert", "/nonexistent"), 2,
	       "exporting a missing file: exit 2");
}

static int rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	const char *permit[] = { "googleapis.com" };
	struct tls_client *cl;
	struct tls_server *sv;
	struct tls_ca *ca;
	char err[512];
	X509 *ca_cert;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cert, sizeof(cert), "%s/ca.pem", dir);
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	snprintf(cert2, sizeof(cert2), "%s/ca2.pem", dir);
	snprintf(key2, sizeof(key2), "%s/ca2.key", dir);
	ca_files();
	if (!is_int(tls_ca_init(cert2, key2, permit, 1, err, sizeof(err)), 0, "a second CA"))
		printf("# %s\n", err);
	ca = tls_ca_load(cert, key, err, sizeof(err));
	ok(ca != NULL, "ca load");
	if (!ca)
		printf("# %s\n", err);
	if (!ca)
		return tap_done();
	ca_extensions(tls_ca_cert(ca));
	sv = tls_server_new(ca, err, sizeof(err));
	if (!ok(sv != NULL, "server context"))
		printf("# %s\n", err);
	cl = tls_client_new(cert, err, sizeof(err));
	if (!ok(cl != NULL, "client context trusting the CA"))
		printf("# %s\n", err);
	{ /* a connection outlives its server and client (a reload frees them) */
		struct tls_server *sv2 = tls_server_new(ca, err, sizeof(err));
		struct tls_client *cl2 = tls_client_new(cert, err, sizeof(err));
		struct tls_conn *c = tls_conn_client(cl2, "bigquery.googleapis.com");
		struct tls_conn *s = tls_conn_server(sv2, "bigquery.googleapis.com");

		tls_server_free(sv2);
		tls_client_free(cl2);
		is_int(handshake(c, s), 1, "connections outlive their tls_server and tls_client");
		unpair(c, s);
	}
	ca_cert = tls_ca_cert(ca);
	X509_up_ref(ca_cert);
	tls_ca_free(ca); /* the server keeps its own references */
	if (sv && cl) {
		handshakes(ca_cert, sv, cl);
		failures(sv, cl);
		threads(sv, cl);
	}
	X509_free(ca_cert);
	tls_server_free(sv);
	tls_client_free(cl);
	commands();
	nftw(dir, rm, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
