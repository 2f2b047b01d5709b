#!/usr/bin/env bash
# Regenerates the test certificates for TLS cluster links (tests/actors/cluster_tls.test.cpp):
# a CA and a node certificate it signed, and a second ("rogue") CA with a node certificate of its
# own — a node presenting that one must not be let in. Valid for 100 years; test use only: the
# private keys are public.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
for ca in ca rogue-ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -keyout $ca.key -out $ca.pem -days $days -subj "/CN=flowbus test $ca" 2>/dev/null
done
node() { # name, ca
  openssl req -newkey rsa:2048 -nodes -keyout $1.key -out $1.csr -subj "/CN=flowbus $1" 2>/dev/null
  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.pem -days $days 2>/dev/null
  rm -f $1.csr
}
node node ca
node rogue-node rogue-ca
rm -f ca.srl rogue-ca.srl rogue-ca.key ca.key
