#!/usr/bin/env bash
# Description: the auditors' commands on a recording store: sessions, replay, export,
# verify (exit 0 intact, 1 tampered, 2 usage), and the README recipe that checks an export
# with sha256sum and openssl alone. No root needed.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
tmp=$(mktemp -d /tmp/sluice-rec-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ctl=build/sluicectl
[ -x $ctl ] || { echo "SKIP: build/sluicectl not built"; exit 77; }
cc -std=gnu11 -O2 -D_GNU_SOURCE -Iinclude -o "$tmp/recwriter" tests/e2e/lib/recwriter.c \
  userspace/record.c userspace/reckey.c userspace/recjson.c userspace/recverify.c userspace/recwal.c \
  userspace/log.c \
  $(pkg-config --cflags --libs jansson openssl zlib) -lpthread || exit 1
store=$tmp/store
"$tmp/recwriter" "$store" demo 0
docker=1111111111111111111111111111111111111111111111111111111111111111--1000

out=$($ctl sessions --dir "$store"); rc=$?
check_eq "sessions: exit 0" $rc 0
check_contains "sessions lists the docker container" "$out" "$docker"
check_contains "sessions lists the pod" "$out" "pod-11111111-2222-3333-4444-555555555555--1001"
check_eq "sessions --json: requests and denials counted" \
  "$($ctl sessions --dir "$store" --container 1111111111 --json | jq -c '.[0] | [.requests, .denials, .records]')" "[2,1,7]"
check_eq "sessions --since in the future: nothing" \
  "$($ctl sessions --dir "$store" --since 2999-01-01T00:00:00Z --json | jq length)" 0

out=$($ctl replay 1111111111 --dir "$store"); rc=$?
check_eq "replay: exit 0" $rc 0
check_contains "replay shows the SQL" "$out" "sql: DROP TABLE shop.orders"
check_contains "replay shows the decision and rule" "$out" "decision=deny reason=DROP is refused rule=no-ddl"
check_contains "replay shows the shutdown checkpoint" "$out" "reason=shutdown"
$ctl replay nosuch --dir "$store" >/dev/null 2>&1
check_eq "replay of an unknown stream: exit 1" $? 1

check "verify the store: exit 0" $ctl verify "$store"
$ctl verify 2>/dev/null; check_eq "verify without a path: exit 2" $? 2

$ctl export --dir "$store" --container 1111111111 -o "$tmp/export" >/dev/null
check_eq "export: exit 0" $? 0
check "export holds the manifest, its signature, the key and the stream" test -s "$tmp/export/MANIFEST.sha256" \
  -a -s "$tmp/export/MANIFEST.sha256.sig" -a -s "$tmp/export/record.pub" -a -s "$tmp/export/streams/$docker.jsonl"
check "verify the export: exit 0" $ctl verify "$tmp/export"

# The README recipe, verbatim: sha256sum and openssl alone.
recipe() (
  cd "$1" || exit 2
  sha256sum -c --quiet MANIFEST.sha256 || echo "BAD: a file differs from the manifest"
  if [ -e MANIFEST.sha256.sig ]; then
    openssl pkeyutl -verify -pubin -inkey record.pub -rawin -in MANIFEST.sha256 \
      -sigfile MANIFEST.sha256.sig >/dev/null || echo "BAD: manifest signature"
  fi
  for f in streams/*.jsonl; do
    prev= seq=
    while IFS= read -r line; do
      set -- $(printf '%s' "$line" | sed -E 's/.*"prev":"([0-9a-f]{64})","seq":([0-9]+),"stream":"([^"]*)","time":"([^"]*)","type":"([a-z_]+)","hash":"([0-9a-f]{64})"\}$/\1 \2 \3 \4 \5 \6/')
      # $1 prev, $2 seq, $3 stream, $4 time, $5 type, $6 hash
      [ "$(printf '%s' "$line" | sed -E 's/,"hash":"[0-9a-f]{64}"\}$/}/' | sha256sum | cut -c1-64)" = "$6" ] \
        || echo "BAD: $f seq $2: hash does not match the record"
      [ -z "$prev" ] || [ "$1" = "$prev" -a "$2" = $((seq + 1)) ] || echo "BAD: $f seq $2: chain broken"
      [ "$3.jsonl" = "${f##*/}" ] || echo "BAD: $f seq $2: record of stream $3"
      if [ "$5" = checkpoint ]; then
        printf 'sluice-checkpoint-v1\n%s\n%s\n%s\n%s' "$3" $(($2 - 1)) "$1" "$4" > /tmp/msg.$$
        printf '%s' "$line" | sed -E 's/.*"sig":"([A-Za-z0-9+\/=]{88})".*/\1/' | base64 -d > /tmp/sig.$$
        openssl pkeyutl -verify -pubin -inkey record.pub -rawin -in /tmp/msg.$$ \
          -sigfile /tmp/sig.$$ >/dev/null || echo "BAD: $f seq $2: checkpoint signature"
        signed=$2
      fi
      prev=$6 seq=$2
    done < "$f"
    echo "$f: records up to seq $seq, signed through seq ${signed:-none}"
  done
  rm -f /tmp/msg.$$ /tmp/sig.$$
)
out=$(recipe "$tmp/export")
check_eq "recipe: an intact export has no BAD line" "$(grep -c BAD <<< "$out")" 0
check_contains "recipe: reports the signed range" "$out" "signed through seq 7"

# tampering on copies: verify says 1 and names it; the recipe notices too
cp -a "$tmp/export" "$tmp/t1"
sed -i 's/DROP TABLE shop.orders/SELECT 1/' "$tmp/t1/streams/$docker.jsonl"
out=$($ctl verify "$tmp/t1"); rc=$?
check_eq "verify a modified export: exit 1" $rc 1
check_contains "it names the first bad record" "$out" "streams/$docker.jsonl:2 (seq 2): modified"
check_contains "recipe: the modified record" "$(recipe "$tmp/t1")" "seq 2: hash does not match"
check_contains "recipe: the manifest" "$(recipe "$tmp/t1")" "BAD: a file differs from the manifest"

cp -a "$store" "$tmp/t2"
sed -i '3d' "$tmp/t2/$docker/000001.jsonl"
check_eq "a deleted record: --json names it" "$($ctl verify "$tmp/t2" --json | jq -r '.first_problem.kind')" deleted
cp -a "$store" "$tmp/t3"
sed -i '$d' "$tmp/t3/$docker/000001.jsonl"
out=$($ctl verify "$tmp/t3"); rc=$?
check_eq "the final checkpoint removed: exit 1" $rc 1
check_contains "named as truncated" "$out" "truncated"
tap_done
