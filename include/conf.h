/* conf.h - sluiced's configuration: one JSON file, validated whole before anything uses it.
 *
 * Every key is known: an unknown key, a wrong type or an out-of-range value is an error that
 * names the file, the line and the key, and says what is expected. Defaults make an empty
 * object ("{}") a working configuration that intercepts Google's BigQuery hosts. */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stddef.h>
#include <stdint.h>

struct identity_conf;
struct cred_conf;

#define CONF_MAX_LIST 64       /* entries in any list */
#define CONF_MAX_FILE (1 << 20) /* bytes in the configuration file */

enum conf_action { CONF_SPLICE, CONF_DENY };
/* How spliced bytes pass once the upstream is connected (intercept.splice_via): copied by
 * sluiced's workers (the default: measured faster on the 2-core test machine), or moved by
 * the kernel's socket hash (splice.c). */
enum conf_splice_via { CONF_VIA_COPY, CONF_VIA_SOCKMAP };

struct conf_cidr {
	uint8_t addr[16]; /* IPv4 as IPv4-mapped IPv6 */
	unsigned prefixlen; /* over the 16 bytes: IPv4 /24 is 96 + 24 */
	uint16_t port_lo, port_hi;
};

struct conf_override {
	char *host;      /* intercepted host name this applies to */
	char *address;   /* "IP:PORT" to connect to instead of resolving <host> */
	char *ca_file;   /* CA bundle that verifies it (NULL: the upstream default) */
};

struct conf_strlist {
	char *v[CONF_MAX_LIST];
	int n;
};

struct sluice_conf {
	char *path;              /* file it came from */
	int workers;             /* 0: one per online CPU */
	int log_level;           /* enum log_level */

	int listen_port;         /* sluiced's listener port in every enforced netns */

	struct conf_strlist cgroups;   /* enforced cgroup paths, relative to the cgroup2 mount */
	int pass_loopback;
	struct conf_cidr pass_cidrs[CONF_MAX_LIST];
	int n_pass_cidrs;
	struct conf_cidr only_cidrs[CONF_MAX_LIST];
	int n_only_cidrs;
	char *bpf_pin_dir;

	struct conf_strlist hosts;     /* intercepted host names, '*' matches one label part */
	enum conf_action other_tls;    /* TLS to a host that is not intercepted */
	enum conf_action plain_http;   /* plain HTTP to an intercepted host */
	enum conf_action no_sni;       /* TLS without SNI */
	uint16_t inspect_ports[CONF_MAX_LIST];
	int n_inspect_ports;
	int peek_timeout_ms;           /* wait for a client's first bytes on other ports */
	enum conf_splice_via splice_via;

	char *ca_cert, *ca_key;

	char *upstream_ca_file;        /* NULL: the system trust store */
	struct conf_override overrides[CONF_MAX_LIST];
	int n_overrides;

	size_t max_header_bytes;
	int max_headers;
	size_t max_body_bytes;
	size_t buffer_bytes, value_bytes; /* responses: handled whole up to; largest streamed value */
	int max_connections;
	int handshake_timeout_ms, header_timeout_ms, idle_timeout_ms, drain_timeout_ms;

	char *policy;            /* policy file (policy v1 JSON) */
	char *record_dir;
	char *record_key;             /* NULL: <record_dir>/record.key */
	size_t record_segment_bytes, record_body_bytes, record_wal_bytes;
	int record_segment_secs, record_sync_ms, record_checkpoint_every, record_checkpoint_secs;
	char *control_socket;

	/* approvals: where pending ones are journaled, how long they wait, who may answer */
	char *approvals_dir;
	int approval_timeout_s, approval_max_pending, approval_max_window_s, approval_hold_ms;
	int approvals_fail_on_restart;
	struct conf_strlist approval_notify;  /* argv of the notify hook; empty: none */
	unsigned approver_uids[CONF_MAX_LIST];
	int n_approver_uids;
	struct conf_strlist approver_groups;

	/* "identity": the agents' OIDC issuers and sluice tokens (identity.h); NULL when the
	 * section is absent: agents' bearers are then relayed unchecked */
	struct identity_conf *identity;
	/* "credential": sluiced's own Google credential (cred.h); NULL when absent: the
	 * agent's Authorization header is relayed to BigQuery as it is */
	struct cred_conf *cred;
};

/* Load and validate <path> into <conf> (zeroed first). Returns 0, or -1 with a message in
 * <err> of the form "FILE:LINE: KEY: what is wrong; what to do". */
int conf_load(const char *path, struct sluice_conf *conf, char *err, size_t errlen);

/* Free everything conf_load allocated; <conf> may be partly filled. */
void conf_free(struct sluice_conf *conf);

/* Parse "A.B.C.D/N", "IPV6/N" or an address alone, optionally followed by ":PORT" or
 * ":LO-HI" (IPv6 in brackets then: "[::1]/128:443"). Returns 0 or -1. */
int conf_parse_cidr(const char *s, struct conf_cidr *out);

/* Does <host> match the pattern list? '*' matches within one DNS label. Case-insensitive. */
int conf_host_matches(const struct conf_strlist *patterns, const char *host);

#endif
