#!/usr/bin/env bash
# Installs everything sluice needs to build, test, demo and benchmark on Debian 12.
# Idempotent: re-running only installs what is missing. Needs root (apt-get).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(
  make gcc clang llvm libbpf-dev bpftool pkg-config
  liburing-dev libssl-dev libjansson-dev libjwt-dev
  libnl-3-dev libnl-genl-3-dev libnl-route-3-dev zlib1g-dev
  openssl iproute2 util-linux procps curl ca-certificates
  haproxy nginx wrk
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get); try: sudo $0" >&2
  exit 2
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere (e.g. a newer build bundling npm, which conflicts with
# Debian's npm package): install Debian's only when no node/npm is on the PATH.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The benchmark starts its own haproxy/nginx; the distribution's services are not wanted.
for s in haproxy nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q "$s" 2>/dev/null; then
    systemctl stop "$s" || true
  fi
done

# Test-side npm packages (the real BigQuery client, DuckDB for the stand-in), pinned by lockfile.
if [ -f "$top/tests/package-lock.json" ]; then
  if [ ! -d "$top/tests/node_modules" ] || [ "$top/tests/package-lock.json" -nt "$top/tests/node_modules/.package-lock.json" ]; then
    (cd "$top/tests" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
echo "install-deps: ok"
