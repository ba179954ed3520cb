#!/bin/sh
# mkcerts.sh DIR: make a throwaway test CA and one server certificate signed by it.
#   DIR/ca.pem, DIR/ca.key         the CA (trust ca.pem on the client side)
#   DIR/server.pem, DIR/server.key  leaf for SAN IP:127.0.0.1, IP:::1, DNS:localhost (EC P-256)
#   DIR/server-chain.pem            server.pem followed by ca.pem
#   DIR/rogue.pem, DIR/rogue.key    self-signed, same SANs, not issued by the CA (must be refused)
# The leaf serves the simulated phone's ntfy server and push gateway as well as ftmpush's callback
# listener. Only the openssl CLI is used; nothing outside DIR is touched. Idempotent: existing
# files are kept unless FORCE=1.
set -eu
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
if [ "${FORCE:-0}" != 1 ] && [ -s ca.pem ] && [ -s server.pem ] && [ -s server.key ]; then
  exit 0
fi
umask 077
days=${DAYS:-30}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days "$days" -subj "/CN=ftmpush test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout server.key -out server.csr -subj "/CN=localhost" >/dev/null 2>&1
cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days "$days" -extfile server.ext >/dev/null 2>&1
cat server.pem ca.pem > server-chain.pem
# rogue.pem/rogue.key: same names, self-signed, NOT issued by ca.pem: a listener the phone must refuse.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout rogue.key -out rogue.pem -days "$days" -subj "/CN=localhost" \
  -addext "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" >/dev/null 2>&1
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem server-chain.pem rogue.pem
chmod 600 ca.key server.key rogue.key
