#!/usr/bin/env bash
# Description: sluiced starts, reports configuration errors with file, line and key, keeps
# its configuration when a reload is invalid, and exits 0 on SIGTERM.
# Needs root (it loads eBPF).
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (sluiced loads eBPF)"; exit 77; }
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; build/sluiced --config "$tmp/good.json" --detach >/dev/null 2>&1; rm -rf "$tmp"' EXIT
build/sluicectl ca init --cert "$tmp/ca.pem" --key "$tmp/ca.key" >/dev/null

printf '{\n  "workers": 1,\n  "listen_port": "x"\n}\n' > "$tmp/bad.json"
out=$(build/sluiced --config "$tmp/bad.json" 2>&1); rc=$?
check_eq "invalid configuration: exit 2" "$rc" 2
check_contains "error names file, line and key" "$out" "$tmp/bad.json:3: listen_port: must be an integer"
out=$(build/sluiced --config "$tmp/none.json" 2>&1); rc=$?
check_eq "missing configuration: exit 2" "$rc" 2
check_contains "missing file is named" "$out" "$tmp/none.json: cannot open"
out=$(build/sluiced --bogus 2>&1); rc=$?
check_eq "unknown option: exit 2" "$rc" 2

. tests/e2e/lib/gate.sh
good='{"workers": 1, "listen_port": '$(gate_free_port)', "ca": {"cert": "'$tmp/ca.pem'", "key": "'$tmp/ca.key'"},
 "enforce": {"bpf_pin_dir": "/sys/fs/bpf/sluice-test-'$$'"}, "record": {"dir": "'$tmp/rec'"},
 "policy": "'$PWD/policies/readonly-agent.json'"}'
echo "$good" > "$tmp/good.json"
check "--check accepts a valid configuration" build/sluiced --config "$tmp/good.json" --check
build/sluiced --config "$tmp/good.json" 2> "$tmp/log" & pid=$!
for _ in $(seq 50); do grep -q started "$tmp/log" && break; sleep 0.1; done
check_contains "started" "$(cat "$tmp/log")" "started with $tmp/good.json"
echo '{"workers": -1}' > "$tmp/good.json"
kill -HUP $pid
for _ in $(seq 50); do grep -q "reload refused" "$tmp/log" && break; sleep 0.1; done
check_contains "invalid reload refused with the reason" "$(cat "$tmp/log")" "reload refused, previous configuration stays in force: $tmp/good.json:1: workers"
echo "$good" > "$tmp/good.json"
check "still running after a refused reload" kill -0 $pid
kill -TERM $pid; wait $pid; rc=$?
check_eq "SIGTERM: exit 0" "$rc" 0
check_contains "says it stopped" "$(cat "$tmp/log")" "stopped"
tap_done
