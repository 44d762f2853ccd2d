#!/usr/bin/env bash
# Description: the real data path. The real @google-cloud/bigquery client and the official
# bq tool, unchanged, in a test container whose connections the eBPF redirect sends through
# sluiced to the BigQuery stand-in; a process outside the enforced cgroup is not redirected;
# sluiced cross-checks each connection's owner with the kernel's socket table (sock_diag) and
# refuses one the eBPF origin disagrees with; with sluiced killed the agent's connections are
# refused, and a restarted sluiced serves again without re-attaching. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require
[ -d tests/node_modules ] || { echo "tests/node_modules missing: run scripts/install-deps.sh"; exit 1; }

gate_standin || exit 1
ct_create agent 127.0.0.1
ct_create outsider 127.0.0.1
gate_config "$(ct_cgroup agent)" || exit 1
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem"
gate_agent_key
gate_warm agent || exit 1

agent() {
  ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
    GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" \
    node tests/e2e/lib/agent.mjs "$@"
}

out=$(agent "SELECT name, email FROM \`demo-project.crm.customers\` WHERE customer_id = 1" 2>&1)
check_contains "real Node client: query answered through the gate" "$out" '"ok":true'
check_contains "... with the stand-in's row" "$out" '"email":'
check "stand-in saw the query" grep -q 'crm.customers' "$GATE_DIR/standin.log"
check "stand-in saw it arrive through sluiced (Via)" grep -q '"via":"1.1 sluice"' "$GATE_DIR/standin.log"
check "stand-in saw the token exchange through sluiced" grep -q '"path":"/token"' "$GATE_DIR/standin.log"
rec=$(gate_conns)
check_contains "connection recorded with the agent's process" "$rec" '"comm":"node"'
check_contains "... route intercept and SNI" "$rec" '"sni":"bigquery.googleapis.com","route":"intercept"'

# The owner cross-check (sock_diag) is on the real path: each conn_open carries what the
# kernel's socket table says about the agent's socket, and it agrees with the eBPF origin.
conn_opens() { # the conn_open records: comm uid agent_sock.uid agent_sock.inode
  cat "$GATE_DIR"/records/*/*.jsonl 2>/dev/null |
    jq -r 'select(.type == "conn_open") | .data |
           "\(.comm) \(.uid) \(.agent_sock.uid // "none") \(.agent_sock.inode // 0)"'
}
check_contains "sluiced cross-checks owners with sock_diag" "$(cat "$GATE_DIR/sluiced.log")" \
  "cross-checked with sock_diag"
opens=$(conn_opens | grep '^node ')
check "the agent's connections were recorded (conn_open)" test -n "$opens"
check_eq "... each with the kernel's view of its socket: same uid as eBPF's, an inode" \
  "$(awk '$3 == "none" || $2 != $3 || $4 == 0' <<< "$opens")" ""
# A non-root agent: the uid the kernel has for its socket is its own, not sluiced's.
ct_exec agent setpriv --reuid=65534 --regid=65534 --clear-groups \
  bash -c 'exec 3<>/dev/tcp/bigquery.googleapis.com/443; sleep 0.3' 2>/dev/null
for i in $(seq 20); do conn_opens | grep -q '^bash 65534 ' && break; sleep 0.1; done
check_contains "an agent running as uid 65534 is checked as uid 65534" "$(conn_opens)" \
  "bash 65534 65534 "
# A socket made by root and connected after dropping to uid 65534: eBPF records 65534, the
# kernel says root owns the socket. Refused, and the record says why.
refused=$(ct_exec agent perl -MSocket -MPOSIX -e '
  socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
  POSIX::setgid(65534); POSIX::setuid(65534) or die "setuid: $!";
  connect($s, pack_sockaddr_in(443, inet_aton("bigquery.googleapis.com"))) or die "connect: $!";
  local $SIG{ALRM} = sub { print "still open\n"; exit 0 }; alarm 5;
  syswrite($s, "\x16\x03\x01");  # the start of a ClientHello: sluiced waits for the rest
  my $n = sysread($s, my $b, 1); print +($n // -1) <= 0 ? "closed\n" : "data\n";' 2>&1)
check_eq "a socket whose owner disagrees with the redirect's record is closed" "$refused" closed
for i in $(seq 20); do gate_conns | grep -q 'belongs to uid 0' && break; sleep 0.1; done
check_contains "... the connection record says why" "$(gate_conns)" \
  "\"reason\":\"sock_diag: the agent's socket belongs to uid 0, the redirect recorded uid 65534\""
check_contains "... and so does sluiced's log" "$(cat "$GATE_DIR/sluiced.log")" \
  "uid 65534) refused: sock_diag: the agent's socket belongs to uid 0"

# The official bq tool (jobs.insert + getQueryResults).
echo "agent-token" > "$GATE_DIR/bq-token"
mkdir -p "$GATE_DIR/gcloud"
bqout=$(ct_exec agent env CLOUDSDK_CONFIG="$GATE_DIR/gcloud" \
  CLOUDSDK_AUTH_ACCESS_TOKEN_FILE="$GATE_DIR/bq-token" \
  CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE="$GATE_DIR/sluice-ca.pem" \
  bq --project_id demo-project query --nouse_legacy_sql --format=json \
  'SELECT COUNT(*) AS n FROM `demo-project.hr.salaries`' 2>&1)
check_contains "bq query answered through the gate" "$bqout" '"n":'

# Outside the enforced cgroup: not redirected (nothing listens on its loopback:443).
check "process outside the enforced cgroup is not redirected" \
  bash -c "! ct_exec outsider bash -c 'exec 3<>/dev/tcp/bigquery.googleapis.com/443' 2>/dev/null"

# A child cgroup of the enforced one is enforced too.
mkdir "$(ct_cgroup_dir agent)/child"
child=$(sh -c 'echo $$ > "$1/cgroup.procs"; exec ip netns exec "$2" bash -c "exec 3<>/dev/tcp/127.0.0.1/443 && echo connected"' \
  sh "$(ct_cgroup_dir agent)/child" "$(ct_netns agent)" 2>&1)
check_contains "process in a child cgroup is redirected" "$child" connected

# Fail closed: sluiced killed -> refused; restarted -> served, nothing re-attached.
kill -9 "$SLUICED_PID"; wait "$SLUICED_PID" 2>/dev/null
check "sluiced killed: the agent's connection is refused" \
  bash -c "! ct_exec agent bash -c 'exec 3<>/dev/tcp/bigquery.googleapis.com/443' 2>/dev/null"
links_before=$(ls /sys/fs/bpf/sluice-test-$$/links | sort)
gate_start
gate_warm agent
out=$(agent "SELECT COUNT(*) AS n FROM \`demo-project.sales.orders\`" 2>&1)
check_contains "restarted sluiced serves the agent again" "$out" '"ok":true'
check_eq "the pinned links were adopted, not re-created" "$(ls /sys/fs/bpf/sluice-test-$$/links | sort)" "$links_before"
check_contains "restart adopted the links" "$(cat "$GATE_DIR/sluiced.log")" "enforcing $(ct_cgroup agent)"
tap_done
