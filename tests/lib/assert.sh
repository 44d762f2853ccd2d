# assert.sh - TAP checks for bash tests: ok/not ok lines, exit 1 at the end if one failed.
TAP_N=0 TAP_FAILED=0

# check DESCRIPTION COMMAND...: passes when the command exits 0.
check() {
  local what=$1; shift
  TAP_N=$((TAP_N + 1))
  if "$@"; then echo "ok $TAP_N - $what"
  else echo "not ok $TAP_N - $what"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}

# check_eq DESCRIPTION GOT WANT
check_eq() {
  TAP_N=$((TAP_N + 1))
  if [ "$2" = "$3" ]; then echo "ok $TAP_N - $1"
  else echo "not ok $TAP_N - $1"; echo "#   got:  '$2'"; echo "#   want: '$3'"
    TAP_FAILED=$((TAP_FAILED + 1)); fi
}

# check_contains DESCRIPTION HAYSTACK NEEDLE
check_contains() {
  TAP_N=$((TAP_N + 1))
  if [[ "$2" == *"$3"* ]]; then echo "ok $TAP_N - $1"
  else echo "not ok $TAP_N - $1"; echo "#   '$3' not in:"; printf '%s\n' "$2" | sed 's/^/#     /' | head -20
    TAP_FAILED=$((TAP_FAILED + 1)); fi
}

tap_done() { echo "1..$TAP_N"; [ $TAP_FAILED -eq 0 ]; }
