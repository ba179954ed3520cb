#!/usr/bin/env bash
# Installs everything ftmpush needs to build, test and run its demo on Debian 12 (bookworm).
# Idempotent: packages already present are skipped by apt; the FreeRADIUS source is fetched once.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PKGS=(
  build-essential autoconf automake libtool pkg-config dpkg-dev
  libssl-dev libcurl4-openssl-dev libjson-c-dev libsqlite3-dev libmicrohttpd-dev
  libpam0g-dev libcmocka-dev libqrencode-dev libpq-dev postgresql
  freeradius freeradius-utils libfreeradius-dev libtalloc-dev libpcre3-dev
  oathtool pamtester libpam-wrapper libpam-pwdfile libpam-oath
  python3 python3-cryptography python3-aiosmtpd openssl sqlite3 curl ca-certificates
  chromium zbar-tools
  # tests/integration/metrics*.test: promtool check metrics validates the exposition
  prometheus
  openssh-server openssh-client expect iproute2 procps
  clang libclang-rt-14-dev
  debhelper lintian libsystemd-dev
  # tests/integration/vpn_*.test: the VPN servers and clients, each pair in its own network namespaces
  ocserv openconnect openvpn iputils-ping
  strongswan-charon strongswan-swanctl charon-cmd libcharon-extra-plugins libcharon-extauth-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# deb-src entries are needed for `apt-get source freeradius` (the headers Debian's -dev package lacks).
need_src=0
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  need_src=1
fi
if [ "$need_src" = 1 ]; then
  echo "deps: adding deb-src entries (/etc/apt/sources.list.d/ftmpush-src.sources)"
  $SUDO tee /etc/apt/sources.list.d/ftmpush-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$need_src" = 1 ]; then
  $SUDO apt-get update -q
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The stock freeradius service is not ours: keep it from holding 1812/1813 during tests.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet freeradius 2>/dev/null; then
  $SUDO systemctl stop freeradius || true
fi
# Nor is the stock ocserv (it would serve 443 with Debian's example config): the VPN tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ocserv 2>/dev/null; then
  $SUDO systemctl stop ocserv || true
fi
# Nor is the stock Prometheus server (promtool is what the tests use; the server would scrape and listen on 9090).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
elif [ -x /etc/init.d/prometheus ] && pgrep -x prometheus >/dev/null 2>&1; then
  $SUDO /etc/init.d/prometheus stop || true
fi
echo "deps: ok"
