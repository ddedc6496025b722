#!/bin/sh
# Makes the client-certificate fixtures of src/clientcert.rs with the openssl CLI. Run it in
# this directory; the private keys are not kept (only the certificates are used).
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ca() { # NAME SUBJECT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/$1.key" -out "$1.pem" -days 7300 \
    -subj "$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # NAME CA EKU
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/$1.key" -out "$tmp/$1.csr" -subj "/CN=$1"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$2.pem" -CAkey "$tmp/$2.key" -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$tmp/$1.ext" -out "$1.pem"
}
ca ca "/O=anpi test/CN=anpi test client CA"
ca other-ca "/O=someone else/CN=another CA"
leaf client ca clientAuth
leaf server-only ca serverAuth
leaf other-client other-ca clientAuth
