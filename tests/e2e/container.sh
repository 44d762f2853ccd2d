#!/usr/bin/env bash
# Description: the test container helper isolates cgroup, netns and mounts, and always
# cleans up, also when the test using it is killed. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
ct_require

extra=$(mktemp); echo "# sluice test CA marker" > "$extra"
ct_create box 127.0.0.1 "$extra"
cg=$(ct_exec box cat /proc/self/cgroup | awk -F: '$1 == "0" { print $3 }')
check_eq "process runs in the container's cgroup" "$cg" "$(ct_cgroup box)"
links=$(ct_exec box ip -o link show | awk -F': ' '{ print $2 }' | tr '\n' ' ')
check_eq "netns has loopback only" "$links" "lo "
check_contains "loopback is up" "$(ct_exec box ip -o link show lo)" "UP"
check_eq "Google names resolve to the container's address" \
  "$(ct_exec box getent hosts bigquery.googleapis.com | awk '{ print $1 }')" "127.0.0.1"
check "CA bundle carries the extra CA" ct_exec box grep -q "sluice test CA marker" /etc/ssl/certs/ca-certificates.crt
check "host's /etc/hosts is untouched" bash -c '! grep -q bigquery.googleapis.com /etc/hosts'
check "host's netns is not the container's" \
  test "$(readlink /proc/self/ns/net)" != "$(ct_exec box readlink /proc/self/ns/net)"
rm -f "$extra"

# A test killed midway still leaves nothing behind.
cgmount=$(ct_cgroup2_mount)
CT_ID=sluice-test-inner-$$ bash -c '
  . tests/lib/container.sh
  ct_create inner
  ct_exec inner sleep 300 &
  sleep 0.5
  echo "$(ct_cgroup_dir inner)" > '"$CT_TMP"'/inner-path
  kill -TERM $$; sleep 5' >/dev/null 2>&1
inner=$(cat "$CT_TMP/inner-path" 2>/dev/null)
check "inner test recorded its cgroup" test -n "$inner"
check "interrupted test removed its cgroup" test ! -e "$inner"
check "interrupted test removed its netns" bash -c "! ip netns list | grep -q sluice-test-inner-$$"
check "interrupted test's processes are gone" bash -c "! pgrep -f '[s]leep 300' >/dev/null"
check "no cgroup left under the mount" test ! -e "$cgmount/sluice-test-inner-$$"
tap_done
