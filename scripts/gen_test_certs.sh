#!/bin/sh
# Test certificates for tests/test_security.py, written to tests/certs/ (committed, so that CI
# needs no openssl). Test use only: the private keys are public. Valid for 100 years.
#
#   ca.pem                       the test CA (its key is thrown away)
#   server.pem, server.key       the server: CN localhost, SAN localhost, 127.0.0.1, ::1
#   client.pem, client.key       a client, CN campaign-tool (the tests map it to scopes)
#   unmapped.pem, unmapped.key   a client, CN unmapped-tool (mapped to nothing)
#   other-ca.pem                 a CA nobody trusts; rogue.pem, rogue.key: a client it signed
set -eu
out="${1:-$(dirname "$0")/../tests/certs}"
mkdir -p "$out"
cd "$out"
days=36500
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # name, common name
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem"
}

leaf() {  # name, common name, extended key usage, subjectAltName or "", signing CA
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$work/$1.csr"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$3"
        if [ -n "$4" ]; then echo "subjectAltName=$4"; fi
    } >"$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA "$5.pem" -CAkey "$5.key" -CAcreateserial -CAserial "$work/$5.srl" \
        -sha256 -days "$days" -extfile "$work/$1.ext" -out "$1.pem" 2>/dev/null
}

ca ca "idstitch test CA"
leaf server localhost serverAuth "DNS:localhost,IP:127.0.0.1,IP:::1" ca
leaf client campaign-tool clientAuth "" ca
leaf unmapped unmapped-tool clientAuth "" ca
ca other-ca "untrusted test CA"
leaf rogue campaign-tool clientAuth "" other-ca
rm -f ca.key other-ca.key  # nothing more is signed with them: run this script again for new certificates
echo "test certificates in $(pwd)"
