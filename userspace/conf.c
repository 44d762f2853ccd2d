/* conf.c - load and validate sluiced's JSON configuration (jansson), with errors that name
 * file, line and key. Validation is table-free on purpose: each key is read by one call that
 * states its type, range and default right where the field is filled. */
#include <arpa/inet.h>
#include <errno.h>
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "cred.h"
#include "identity.h"
#include "jsonpos.h"
#include "log.h"


static const char *const default_hosts[] = {
	"bigquery.googleapis.com", "www.googleapis.com", "bigquery.mtls.googleapis.com",
	"bigquery.*.rep.googleapis.com", "bigquerystorage.googleapis.com",
	"oauth2.googleapis.com", "sts.googleapis.com", "iamcredentials.googleapis.com",
};
static const uint16_t default_inspect_ports[] = { 443, 80, 3128, 8080, 8443 };


static void join(char *out, size_t outlen, const char *parent, const char *key)
{
	snprintf(out, outlen, "%s%s%s", parent, *parent ? "." : "", key);
}

static json_t *get_object(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	if (!v)
		return NULL;
	if (!json_is_object(v)) {
		join(kp, sizeof(kp), path, key);
		jsonpos_fail(c, kp, "must be an object ({...})");
		return NULL;
	}
	return v;
}

static long long get_int(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key,
			 long long min, long long max, long long dflt)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];
	long long x;

	if (!v)
		return dflt;
	join(kp, sizeof(kp), path, key);
	if (!json_is_integer(v)) {
		jsonpos_fail(c, kp, "must be an integer between %lld and %lld", min, max);
		return dflt;
	}
	x = json_integer_value(v);
	if (x < min || x > max)
		jsonpos_fail(c, kp, "%lld is out of range: must be between %lld and %lld", x, min, max);
	return x;
}

static int get_bool(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key, int dflt)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	if (!v)
		return dflt;
	if (!json_is_boolean(v)) {
		join(kp, sizeof(kp), path, key);
		jsonpos_fail(c, kp, "must be true or false");
		return dflt;
	}
	return json_is_true(v);
}

static char *get_str(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key,
		     const char *dflt)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	if (!v || json_is_null(v))
		return dflt ? strdup(dflt) : NULL;
	if (!json_is_string(v) || !json_string_length(v)) {
		join(kp, sizeof(kp), path, key);
		jsonpos_fail(c, kp, "must be a non-empty string");
		return dflt ? strdup(dflt) : NULL;
	}
	return strdup(json_string_value(v));
}

static enum conf_action get_action(struct jsonpos_ctx *c, json_t *obj, const char *path,
				   const char *key, enum conf_action dflt)
{
	json_t *v = json_object_get(obj, key);
	char kp[256];

	if (!v)
		return dflt;
	if (json_is_string(v) && !strcmp(json_string_value(v), "splice"))
		return CONF_SPLICE;
	if (json_is_string(v) && !strcmp(json_string_value(v), "deny"))
		return CONF_DENY;
	join(kp, sizeof(kp), path, key);
	jsonpos_fail(c, kp, "must be \"splice\" or \"deny\"");
	return dflt;
}

/* A list of at most CONF_MAX_LIST elements of one JSON type; returns it or NULL. */
static json_t *get_list(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key,
			int (*is_type)(const json_t *), const char *type_name)
{
	json_t *v = json_object_get(obj, key), *e;
	char kp[256], ep[300];
	size_t i;

	if (!v)
		return NULL;
	join(kp, sizeof(kp), path, key);
	if (!json_is_array(v)) {
		jsonpos_fail(c, kp, "must be a list of %s", type_name);
		return NULL;
	}
	if (json_array_size(v) > CONF_MAX_LIST) {
		jsonpos_fail(c, kp, "has %zu entries; at most %d are allowed", json_array_size(v),
		     CONF_MAX_LIST);
		return NULL;
	}
	json_array_foreach(v, i, e) {
		if (!is_type(e)) {
			snprintf(ep, sizeof(ep), "%s[%zu]", kp, i);
			jsonpos_fail(c, ep, "must be %s", type_name);
			return NULL;
		}
	}
	return v;
}

static int is_string(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

static int is_object(const json_t *v)
{
	return json_is_object(v);
}

static int is_port(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535;
}

static void get_strlist(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key,
			struct conf_strlist *out, const char *const *dflt, int ndflt)
{
	json_t *v = get_list(c, obj, path, key, is_string, "a non-empty string");
	size_t i;

	if (!json_object_get(obj, key)) {
		for (out->n = 0; out->n < ndflt; out->n++)
			out->v[out->n] = strdup(dflt[out->n]);
		return;
	}
	for (i = 0; v && i < json_array_size(v); i++)
		out->v[out->n++] = strdup(json_string_value(json_array_get(v, i)));
}

static int get_cidrs(struct jsonpos_ctx *c, json_t *obj, const char *path, const char *key,
		     struct conf_cidr *out)
{
	json_t *v = get_list(c, obj, path, key, is_string, "a CIDR string");
	char ep[300];
	size_t i;

	for (i = 0; v && i < json_array_size(v); i++) {
		if (conf_parse_cidr(json_string_value(json_array_get(v, i)), &out[i])) {
			snprintf(ep, sizeof(ep), "%s%s%s[%zu]", path, *path ? "." : "", key, i);
			jsonpos_fail(c, ep, "\"%s\" is not a CIDR; write e.g. \"10.0.0.0/8\", "
				    "\"2001:db8::/32\", \"10.1.2.3/32:443\" or "
				    "\"[2001:db8::]/32:8000-8099\"",
			     json_string_value(json_array_get(v, i)));
			return 0;
		}
	}
	return v ? (int)json_array_size(v) : 0;
}

int conf_parse_cidr(const char *s, struct conf_cidr *out)
{
	char buf[128], *addr = buf, *slash, *port = NULL, *end;
	struct in6_addr a6;
	struct in_addr a4;
	unsigned long n, lo = 0, hi = 65535;
	int v4;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if (*addr == '[') {
		end = strchr(addr, ']');
		if (!end)
			return -1;
		*end++ = '\0';
		addr++;
		slash = *end == '/' ? end : NULL;
		port = strchr(end, ':');
	} else {
		slash = strchr(addr, '/');
		if (strchr(addr, ':') == strrchr(addr, ':')) /* IPv4: one ':' at most, the port */
			port = strchr(addr, ':');
	}
	if (port)
		*port++ = '\0';
	if (slash)
		*slash++ = '\0';
	v4 = inet_pton(AF_INET, addr, &a4) == 1;
	if (!v4 && inet_pton(AF_INET6, addr, &a6) != 1)
		return -1;
	memset(out, 0, sizeof(*out));
	if (v4) {
		out->addr[10] = out->addr[11] = 0xff;
		memcpy(&out->addr[12], &a4, 4);
	} else {
		memcpy(out->addr, &a6, 16);
	}
	n = v4 ? 32 : 128;
	if (slash) {
		errno = 0;
		n = strtoul(slash, &end, 10);
		if (errno || *end || end == slash || n > (v4 ? 32u : 128u))
			return -1;
	}
	out->prefixlen = (unsigned)n + (v4 ? 96 : 0);
	if (port) {
		lo = strtoul(port, &end, 10);
		hi = lo;
		if (*end == '-')
			hi = strtoul(end + 1, &end, 10);
		if (*end || lo < 1 || hi > 65535 || lo > hi)
			return -1;
	}
	out->port_lo = (uint16_t)lo;
	out->port_hi = (uint16_t)hi;
	return 0;
}

/* Case-insensitive glob where '*' matches within one DNS label (never a '.'). */
static int host_glob(const char *pat, const char *host)
{
	const char *star = NULL, *resume = NULL;

	while (*host) {
		if (*pat == '*') {
			star = pat++;
			resume = host;
		} else if (*pat && tolower((unsigned char)*pat) == tolower((unsigned char)*host)) {
			pat++;
			host++;
		} else if (star && *resume != '.') {
			pat = star + 1;
			host = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

int conf_host_matches(const struct conf_strlist *patterns, const char *host)
{
	int i;

	for (i = 0; i < patterns->n; i++)
		if (host_glob(patterns->v[i], host))
			return 1;
	return 0;
}

static void load_enforce(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	static const char *const known[] = { "cgroups", "pass_loopback", "pass_cidrs",
					     "only_cidrs", "bpf_pin_dir", NULL };
	json_t *o = get_object(c, root, "", "enforce");
	char kp[64];
	int i;

	if (o)
		jsonpos_known_keys(c, o, "enforce", known);
	get_strlist(c, o, "enforce", "cgroups", &conf->cgroups, NULL, 0);
	for (i = 0; i < conf->cgroups.n; i++) {
		if (conf->cgroups.v[i][0] != '/' || strstr(conf->cgroups.v[i], "..")) {
			snprintf(kp, sizeof(kp), "enforce.cgroups[%d]", i);
			jsonpos_fail(c, kp, "\"%s\" must be an absolute path under the cgroup2 mount, "
				    "e.g. \"/agents.slice\", without \"..\"", conf->cgroups.v[i]);
		}
	}
	conf->pass_loopback = get_bool(c, o, "enforce", "pass_loopback", 1);
	conf->n_pass_cidrs = get_cidrs(c, o, "enforce", "pass_cidrs", conf->pass_cidrs);
	conf->n_only_cidrs = get_cidrs(c, o, "enforce", "only_cidrs", conf->only_cidrs);
	conf->bpf_pin_dir = get_str(c, o, "enforce", "bpf_pin_dir", "/sys/fs/bpf/sluice");
}

static enum conf_splice_via get_splice_via(struct jsonpos_ctx *c, json_t *obj)
{
	json_t *v = json_object_get(obj, "splice_via");

	if (!v || (json_is_string(v) && !strcmp(json_string_value(v), "copy")))
		return CONF_VIA_COPY;
	if (json_is_string(v) && !strcmp(json_string_value(v), "sockmap"))
		return CONF_VIA_SOCKMAP;
	jsonpos_fail(c, "intercept.splice_via", "must be \"copy\" or \"sockmap\"");
	return CONF_VIA_COPY;
}

static void load_intercept(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	static const char *const known[] = { "hosts", "other_tls", "plain_http", "no_sni",
					     "inspect_ports", "peek_timeout_ms", "splice_via", NULL };
	json_t *o = get_object(c, root, "", "intercept"), *v;
	size_t i;

	if (o)
		jsonpos_known_keys(c, o, "intercept", known);
	get_strlist(c, o, "intercept", "hosts", &conf->hosts, default_hosts,
		    sizeof(default_hosts) / sizeof(default_hosts[0]));
	conf->other_tls = get_action(c, o, "intercept", "other_tls", CONF_SPLICE);
	conf->plain_http = get_action(c, o, "intercept", "plain_http", CONF_DENY);
	conf->no_sni = get_action(c, o, "intercept", "no_sni", CONF_DENY);
	v = get_list(c, o, "intercept", "inspect_ports", is_port, "a port number (1-65535)");
	if (o && json_object_get(o, "inspect_ports")) {
		for (i = 0; v && i < json_array_size(v); i++)
			conf->inspect_ports[conf->n_inspect_ports++] =
				(uint16_t)json_integer_value(json_array_get(v, i));
	} else {
		for (i = 0; i < sizeof(default_inspect_ports) / sizeof(uint16_t); i++)
			conf->inspect_ports[conf->n_inspect_ports++] = default_inspect_ports[i];
	}
	conf->peek_timeout_ms = (int)get_int(c, o, "intercept", "peek_timeout_ms", 0, 60000, 300);
	conf->splice_via = get_splice_via(c, o);
}

static void load_upstream(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	static const char *const known[] = { "ca_file", "overrides", NULL };
	static const char *const known_ov[] = { "host", "address", "ca_file", NULL };
	json_t *o = get_object(c, root, "", "upstream"), *v, *e;
	char kp[64];
	size_t i;

	if (o)
		jsonpos_known_keys(c, o, "upstream", known);
	conf->upstream_ca_file = get_str(c, o, "upstream", "ca_file", NULL);
	v = get_list(c, o, "upstream", "overrides", is_object, "an object {host, address, ca_file}");
	json_array_foreach(v, i, e) {
		struct conf_override *ov = &conf->overrides[conf->n_overrides++];

		snprintf(kp, sizeof(kp), "upstream.overrides[%zu]", i);
		jsonpos_known_keys(c, e, kp, known_ov);
		ov->host = get_str(c, e, kp, "host", NULL);
		ov->address = get_str(c, e, kp, "address", NULL);
		ov->ca_file = get_str(c, e, kp, "ca_file", NULL);
		if (!ov->host || !ov->address)
			jsonpos_fail(c, kp, "needs both \"host\" (an intercepted name) and \"address\" "
				    "(\"IP:PORT\")");
	}
}

static void load_limits(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	static const char *const known[] = { "header_bytes", "headers", "body_bytes",
		"connections", "handshake_timeout_ms", "header_timeout_ms", "idle_timeout_ms",
		"drain_timeout_ms", "buffer_bytes", "value_bytes", NULL };
	json_t *o = get_object(c, root, "", "limits");
	const char *p = "limits";

	if (o)
		jsonpos_known_keys(c, o, p, known);
	conf->max_header_bytes = (size_t)get_int(c, o, p, "header_bytes", 1024, 1 << 20, 64 << 10);
	conf->max_headers = (int)get_int(c, o, p, "headers", 8, 1000, 100);
	conf->max_body_bytes = (size_t)get_int(c, o, p, "body_bytes", 1024, 1LL << 32, 100 << 20);
	/* responses up to buffer_bytes are handled whole; larger ones stream, one row (at most
	 * value_bytes) at a time */
	conf->buffer_bytes = (size_t)get_int(c, o, p, "buffer_bytes", 4096, 1LL << 32, 1 << 20);
	conf->value_bytes = (size_t)get_int(c, o, p, "value_bytes", 4096, 1LL << 32, 16 << 20);
	conf->max_connections = (int)get_int(c, o, p, "connections", 1, 1 << 20, 20000);
	conf->handshake_timeout_ms = (int)get_int(c, o, p, "handshake_timeout_ms", 100, 600000, 10000);
	conf->header_timeout_ms = (int)get_int(c, o, p, "header_timeout_ms", 100, 600000, 30000);
	conf->idle_timeout_ms = (int)get_int(c, o, p, "idle_timeout_ms", 100, 3600000, 300000);
	conf->drain_timeout_ms = (int)get_int(c, o, p, "drain_timeout_ms", 0, 600000, 10000);
}

static int is_uid(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 1 << 30;
}

static void load_approvals(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	static const char *const known[] = { "dir", "timeout_s", "max_pending", "max_window_s",
					     "hold_ms", "on_restart", "notify", NULL };
	json_t *o = get_object(c, root, "", "approvals"), *v;
	const char *p = "approvals";
	size_t i;

	if (o)
		jsonpos_known_keys(c, o, p, known);
	conf->approvals_dir = get_str(c, o, p, "dir", "/var/lib/sluice/approvals");
	conf->approval_timeout_s = (int)get_int(c, o, p, "timeout_s", 10, 7 * 86400, 900);
	conf->approval_max_pending = (int)get_int(c, o, p, "max_pending", 1, 100000, 256);
	conf->approval_max_window_s = (int)get_int(c, o, p, "max_window_s", 0, 30 * 86400, 86400);
	/* below the clients' own 60 s request timeout, so a held request is answered */
	conf->approval_hold_ms = (int)get_int(c, o, p, "hold_ms", 0, 55000, 50000);
	v = o ? json_object_get(o, "on_restart") : NULL;
	if (v && !(json_is_string(v) && (!strcmp(json_string_value(v), "keep") ||
					 !strcmp(json_string_value(v), "fail"))))
		jsonpos_fail(c, "approvals.on_restart", "must be \"keep\" or \"fail\"");
	conf->approvals_fail_on_restart = v && !strcmp(json_string_value(v), "fail");
	get_strlist(c, o, p, "notify", &conf->approval_notify, NULL, 0);
	if (conf->approval_notify.n && conf->approval_notify.v[0][0] != '/')
		jsonpos_fail(c, "approvals.notify[0]", "the notify program must be an absolute path (it is "
			"run directly, without a shell)");

	o = get_object(c, root, "", "approvers");
	if (o)
		jsonpos_known_keys(c, o, "approvers", (const char *const[]){ "uids", "groups", NULL });
	v = get_list(c, o, "approvers", "uids", is_uid, "a uid (a non-negative integer)");
	if (o && json_object_get(o, "uids")) {
		for (i = 0; v && i < json_array_size(v); i++)
			conf->approver_uids[conf->n_approver_uids++] =
				(unsigned)json_integer_value(json_array_get(v, i));
	} else {
		conf->approver_uids[conf->n_approver_uids++] = 0; /* root only, by default */
	}
	get_strlist(c, o, "approvers", "groups", &conf->approver_groups, NULL, 0);
}

/* "identity" and "credential": validated by their modules, with the same FILE:LINE errors. */
static void load_identity(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	json_t *o = json_object_get(root, "identity");
	char err[512] = "";

	if (o) {
		conf->identity = calloc(1, sizeof(*conf->identity));
		if (!conf->identity ||
		    identity_conf_load(o, "identity", c->file, c->text, c->len, conf->identity,
				       err, sizeof(err))) {
			free(conf->identity);
			conf->identity = NULL;
			if (!c->failed++)
				snprintf(c->err, c->errlen, "%s", err[0] ? err : "out of memory");
		} else if (!conf->identity->n_issuers) {
			jsonpos_fail(c, "identity", "needs at least one entry in \"issuers\" (the OIDC "
				 "issuer of the agents' tokens); remove the section to run without "
				 "identity");
		}
	}
	o = json_object_get(root, "credential");
	if (o) {
		conf->cred = calloc(1, sizeof(*conf->cred));
		if (!conf->cred ||
		    cred_conf_load(o, "credential", c->file, c->text, c->len, conf->cred, err,
				   sizeof(err))) {
			free(conf->cred);
			conf->cred = NULL;
			if (!c->failed++)
				snprintf(c->err, c->errlen, "%s", err[0] ? err : "out of memory");
		} else if (!conf->cred->name) {
			conf->cred->name = strdup("bigquery");
		}
	}
}

static void load_root(struct jsonpos_ctx *c, json_t *root, struct sluice_conf *conf)
{
	static const char *const known[] = { "workers", "log_level", "listen_port", "enforce",
		"intercept", "ca", "upstream", "limits", "record", "control", "policy", "approvals",
		"approvers", "identity", "credential", NULL };
	static const char *const levels[] = { "error", "warning", "info", "debug" };
	json_t *o, *lv;
	int i;

	jsonpos_known_keys(c, root, "", known);
	conf->workers = (int)get_int(c, root, "", "workers", 0, 256, 0);
	conf->log_level = 2;
	lv = json_object_get(root, "log_level");
	if (lv) {
		for (i = 0; i < 4 && !(json_is_string(lv) && !strcmp(json_string_value(lv), levels[i])); i++)
			;
		if (i == 4)
			jsonpos_fail(c, "log_level", "must be \"error\", \"warning\", \"info\" or \"debug\"");
		conf->log_level = i & 3;
	}
	conf->listen_port = (int)get_int(c, root, "", "listen_port", 1, 65535, 15443);
	load_enforce(c, root, conf);
	load_intercept(c, root, conf);
	load_upstream(c, root, conf);
	load_limits(c, root, conf);

	o = get_object(c, root, "", "ca");
	if (o)
		jsonpos_known_keys(c, o, "ca", (const char *const[]){ "cert", "key", NULL });
	conf->ca_cert = get_str(c, o, "ca", "cert", "/var/lib/sluice/ca.pem");
	conf->ca_key = get_str(c, o, "ca", "key", "/var/lib/sluice/ca.key");
	conf->policy = get_str(c, root, "", "policy", "/etc/sluice/policy.json");
	load_approvals(c, root, conf);
	o = get_object(c, root, "", "record");
	if (o)
		jsonpos_known_keys(c, o, "record", (const char *const[]){ "dir", "key", "segment_bytes",
			   "segment_secs", "sync_ms", "checkpoint_every", "checkpoint_secs",
			   "body_bytes", "wal_bytes", NULL });
	conf->record_dir = get_str(c, o, "record", "dir", "/var/lib/sluice/recordings");
	conf->record_key = get_str(c, o, "record", "key", NULL);
	conf->record_segment_bytes = (size_t)get_int(c, o, "record", "segment_bytes", 1 << 16,
						      1LL << 40, 64 << 20);
	conf->record_segment_secs = (int)get_int(c, o, "record", "segment_secs", 10, 30 * 86400, 3600);
	/* the group-commit window: how long a request may wait for others to share its fsync */
	conf->record_sync_ms = (int)get_int(c, o, "record", "sync_ms", 0, 100, 0);
	conf->record_checkpoint_every = (int)get_int(c, o, "record", "checkpoint_every", 1,
						     1000000, 1000);
	conf->record_checkpoint_secs = (int)get_int(c, o, "record", "checkpoint_secs", 1, 86400, 60);
	conf->record_body_bytes = (size_t)get_int(c, o, "record", "body_bytes", 0, 1 << 20, 4 << 10);
	/* the durability log's size when it is created (record.c, recwal.h) */
	conf->record_wal_bytes = (size_t)get_int(c, o, "record", "wal_bytes", 1 << 16, 1LL << 32,
						  64 << 20);
	o = get_object(c, root, "", "control");
	if (o)
		jsonpos_known_keys(c, o, "control", (const char *const[]){ "socket", NULL });
	conf->control_socket = get_str(c, o, "control", "socket", "/run/sluice/sluice.sock");
	load_identity(c, root, conf);
}

int conf_load(const char *path, struct sluice_conf *conf, char *err, size_t errlen)
{
	struct jsonpos_ctx c = { .file = path, .err = err, .errlen = errlen };
	json_error_t jerr;
	json_t *root = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	memset(conf, 0, sizeof(*conf));
	conf->path = strdup(path);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s; pass --config FILE", path, strerror(errno));
		return -1;
	}
	text = malloc(CONF_MAX_FILE + 1);
	if (text)
		len = fread(text, 1, CONF_MAX_FILE + 1, f);
	fclose(f);
	if (!text || len > CONF_MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path,
			 text ? "larger than 1 MiB; a configuration is a few KiB" : "out of memory");
		free(text);
		return -1;
	}
	c.text = text;
	c.len = len;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
			 jerr.text);
	} else if (!json_is_object(root)) {
		jsonpos_fail(&c, "", "the configuration must be a JSON object ({...})");
	} else {
		load_root(&c, root, conf);
	}
	json_decref(root);
	free(text);
	return root && !c.failed ? 0 : -1;
}

static void strlist_free(struct conf_strlist *l)
{
	while (l->n > 0) {
		free(l->v[--l->n]);
		l->v[l->n] = NULL;
	}
}

void conf_free(struct sluice_conf *conf)
{
	int i;

	strlist_free(&conf->cgroups);
	strlist_free(&conf->hosts);
	for (i = 0; i < conf->n_overrides; i++) {
		free(conf->overrides[i].host);
		free(conf->overrides[i].address);
		free(conf->overrides[i].ca_file);
	}
	free(conf->path);
	free(conf->bpf_pin_dir);
	free(conf->ca_cert);
	free(conf->ca_key);
	free(conf->upstream_ca_file);
	free(conf->policy);
	free(conf->approvals_dir);
	strlist_free(&conf->approval_notify);
	strlist_free(&conf->approver_groups);
	free(conf->record_dir);
	free(conf->record_key);
	free(conf->control_socket);
	if (conf->identity)
		identity_conf_free(conf->identity);
	free(conf->identity);
	if (conf->cred)
		cred_conf_free(conf->cred);
	free(conf->cred);
	memset(conf, 0, sizeof(*conf));
}
