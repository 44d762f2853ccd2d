#!/usr/bin/env bash
# Runs sluice's tests and prints one summary line: "N passed, N failed, N skipped".
#
#   tests/run.sh                 every test: C unit tests, stand-in tests, end-to-end tests
#   tests/run.sh TEST...         only these (a build/tests/unit/NAME binary, a .sh or a .mjs)
#
# A test is an executable that exits 0 (pass), 1 (fail) or 77 (skip, reason printed). Its
# output goes to build/test-logs/NAME.log and is shown when it fails. Under CI=true a skip
# counts as a failure: CI has root and cgroup v2, so nothing there may quietly not run.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
logs=build/test-logs
mkdir -p "$logs"
per_test_timeout=${TEST_TIMEOUT:-600}

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(build/tests/unit/* tests/standin/*.test.mjs tests/e2e/*.sh)
fi

pass=0 fail=0 skip=0
for t in "${tests[@]}"; do
  [ -e "$t" ] || continue
  case "$t" in build/tests/unit/*) [ -x "$t" ] && [[ "$t" != *.d ]] || continue ;; esac
  name=$(basename "$t"); name=${name%.test.mjs}; name=${name%.sh}
  case "$t" in
    build/tests/unit/*) name="unit/$name" ;;
    tests/standin/*)    name="standin/$name" ;;
    tests/e2e/*)        name="e2e/$name" ;;
  esac
  log="$logs/${name//\//-}.log"
  case "$t" in
    *.mjs) cmd=(node "$t") ;;
    *.sh)  cmd=(bash "$t") ;;
    *)     cmd=("$t") ;;
  esac
  start=$(date +%s.%N)
  # setsid: the test and all it starts form one group, killed together on timeout.
  timeout --foreground -k 10 "$per_test_timeout" setsid "${cmd[@]}" </dev/null >"$log" 2>&1
  rc=$?
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-32s %6ss\n' "$name" "$secs"
  elif [ $rc -eq 77 ] && [ "${CI:-}" != true ]; then
    skip=$((skip + 1)); printf 'SKIP  %-32s %s\n' "$name" "$(grep -m1 -o 'SKIP.*' "$log")"
  else
    fail=$((fail + 1))
    why="exit $rc"; [ $rc -eq 124 ] && why="timed out after ${per_test_timeout}s"
    [ $rc -eq 77 ] && why="skipped under CI=true: $(grep -m1 -o 'SKIP.*' "$log")"
    printf 'FAIL  %-32s %s (log: %s)\n' "$name" "$why" "$log"
    sed 's/^/      | /' "$log" | tail -n 40
  fi
done

# Nothing of the tests may outlive them: cgroups, network namespaces, processes.
if [ $# -eq 0 ]; then
  cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  left=$( { ls -d "$cg2"/sluice-test-* /sys/fs/bpf/sluice-test-* 2>/dev/null; ip netns list 2>/dev/null | grep -o '^sluice-test-[^ ]*';
            pgrep -a -f '[b]uild/sluiced|[t]ests/standin/server.mjs'; } )
  if [ -n "$left" ]; then
    fail=$((fail + 1)); echo "FAIL  leftovers                        the tests left behind:"
    printf '%s\n' "$left" | sed 's/^/      | /'
  else
    pass=$((pass + 1)); printf 'PASS  %-32s\n' "leftovers (none)"
  fi
fi

line="$pass passed, $fail failed"
[ $skip -gt 0 ] && line="$line, $skip skipped"
echo "$line"
[ $fail -eq 0 ]
