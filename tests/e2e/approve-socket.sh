#!/usr/bin/env bash
# Description: the approvers' control socket with sluicectl: socket 0660 in a 0750 directory,
# a uid that is not an approver is refused with a message saying how to become one, root
# lists, shows, approves and denies, a process in an enforced cgroup is refused even as
# root, nobody decides their own request, --watch streams new requests, --json outputs.
# Needs root and cgroup v2. Uses the approve and ctlsock modules through a small driver.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (setpriv, cgroups)"; exit 77; }
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cg2" ] || { echo "SKIP: no cgroup v2 mount"; exit 77; }
[ -f build/libsluice.a ] && [ -x build/sluicectl ] || { echo "build first: make"; exit 1; }
tmp=$(mktemp -d); chmod 755 "$tmp"
enf="/sluice-test-approve-$$"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null
  rmdir "$cg2$enf" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$cg2$enf" || { echo "SKIP: cannot create a cgroup under $cg2"; exit 77; }

cat > "$tmp/driver.c" <<'EOF'
/* A stand-in sluiced: the approval store and the control socket, three held requests. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "approve.h"
#include "ctlsock.h"

static void on_decision(void *arg, const struct approve_status *st)
{
	printf("decision %s %s %s: %s\n", st->id, approve_state_name(st->state), st->approver,
	       st->reason);
	fflush(stdout);
}

static void hold(struct approve *a, const char *container, const char *identity,
		 const char *kind, const char *sql, enum approve_kind k)
{
	const char *tables[] = { "demo-project.sales.orders" };
	struct approve_info in = { .kind = k, .container = container, .identity = identity,
		.project = "demo-project", .method = "bigquery.jobs.insert", .statements = &kind,
		.n_statements = 1, .tables = tables, .n_tables = 1, .sql = sql,
		.rule = "writes-need-approval", .reason = "writes to sales need a person" };
	char id[APPROVE_ID_LEN], job[APPROVE_JOB_ID_LEN];

	approve_job_id(job, sizeof(job));
	in.job_id = job;
	approve_fingerprint(identity, sql, strlen(sql), in.fingerprint);
	approve_request(a, &in, id, sizeof(id));
	printf("id %s\n", id);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	/* argv: SOCKET JOURNAL_DIR ENFORCED_CGROUP OWN_CGROUP */
	struct approve_conf ac = { .dir = argv[2], .on_decision = on_decision };
	struct ctlsock_conf sc = { .path = argv[1], .n_uids = 1, .uids = { 0 }, .n_groups = 1,
				   .groups = { "sluice-approvers" }, .n_enforced = 1,
				   .enforced = { argv[3] } };
	struct approve *a;
	struct ctlsock *s;
	char err[512];
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (approve_open(&ac, &a, err, sizeof(err)) || ctlsock_start(&sc, a, &s, err, sizeof(err))) {
		fprintf(stderr, "driver: %s\n", err);
		return 2;
	}
	hold(a, "/agents.slice/agent-1", "agent-1@demo", "DELETE",
	     "DELETE FROM sales.orders\n  WHERE created < '2020-01-01'", APPROVE_JOB);
	hold(a, "/agents.slice/agent-2", "agent-2@demo", "DROP_TABLE", "DROP TABLE sales.orders",
	     APPROVE_OP);
	hold(a, argv[4], "agent-3@demo", "UPDATE", "UPDATE sales.orders SET x = 1 WHERE id = 2",
	     APPROVE_JOB);
	printf("ready\n");
	fflush(stdout);
	while (!sigwait(&set, &sig) && sig == SIGUSR1)
		hold(a, "/agents.slice/agent-4", "agent-4@demo", "MERGE", "MERGE sales.orders ...",
		     APPROVE_JOB);
	ctlsock_stop(s);
	approve_close(a);
	return 0;
}
EOF
# A make SAN=1 library needs the sanitizers' runtime in the driver too.
san=; nm build/libsluice.a 2>/dev/null | grep -q __asan && san="-fsanitize=address,undefined"
# shellcheck disable=SC2046
cc -std=gnu11 $san -D_GNU_SOURCE -Iinclude -Ibuild -I/usr/include/libnl3 -o "$tmp/driver" "$tmp/driver.c" \
  build/libsluice.a $(pkg-config --libs libbpf liburing jansson libjwt openssl libnl-3.0 libnl-genl-3.0 \
  libnl-route-3.0 zlib) -lpthread || { echo "not ok - driver does not build"; exit 1; }

sock="$tmp/run/sluice.sock"
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
ctl() { build/sluicectl "$@" --socket "$sock" 2>&1; }
# js EXPR: evaluate a JavaScript expression over the JSON on stdin (bound to o)
js() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);
  console.log(eval(process.argv[1]))})' "$1"; }
"$tmp/driver" "$sock" "$tmp/journal" "$enf" "$own" > "$tmp/out" 2> "$tmp/log" & pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/out" && break; sleep 0.1; done
check "driver ready" grep -q ready "$tmp/out"
mapfile -t ids < <(sed -n 's/^id //p' "$tmp/out")
check_eq "three requests held" "${#ids[@]}" 3

check_eq "socket mode 0660" "$(stat -c %a "$sock")" 660
check_eq "socket directory mode 0750" "$(stat -c %a "$tmp/run")" 750

out=$(ctl approvals); rc=$?
check_eq "root lists: exit 0" "$rc" 0
check_contains "table header" "$out" "ID"
check_contains "... with why" "$out" "WHY"
check_contains "lists the first request" "$out" "${ids[0]}"
check_contains "... its container" "$out" "/agents.slice/agent-1"
check_contains "... its SQL on one line" "$out" "DELETE FROM sales.orders WHERE created"
check_contains "... the rule" "$out" "writes-need-approval: writes to sales need a person"
out=$(ctl approvals --json)
check_eq "--json: three items" "$(js 'o.length' <<< "$out")" 3
check_eq "--json: statement kinds" "$(js 'JSON.stringify(o.flatMap(x => x.statements).sort())' <<< "$out")" '["DELETE","DROP_TABLE","UPDATE"]'

out=$(ctl show "${ids[0]}"); rc=$?
check_eq "show: exit 0" "$rc" 0
check_contains "show: state" "$out" "state:       pending (expires in"
check_contains "show: the whole SQL" "$out" "  WHERE created < '2020-01-01'"
check_contains "show: the job" "$out" "query job sluice_approval_"
check_eq "show --json" "$(ctl show "${ids[1]}" --json | js 'o.kind + " " + o.state + " " + o.identity')" \
  "op pending agent-2@demo"
out=$(ctl show nope00); rc=$?
check_eq "show of an unknown id: exit 1" "$rc" 1
check_contains "... saying so" "$out" "no approval 'nope00'"

# An unauthorized uid: first the directory keeps it out, then (opened up) the server does.
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups build/sluicectl approvals --socket "$sock" 2>&1); rc=$?
check_eq "nobody: exit 1" "$rc" 1
check_contains "... not authorized by the file modes" "$out" "not authorized: cannot open $sock: permission denied"
chmod 755 "$tmp/run"; chmod 666 "$sock"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups build/sluicectl approve "${ids[0]}" --socket "$sock" 2>&1); rc=$?
check_eq "nobody through an open socket: exit 1" "$rc" 1
check_contains "... refused by SO_PEERCRED with how to become an approver" "$out" \
  "not authorized: uid 65534 (nobody) is not an approver (configure approvers.uids or add the user to group sluice-approvers)"
chmod 750 "$tmp/run"; chmod 660 "$sock"

# Root inside an enforced cgroup.
incg() { bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$cg2$enf" "$@"; }
out=$(incg build/sluicectl approve "${ids[0]}" --socket "$sock" 2>&1); rc=$?
check_eq "root in an enforced cgroup: exit 1" "$rc" 1
check_contains "... refused for its cgroup" "$out" "runs in enforced cgroup $enf"
out=$(incg build/sluicectl approvals --socket "$sock" 2>&1); rc=$?
check_eq "... cannot even list" "$rc" 1
check_contains "still pending after those attempts" "$(ctl show "${ids[0]}")" "pending"

out=$(ctl approve "${ids[2]}"); rc=$?
check_eq "approving a request from one's own cgroup: exit 1" "$rc" 1
check_contains "... saying why" "$out" "requested from your own cgroup or identity"

out=$(ctl approve "${ids[0]}" --reason "cleanup ticket 42" --for 30m); rc=$?
check_eq "root approves: exit 0" "$rc" 0
check_contains "... says so" "$out" "approved ${ids[0]}"
check_contains "... with the window" "$out" "identical requests pass until"
check_contains "decision recorded by the hook" "$(cat "$tmp/out")" \
  "decision ${ids[0]} approved root (uid 0): cleanup ticket 42"
check_eq "show --json: approved with a window" \
  "$(ctl show "${ids[0]}" --json | js 'o.state + " " + (o.window_until - o.decided_at)')" "approved 1800"
out=$(ctl deny "${ids[0]}" --reason late); rc=$?
check_eq "deciding twice: exit 1" "$rc" 1
check_contains "... says who decided" "$out" "already approved (by root (uid 0)"
out=$(ctl deny "${ids[1]}"); rc=$?
check_eq "deny without --reason: exit 2" "$rc" 2
check_contains "... reason required" "$out" "--reason is required"
out=$(ctl approve "${ids[1]}" --for soon); rc=$?
check_eq "bad --for: exit 2" "$rc" 2
out=$(ctl deny "${ids[1]}" --reason "not on Fridays"); rc=$?
check_eq "root denies: exit 0" "$rc" 0
check_eq "denied, reason kept" "$(ctl show "${ids[1]}" --json | js 'o.state + ": " + o.reason')" \
  "denied: not on Fridays"
check_eq "decided ones leave the list" "$(ctl approvals --json | js 'o.map(x => x.id).join("\\n")')" "${ids[2]}"

build/sluicectl approvals --watch --json --socket "$sock" > "$tmp/watch" 2>&1 & wpid=$!
for _ in $(seq 50); do [ -s "$tmp/watch" ] && break; sleep 0.1; done
kill -USR1 "$pid"
for _ in $(seq 50); do grep -q '"event":"pending"' "$tmp/watch" && break; sleep 0.1; done
check_contains "watch: streams a new request" "$(cat "$tmp/watch")" '"event":"pending"'
check_contains "... with its SQL" "$(cat "$tmp/watch")" "MERGE sales.orders"
kill "$wpid"; wait "$wpid" 2>/dev/null; wpid=

out=$(build/sluicectl approvals --socket /nonexistent/sock 2>&1); rc=$?
check_eq "no sluiced: exit 2" "$rc" 2
check_contains "... saying so" "$out" "cannot reach sluiced at"

kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
check_eq "driver stops cleanly" "$rc" 0
check "socket removed at stop" test ! -e "$sock"

mkdir -m 777 "$tmp/open"; chmod 777 "$tmp/open"
"$tmp/driver" "$tmp/open/s.sock" "$tmp/journal" "$enf" "$own" > /dev/null 2> "$tmp/log2"; rc=$?
check_eq "world-writable socket directory: refused" "$rc" 2
check_contains "... saying why" "$(cat "$tmp/log2")" "is world-writable: refusing to listen there"
chown nobody "$tmp/open"; chmod 750 "$tmp/open"
"$tmp/driver" "$tmp/open/s.sock" "$tmp/journal" "$enf" "$own" > /dev/null 2> "$tmp/log2"; rc=$?
check_eq "socket directory owned by another uid: refused" "$rc" 2
check_contains "... saying why" "$(cat "$tmp/log2")" "is owned by uid 65534"
tap_done
