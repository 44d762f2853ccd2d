#!/bin/sh
# mkcerts.sh DIR — test PKI for the BigQuery stand-in.
#
# Makes DIR/ca.pem + DIR/ca.key (a throwaway test CA) and DIR/server.pem +
# DIR/server.key (a server certificate signed by that CA) whose SANs cover the
# Google API host names the sluice tests point at the stand-in, plus
# localhost / 127.0.0.1 / ::1. EC P-256 keys. Idempotent: if all four files
# already exist nothing is done.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"

if [ -s "$dir/ca.pem" ] && [ -s "$dir/ca.key" ] &&
	[ -s "$dir/server.pem" ] && [ -s "$dir/server.key" ]; then
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CA
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key" 2>/dev/null
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 \
	-subj "/O=sluice tests/CN=sluice test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" \
	-out "$tmp/ca.pem"

# Server
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server.key" 2>/dev/null
openssl req -new -key "$tmp/server.key" -sha256 \
	-subj "/O=sluice tests/CN=bigquery.googleapis.com" \
	-out "$tmp/server.csr"
cat >"$tmp/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
subjectAltName=DNS:bigquery.googleapis.com,DNS:www.googleapis.com,DNS:oauth2.googleapis.com,DNS:sts.googleapis.com,DNS:bigquery.mtls.googleapis.com,DNS:*.googleapis.com,DNS:*.rep.googleapis.com,DNS:localhost,IP:127.0.0.1,IP:::1
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
	-CAcreateserial -days 3650 -sha256 -extfile "$tmp/server.ext" \
	-out "$tmp/server.pem" 2>/dev/null

# Throwaway test keys: readable so a test running as another user can use them.
chmod 644 "$tmp/ca.key" "$tmp/server.key"
for f in ca.pem ca.key server.pem server.key; do
	mv -f "$tmp/$f" "$dir/$f"
done
