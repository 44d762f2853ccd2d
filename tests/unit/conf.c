/* Description: configuration loading: defaults, every error names file, line and key. */
#include <stdlib.h>

#include "conf.h"
#include "tap.h"

static char path[] = "/tmp/sluice-conf-test-XXXXXX";

static int load(const char *text, struct sluice_conf *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	conf_free(c);
	err[0] = '\0';
	return conf_load(path, c, err, errlen);
}

/* The error must start with "FILE:LINE: KEY:" and mention <what>. */
static void refused(const char *text, int line, const char *key, const char *what)
{
	struct sluice_conf c = { 0 };
	char err[512], want[512];

	snprintf(want, sizeof(want), "%s:%d: %s: ", path, line, key);
	ok(load(text, &c, err, sizeof(err)) == -1 && strncmp(err, want, strlen(want)) == 0 &&
		   strstr(err, what),
	   "refused with '%s...%s' (got: %s)", want, what, err);
	conf_free(&c);
}

int main(void)
{
	struct sluice_conf c = { 0 };
	char err[512];
	int fd = mkstemp(path);

	close(fd);
	is_int(load("{}", &c, err, sizeof(err)), 0, "empty object is a valid configuration");
	is_int(c.listen_port, 15443, "default listener port");
	is_int(c.pass_loopback, 1, "loopback left alone by default");
	ok(conf_host_matches(&c.hosts, "bigquery.googleapis.com"), "default hosts: bigquery");
	ok(conf_host_matches(&c.hosts, "BigQuery.europe-west1.rep.googleapis.com"),
	   "default hosts: regional endpoint, any case");
	ok(!conf_host_matches(&c.hosts, "bigquery.a.b.rep.googleapis.com"),
	   "'*' does not cross a label");
	ok(!conf_host_matches(&c.hosts, "storage.googleapis.com"), "other Google hosts: not ours");
	is_int(c.other_tls, CONF_SPLICE, "other TLS is spliced by default");
	is_int(c.no_sni, CONF_DENY, "TLS without SNI is denied by default");
	is_int(c.splice_via, CONF_VIA_COPY, "spliced bytes are copied by default");
	is_str(c.control_socket, "/run/sluice/sluice.sock", "default control socket");

	is_int(load("{\"listen_port\": 9000,\n \"enforce\": {\"cgroups\": [\"/agents\"],\n"
		    " \"pass_cidrs\": [\"10.0.0.0/8\", \"[2001:db8::]/32:443\", \"10.1.2.3:80-90\"]},\n"
		    " \"upstream\": {\"overrides\": [{\"host\": \"bigquery.googleapis.com\", "
		    "\"address\": \"127.0.0.1:9443\", \"ca_file\": \"/x/ca.pem\"}]}}",
		    &c, err, sizeof(err)), 0, "a full configuration loads (%s)", err);
	is_int(c.listen_port, 9000, "listener port read");
	is_str(c.cgroups.v[0], "/agents", "enforced cgroup read");
	is_int(c.n_pass_cidrs, 3, "three CIDRs");
	is_int(c.pass_cidrs[0].prefixlen, 104, "IPv4 /8 is 96+8 over mapped addresses");
	is_int(c.pass_cidrs[1].port_lo, 443, "IPv6 CIDR with port");
	is_int(c.pass_cidrs[2].port_hi, 90, "port range");
	is_int(c.pass_cidrs[2].prefixlen, 128, "address alone is a host route");
	is_str(c.overrides[0].address, "127.0.0.1:9443", "override address read");

	refused("{\n  \"listen_prot\": 1\n}", 2, "listen_prot", "unknown key");
	refused("{\n\"listen_port\": 70000}", 2, "listen_port", "out of range");
	refused("{\"limits\": {\n\"headers\": \"many\"}}", 2, "limits.headers", "integer");
	refused("{\"enforce\": {\"cgroups\": [\n\"/a\",\n\"rel\"]}}", 3, "enforce.cgroups[1]",
		"absolute path");
	refused("{\"enforce\": {\"pass_cidrs\": [\"10.0.0.0/33\"]}}", 1, "enforce.pass_cidrs[0]",
		"not a CIDR");
	refused("{\"intercept\": {\"other_tls\": \"allow\"}}", 1, "intercept.other_tls", "splice");
	refused("{\"intercept\": {\n\"splice_via\": \"pipe\"}}", 2, "intercept.splice_via",
		"\"copy\" or \"sockmap\"");
	refused("{\"upstream\": {\"overrides\": [{}, \n{\"host\": \"h\"}]}}", 1,
		"upstream.overrides[0]", "address");
	refused("[]", 1, "(top level)", "JSON object");

	ok(load("{\n\"a\": 1,\n\"a\": 2}", &c, err, sizeof(err)) == -1 && strstr(err, ":3:") &&
		   strstr(err, "duplicate"),
	   "duplicate keys refused with the line (%s)", err);
	ok(load("{\n\"a\": 1,,\n}", &c, err, sizeof(err)) == -1 && strstr(err, ":2:") &&
		   strstr(err, "invalid JSON"),
	   "syntax error names the line (%s)", err);
	conf_free(&c);
	unlink(path);
	ok(conf_load("/nonexistent/sluice.json", &c, err, sizeof(err)) == -1 &&
		   strstr(err, "cannot open") && strstr(err, "--config"),
	   "missing file says what to do (%s)", err);
	conf_free(&c);
	return tap_done();
}
