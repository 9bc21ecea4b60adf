#!/usr/bin/env bash
# Makes a throwaway PKI for the TLS tests and benchmarks in DIR (default
# build/tls): a CA, a server certificate for localhost / 127.0.0.1 / ::1
# signed by it (server.pem holds the certificate then the CA: a full
# chain) and its renewal (renewed.pem), a client certificate signed by it, and a second, unrelated CA
# with its own client certificate (what a stranger would present).
# EC P-256 keys: quick to make, and what servers mostly use today.
set -euo pipefail
dir=${1:-build/tls}
if ! command -v openssl >/dev/null; then
  echo "make_test_certs.sh: needs the openssl command: apt-get install openssl" \
       "(make test installs it)" >&2
  exit 1
fi
mkdir -p "$dir"
cd "$dir"

# Each step says what failed rather than leaving half a PKI behind.
trap 'echo "make_test_certs.sh: making the test certificates in $dir failed" >&2' ERR

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$1.pem" 2>/dev/null
}

leaf() { # name subject ca extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 30 \
    -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  cat "$1.crt" "$3.pem" > "$1.pem"
  rm -f "$1.csr" "$1.ext"
}

ca ca "enchufe test CA"
leaf server localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
leaf client "enchufe test client" ca "extendedKeyUsage=clientAuth"
# The same names with a new key and serial: what a renewal installs
# (the reload tests swap it in).
leaf renewed localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
ca other-ca "somebody else's CA"
leaf stranger "a stranger" other-ca "extendedKeyUsage=clientAuth"
echo "test certificates in $dir: ca.pem, server.pem/.key, renewed.pem/.key, client.pem/.key," \
     "stranger.pem/.key"
