# container.sh - test "containers" as the kernel sees a container: a cgroup v2 child, a
# network namespace with loopback up, and a mount namespace with its own /etc/hosts and CA
# bundle. Source it from a bash test:
#
#   . tests/lib/container.sh
#   ct_require            # exit 77 (skip) unless root, cgroup v2 and iproute2 are here
#   ct_create agent       # [HOSTS_IP] [EXTRA_CA_PEM]: Google names resolve to HOSTS_IP
#   ct_exec agent node client.mjs
#   ct_cgroup agent       # its path under the cgroup2 mount, for sluiced's enforce.cgroups
#
# Everything is torn down on exit, also when the test fails or is interrupted: processes in
# the cgroups are killed, the cgroups removed, the namespaces deleted.

CT_ID=${CT_ID:-sluice-test-$$}
CT_NAMES=()
CT_TMP=""

# Google API names a test container resolves to its HOSTS_IP.
CT_GOOGLE_HOSTS="bigquery.googleapis.com www.googleapis.com bigquery.mtls.googleapis.com
 bigquery.europe-west1.rep.googleapis.com bigquerystorage.googleapis.com oauth2.googleapis.com
 sts.googleapis.com iamcredentials.googleapis.com storage.googleapis.com"

ct_skip() { echo "SKIP: $*"; exit 77; }

# The cgroup2 mount point, from /proc/mounts (it moves between hosts: never hard-coded).
ct_cgroup2_mount() { awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts; }

ct_require() {
  [ "$(id -u)" -eq 0 ] || ct_skip "needs root (cgroups, network namespaces, eBPF)"
  [ -n "$(ct_cgroup2_mount)" ] || ct_skip "needs a cgroup v2 mount (none in /proc/mounts)"
  command -v ip >/dev/null || ct_skip "needs iproute2 (ip)"
  command -v unshare >/dev/null || ct_skip "needs util-linux (unshare)"
}

ct_netns() { echo "${CT_ID}-$1"; }
ct_cgroup() { echo "/$CT_ID/$1"; }
ct_cgroup_dir() { echo "$(ct_cgroup2_mount)$(ct_cgroup "$1")"; }

ct_create() {
  local name=$1 ip=${2:-127.0.0.1} ca=${3:-} dir h
  if [ -z "$CT_TMP" ]; then
    CT_TMP=$(mktemp -d "/tmp/$CT_ID.XXXXXX")
    trap ct_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$(ct_cgroup2_mount)/$CT_ID"
  fi
  CT_NAMES+=("$name")
  dir="$CT_TMP/$name"
  mkdir -p "$dir"
  mkdir "$(ct_cgroup_dir "$name")"
  ip netns add "$(ct_netns "$name")"
  ip -n "$(ct_netns "$name")" link set lo up
  { echo "127.0.0.1 localhost"; echo "::1 localhost ip6-localhost"
    for h in $CT_GOOGLE_HOSTS; do echo "$ip $h"; done; } > "$dir/hosts"
  cat /etc/ssl/certs/ca-certificates.crt > "$dir/ca-bundle.crt" 2>/dev/null || : > "$dir/ca-bundle.crt"
  [ -n "$ca" ] && cat "$ca" >> "$dir/ca-bundle.crt"
  return 0
}

# Run a command inside container <name>: its cgroup (joined before exec), its netns, and a
# private mount namespace where /etc/hosts and the system CA bundle are the container's.
ct_exec() {
  local name=$1; shift
  # Join the cgroup first: "ip netns exec" remounts /sys, hiding the cgroup2 mount.
  sh -c 'echo $$ > "$1/cgroup.procs" || exit 125; shift; exec "$@"' ct "$(ct_cgroup_dir "$name")" \
    ip netns exec "$(ct_netns "$name")" unshare --mount --propagation private \
    sh -c 'mount --bind "$1/hosts" /etc/hosts || exit 125
           if [ -e /etc/ssl/certs/ca-certificates.crt ]; then
             mount --bind "$1/ca-bundle.crt" /etc/ssl/certs/ca-certificates.crt || exit 125
           fi
           shift; exec "$@"' ct "$CT_TMP/$name" "$@"
}

# Kill every process of a cgroup and remove it (children first).
ct_kill_cgroup() {
  local d=$1 i sub
  [ -d "$d" ] || return 0
  for sub in "$d"/*/; do [ -d "$sub" ] && ct_kill_cgroup "${sub%/}"; done
  if [ -e "$d/cgroup.kill" ]; then echo 1 > "$d/cgroup.kill" 2>/dev/null
  else xargs -r kill -9 < "$d/cgroup.procs" 2>/dev/null; fi
  for i in $(seq 50); do rmdir "$d" 2>/dev/null && return 0; sleep 0.1; done
  echo "container: could not remove cgroup $d" >&2
}

ct_cleanup() {
  local rc=$? name
  trap - EXIT INT TERM
  # Tests add their own clean-up (daemons they started) by defining ct_on_cleanup.
  if declare -F ct_on_cleanup >/dev/null; then ct_on_cleanup; fi
  for name in "${CT_NAMES[@]}"; do
    ct_kill_cgroup "$(ct_cgroup_dir "$name")"
    ip netns del "$(ct_netns "$name")" 2>/dev/null
  done
  [ -n "$(ct_cgroup2_mount)" ] && ct_kill_cgroup "$(ct_cgroup2_mount)/$CT_ID"
  [ -n "$CT_TMP" ] && rm -rf "$CT_TMP"
  CT_NAMES=() CT_TMP=""
  exit $rc
}
