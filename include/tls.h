/* tls.h - TLS for sluiced (OpenSSL 3.0): the local CA, the server side toward agents (leaf
 * certificates minted per SNI and cached), the verifying client side toward BigQuery, and
 * connections driven entirely through memory BIOs: the caller moves ciphertext between
 * the network and a connection, and plaintext between the connection and the proxy.
 *
 * Driving a connection: feed whatever ciphertext arrives (tls_conn_feed), then call
 * tls_conn_handshake until it returns 1, then tls_conn_read until it returns 0. After EVERY
 * call (feed excepted), including a failed handshake (the alert), send what
 * tls_conn_take_out hands over while tls_conn_out_pending is non-zero; or attach a sink
 * (tls_conn_sink), which gets the ciphertext as OpenSSL writes it, with no copy between.
 * The buffers grow as needed: the caller bounds what it feeds and what it writes. */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stddef.h>

struct ssl_st;
struct x509_st;

#define TLS_LEAF_CACHE 1024            /* leaf certificates kept per tls_server (LRU) */
#define TLS_LEAF_LIFETIME (24 * 3600)  /* seconds a leaf is valid (from 1 h before minting) */
#define TLS_LEAF_RENEW 3600            /* re-mint a cached leaf this close to its expiry */
#define TLS_CA_MAX_PERMIT 32           /* permitted DNS suffixes in a CA */
#define TLS_DEFAULT_CA_CERT "/var/lib/sluice/ca.pem"
#define TLS_DEFAULT_CA_KEY "/var/lib/sluice/ca.key"

struct tls_ca;
struct tls_server;
struct tls_client;
struct tls_conn;

/* Takes <n> bytes of ciphertext, in order. Returns 0, or -1 to fail the write. */
typedef int (*tls_sink_fn)(void *arg, const void *p, size_t n);

/* Create a CA: an EC P-256 key written to <key_path> (mode 0600 from creation) and a
 * self-signed certificate written to <cert_path> (mode 0644), valid 10 years, whose
 * nameConstraints (critical) permit only the <n_permitted> DNS suffixes in <permitted_dns>
 * (a suffix permits itself and its subdomains) and exclude every IP address. Files appear
 * whole or not at all. Returns 0; -EEXIST when either file exists (never overwritten);
 * -EINVAL for a bad argument; another -errno or -EIO; with a message in <err>. */
int tls_ca_init(const char *cert_path, const char *key_path, const char *const *permitted_dns,
		int n_permitted, char *err, size_t errlen);

/* Load a CA made by tls_ca_init. Refuses a key file readable or writable by group or
 * others, a certificate that is not a CA, expired, or does not match the key. Returns the
 * CA (free with tls_ca_free), or NULL with a message in <err>. */
struct tls_ca *tls_ca_load(const char *cert_path, const char *key_path, char *err,
			   size_t errlen);

/* Free a loaded CA; NULL is fine. Servers made from it keep their own references. */
void tls_ca_free(struct tls_ca *ca);

/* The CA's certificate (borrowed, valid while <ca> is). */
struct x509_st *tls_ca_cert(struct tls_ca *ca);

/* Server side toward agents: TLS 1.2+, ECDHE with AES-GCM or ChaCha20-Poly1305 for 1.2,
 * ALPN "http/1.1" only (a client offering only h2 continues without ALPN), no session
 * resumption. One tls_server is shared by all worker threads. Returns NULL with <err>. */
struct tls_server *tls_server_new(struct tls_ca *ca, char *err, size_t errlen);

/* Free a server; NULL is fine. Its connections keep working: they hold references. */
void tls_server_free(struct tls_server *s);

/* The leaf certificate for <sni> (any case, validated as a DNS name): from the cache, or
 * minted (SAN DNS:<sni>, serverAuth, now-1h .. now+24h, random 128-bit serial) when absent
 * or within TLS_LEAF_RENEW of expiry. Thread-safe. Returns a new reference (X509_free it),
 * or NULL with <err>. */
struct x509_st *tls_server_leaf(struct tls_server *s, const char *sni, char *err,
				size_t errlen);

/* Client side toward BigQuery: TLS 1.2+, peer verified against <ca_file> (PEM bundle) or
 * the system store when NULL, ALPN "http/1.1". Returns NULL with <err>. */
struct tls_client *tls_client_new(const char *ca_file, char *err, size_t errlen);

/* Free a client; NULL is fine. Its connections keep working: they hold references. */
void tls_client_free(struct tls_client *c);

/* A server connection presenting the leaf for <sni>; the handshake fails if the client's
 * SNI differs. Returns NULL (reason logged) for an invalid name or when out of memory. */
struct tls_conn *tls_conn_server(struct tls_server *s, const char *sni);

/* A client connection to <host> (DNS name, or an IP literal: then no SNI, the IP is
 * verified), SNI set, certificate and host name verified. Returns NULL (reason logged). */
struct tls_conn *tls_conn_client(struct tls_client *c, const char *host);

/* Free a connection; NULL is fine. */
void tls_conn_free(struct tls_conn *t);

/* From now on, ciphertext goes to <sink>(<arg>, ...) as it is written (what was waiting for
 * tls_conn_take_out first); NULL: kept for tls_conn_take_out again. Returns 0, or -1 if
 * the sink refused what was waiting. */
int tls_conn_sink(struct tls_conn *t, tls_sink_fn sink, void *arg);

/* Ciphertext received from the network, copied in. Returns 0 or -1 (out of memory). */
int tls_conn_feed(struct tls_conn *t, const void *buf, size_t len);

/* Drive the handshake. Returns 1 done, 0 needs more input, -1 failed with <why> (may be
 * NULL; valid until the connection is freed): e.g. "certificate verify failed: unable to
 * get local issuer certificate", "hostname mismatch: ...", "unsupported protocol". */
int tls_conn_handshake(struct tls_conn *t, const char **why);

/* Plaintext out: >0 bytes, 0 needs more input, -1 the peer closed cleanly (close_notify),
 * -2 error. Call until it returns <= 0: plaintext may be buffered inside. */
long tls_conn_read(struct tls_conn *t, void *buf, size_t cap);

/* Could tls_conn_read return anything but 0 now: input waiting (ciphertext fed, or
 * plaintext buffered), or a failure to report? */
int tls_conn_has_input(struct tls_conn *t);

/* Plaintext in, encrypted into the outgoing buffer. Returns <len> (all accepted), 0 when
 * the handshake still needs input, -1 on error. */
long tls_conn_write(struct tls_conn *t, const void *buf, size_t len);

/* Bytes of ciphertext waiting to be sent. */
size_t tls_conn_out_pending(struct tls_conn *t);

/* Move up to <cap> bytes of waiting ciphertext to <buf>. Returns the count (0: none). */
long tls_conn_take_out(struct tls_conn *t, void *buf, size_t cap);

/* Give back the input and output buffers and the record buffers when nothing is pending, so that an
 * idle connection holds no handshake-sized buffers. A connection keeps its record buffers
 * from its first plaintext read to the next trim; before that, and after, they are
 * released after every record. */
void tls_conn_trim(struct tls_conn *t);

/* Queue a close_notify alert (send it with tls_conn_take_out). */
void tls_conn_shutdown(struct tls_conn *t);

/* The ALPN protocol agreed on, "" if none. */
const char *tls_conn_alpn(struct tls_conn *t);

/* The underlying SSL (borrowed): for logging the version or cipher, and for tests. */
struct ssl_st *tls_conn_ssl(struct tls_conn *t);

/* sluicectl ca init [--cert F] [--key F] [--permit SUFFIX]...: create the CA (defaults
 * TLS_DEFAULT_CA_CERT, TLS_DEFAULT_CA_KEY, googleapis.com; missing parent directories are
 * created 0700). argv[0] is "init". Returns the exit status: 0, or 2 (message on stderr). */
int tls_cmd_ca_init(int argc, char **argv);

/* sluicectl ca export [--cert F]: print the CA certificate (PEM) to stdout, for the agents'
 * trust stores. argv[0] is "export". Returns 0, or 2 (message on stderr). */
int tls_cmd_ca_export(int argc, char **argv);

#endif
