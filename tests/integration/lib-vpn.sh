# lib-vpn.sh: two network namespaces for the vpn_*.test scripts (sourced, bash, before lib-radius/lib-pam).
# The test runs again inside a server namespace it made (its loopback holds freeradius, ftmpushd, the
# simulated phone and the VPN server, exactly as the single-namespace tests have them on 127.0.0.1);
# the VPN clients run in two client namespaces, each joined to it by a veth pair (two client addresses:
# ocserv picks a sec-mod by client address). No traffic leaves the namespaces; all three are removed
# when the test ends, whatever way it ends.
#
#   vpn_netns_enter          skip (77) unless root with ip netns and /dev/net/tun; first call: makes the
#                            namespaces and re-runs the test inside the server one, then exits with its
#                            status; inside, returns at once
#   VPN_SRV_IP / VPN_CLI_IP  the first veth pair's addresses (server, client)
#   VPN_SRV_IP2 / VPN_CLI_IP2  the second pair's (server, second client)
#   on_client CMD... / on_client2 CMD...   run CMD in the first / second client namespace
#   tun_ping ADDR [IFACE]    three pings from the client namespace (one second bound each); with IFACE,
#                            also asserts IFACE's packet counter moved (the packets went through the tunnel)
#   elapsed_since T0         whole seconds since T0 (date +%s.%N)
set -u

VPN_SRV_IP=198.18.0.1
VPN_CLI_IP=198.18.0.2
VPN_SRV_IP2=198.18.1.1
VPN_CLI_IP2=198.18.1.2
VPN_NS_SRV=ftm${FTM_PORT_BASE:?run through tests/integration/run.sh}s
VPN_NS_CLI=ftm${FTM_PORT_BASE}c
VPN_NS_CLI2=ftm${FTM_PORT_BASE}d

vpn_skip() { echo "SKIP: $*"; exit 77; }

# Every process still in a namespace goes with it (a VPN client or server left behind by a failure).
vpn_netns_remove() {
  local ns pids
  for ns in "$VPN_NS_CLI" "$VPN_NS_CLI2" "$VPN_NS_SRV"; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill $pids 2>/dev/null && sleep 0.5
    pids=$(ip netns pids "$ns" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
  done
  return 0
}

# A client namespace joined to the server one by a veth pair (/24 between SRVIP and CLIIP).
vpn_pair() { # NS SRV-IFACE SRVIP CLIIP
  ip netns add "$1" || { echo "FAIL: cannot create the namespace $1"; exit 1; }
  ip link add "$2" netns "$VPN_NS_SRV" type veth peer name "${1}v" netns "$1" \
    || { echo "FAIL: cannot create a veth pair for $1"; exit 1; }
  ip -n "$1" link set lo up
  ip -n "$VPN_NS_SRV" addr add "$3/24" dev "$2"
  ip -n "$1" addr add "$4/24" dev "${1}v"
  ip -n "$VPN_NS_SRV" link set "$2" up
  ip -n "$1" link set "${1}v" up
}

vpn_netns_enter() {
  local rc
  [ "${FTM_VPN_INSIDE:-}" = "$VPN_NS_SRV" ] && return 0
  [ "$(id -u)" = 0 ] || vpn_skip "VPN tests need root (network namespaces, tun devices)"
  command -v ip >/dev/null || vpn_skip "iproute2 not installed"
  [ -c /dev/net/tun ] || vpn_skip "no /dev/net/tun"
  vpn_netns_remove
  ip netns add "$VPN_NS_SRV" || vpn_skip "cannot create a network namespace"
  trap vpn_netns_remove EXIT
  trap 'exit 143' TERM INT
  vpn_pair "$VPN_NS_CLI" "${VPN_NS_SRV}v" "$VPN_SRV_IP" "$VPN_CLI_IP"
  vpn_pair "$VPN_NS_CLI2" "${VPN_NS_SRV}w" "$VPN_SRV_IP2" "$VPN_CLI_IP2"
  ip -n "$VPN_NS_SRV" link set lo up
  echo "network namespaces: $VPN_NS_SRV ($VPN_SRV_IP, $VPN_SRV_IP2: the servers), $VPN_NS_CLI ($VPN_CLI_IP) and $VPN_NS_CLI2 ($VPN_CLI_IP2): the clients"
  # In the background so a TERM from run.sh's timeout reaches the trap at once.
  FTM_VPN_INSIDE=$VPN_NS_SRV ip netns exec "$VPN_NS_SRV" bash "$0" "$@" &
  wait $!
  rc=$?
  exit $rc
}

# Is PID running (a zombie, one of ours not reaped yet, is not)?
pid_running() {
  local st=
  [ -r "/proc/$1/stat" ] && read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop_pid PID...: TERM, three seconds' grace, KILL; then reaped. Bounded whatever the process does.
stop_pid() {
  local p=
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 30); do
    for p in "$@"; do pid_running "$p" && break; p=; done
    [ -z "$p" ] && break
    sleep 0.1
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  return 0
}

on_client() { ip netns exec "$VPN_NS_CLI" "$@"; }
on_client2() { ip netns exec "$VPN_NS_CLI2" "$@"; }

# The value of IFACE's rx+tx packet counters in the namespace NS.
iface_packets() { # NS IFACE
  ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets" "/sys/class/net/$2/statistics/tx_packets" \
    2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

tun_ping() { # ADDR [CLIENT-IFACE]
  local before=0 after
  [ -n "${2:-}" ] && before=$(iface_packets "$VPN_NS_CLI" "$2")
  on_client ping -c 3 -i 0.2 -W 1 -w 5 "$1" >"$FTM_TMP/ping.out" 2>&1 || { cat "$FTM_TMP/ping.out"; return 1; }
  if [ -n "${2:-}" ]; then
    after=$(iface_packets "$VPN_NS_CLI" "$2")
    [ $((after - before)) -ge 6 ] || { echo "only $((after - before)) packets on $2"; return 1; }
  fi
  sed -n 's/^\(.*packets transmitted.*\)$/   \1/p' "$FTM_TMP/ping.out"
}

elapsed_since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# doc_texts FRONTEND: the `texts` of docs/vpn.md's prompt table whose first column starts with
# FRONTEND ("PAM", "RADIUS"), one a line, as written (SERIAL stands for the token's serial).
doc_texts() {
  sed -n '/^<!-- prompts:/,/^<!-- end of prompts/p' "$FTM_SRCDIR/docs/vpn.md" \
    | awk -F'|' -v fe="$1" '$2 ~ "^ *"fe { t = $4; sub(/^ *`/, "", t); sub(/` *$/, "", t); print t }'
}

# ---- strongSwan: charon as the IKEv2 responder, charon-cmd as the client ----
#   sw_setup CERTDIR          skip (77) without charon, swanctl, charon-cmd or a needed plugin; the
#                             responder's certificate and key (CERTDIR/server.pem, server.key, ca.pem)
#   sw_server_start PLUGINS REMOTE-AUTH PLUGIN-CONF [ENV=VALUE...]
#                             charon (extra PLUGINS loaded, PLUGIN-CONF inside plugins { }, clients
#                             authenticated by REMOTE-AUTH, virtual IPs from 198.19.2.0/24, the
#                             protected net 198.19.3.0/24 with 198.19.3.1 on lo), run with ENV
#   sw_login NAME USER PASSWORD   charon-cmd from the client namespace, the EAP password typed on its
#                             terminal; waits (bounded) for SW_RESULT = up | auth_failed | exited |
#                             timeout; the client stays (with its tunnel, tun device ipsec0) until sw_down
#   sw_stop                   charon and any client
SW_CHARON=/usr/lib/ipsec/charon
SW_PID=
SW_CLIENT_PIDS=
SW_PLUGINS="random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kdf hmac sha1 sha2 aes gcm kernel-libipsec kernel-netlink socket-default"

sw_setup() {
  local p
  [ -x "$SW_CHARON" ] || vpn_skip "strongswan-charon not installed (scripts/deps.sh)"
  command -v swanctl >/dev/null || vpn_skip "strongswan-swanctl not installed (scripts/deps.sh)"
  command -v charon-cmd >/dev/null || vpn_skip "charon-cmd not installed (scripts/deps.sh)"
  command -v expect >/dev/null || vpn_skip "expect not installed (scripts/deps.sh)"
  for p in eap-gtc eap-radius xauth-pam kernel-libipsec kdf openssl; do
    [ -f "/usr/lib/ipsec/plugins/libstrongswan-$p.so" ] || vpn_skip "strongSwan plugin $p not installed (scripts/deps.sh)"
  done
  SW_DIR=$FTM_TMP/strongswan
  SW_CA=$1/ca.pem
  mkdir -p "$SW_DIR/swanctl/x509" "$SW_DIR/swanctl/x509ca" "$SW_DIR/swanctl/ecdsa"
  cp "$1/server.pem" "$SW_DIR/swanctl/x509/"
  cp "$1/ca.pem" "$SW_DIR/swanctl/x509ca/"
  cp "$1/server.key" "$SW_DIR/swanctl/ecdsa/"
  cat >"$SW_DIR/client.conf" <<EOF
charon-cmd {
	load = $SW_PLUGINS eap-identity eap-gtc
	filelog {
		stderr {
			default = 1
			time_format = %T
		}
	}
}
EOF
  cat >"$SW_DIR/client.exp" <<'EOF'
# charon-cmd on a terminal: the EAP password; waits for the tunnel or a failure and then stays (the
# tunnel with it) until killed or 120 s.
set timeout 60
lassign $argv ns conf ca user password
spawn -noecho ip netns exec $ns env STRONGSWAN_CONF=$conf charon-cmd --host 198.18.0.1 \
  --remote-identity localhost --cert $ca --identity $user --profile ikev2-eap --remote-ts 198.19.3.0/24
expect {
  -re {EAP password[^\n]*: ?$} { send -- "$password\r"; exp_continue }
  "CHILD_SA * established" { send_user "\nFTM-TEST: up\n" }
  -re {(received EAP_FAILURE|received AUTHENTICATION_FAILED|establishing connection .* failed)} {
    send_user "\nFTM-TEST: auth_failed\n"; exit 1 }
  eof { send_user "\nFTM-TEST: exited\n"; exit 1 }
  timeout { send_user "\nFTM-TEST: timeout\n"; exit 124 }
}
set timeout 120
expect eof
EOF
}

sw_server_start() { # PLUGINS REMOTE-AUTH PLUGIN-CONF [ENV=VALUE...]
  local plugins=$1 remote_auth=$2 plugin_conf=$3
  shift 3
  cat >"$SW_DIR/strongswan.conf" <<EOF
charon {
	load = $SW_PLUGINS vici attr $plugins
	filelog {
		stderr {
			default = 1
			time_format = %T
		}
	}
	plugins {
		vici {
			socket = unix://$SW_DIR/charon.vici
		}
$plugin_conf
	}
}
swanctl {
	socket = unix://$SW_DIR/charon.vici
}
EOF
  cat >"$SW_DIR/swanctl/swanctl.conf" <<EOF
connections {
	rw {
		version = 2
		pools = rw
		rekey_time = 0
		local {
			auth = pubkey
			certs = server.pem
			id = localhost
		}
		remote {
			auth = $remote_auth
			eap_id = %any
		}
		children {
			net {
				local_ts = 198.19.3.0/24
			}
		}
	}
}
pools {
	rw {
		addrs = 198.19.2.0/24
	}
}
EOF
  ip addr add 198.19.3.1/32 dev lo 2>/dev/null
  env STRONGSWAN_CONF="$SW_DIR/strongswan.conf" "$@" "$SW_CHARON" >"$FTM_TMP/charon.log" 2>&1 &
  SW_PID=$!
  for _ in $(seq 100); do
    [ -S "$SW_DIR/charon.vici" ] && break
    kill -0 "$SW_PID" 2>/dev/null || { cat "$FTM_TMP/charon.log"; fail "charon exited at start"; }
    sleep 0.1
  done
  STRONGSWAN_CONF="$SW_DIR/strongswan.conf" swanctl --load-all --file "$SW_DIR/swanctl/swanctl.conf" \
    >"$FTM_TMP/swanctl.out" 2>&1 || { cat "$FTM_TMP/swanctl.out" "$FTM_TMP/charon.log"; fail "swanctl --load-all"; }
}

sw_login() { # NAME USER PASSWORD
  local name=$1
  expect -f "$SW_DIR/client.exp" "$VPN_NS_CLI" "$SW_DIR/client.conf" "$SW_CA" "$2" "$3" >"$FTM_TMP/sw-$name.log" 2>&1 &
  eval "SW_PID_$name=\$!"
  SW_CLIENT_PIDS="$SW_CLIENT_PIDS $!"
  sw_wait "$name"
}

sw_wait() { # NAME
  local pid
  eval "pid=\$SW_PID_$1"
  SW_RESULT=
  for _ in $(seq 600); do
    SW_RESULT=$(sed -n 's/^FTM-TEST: \([a-z_]*\).*/\1/p' "$FTM_TMP/sw-$1.log" | head -n 1)
    [ -n "$SW_RESULT" ] && break
    kill -0 "$pid" 2>/dev/null || { SW_RESULT=exited; break; }
    sleep 0.1
  done
  [ -n "$SW_RESULT" ] || SW_RESULT=timeout
  echo "   $1: $SW_RESULT"
}

sw_down() { # NAME
  local pid
  eval "pid=\$SW_PID_$1"
  # charon-cmd closes the SA on SIGTERM (expect, its parent, reaps it); the next login starts anew
  # shellcheck disable=SC2046
  stop_pid $(ip netns pids "$VPN_NS_CLI") "$pid"
}

sw_stop() {
  # shellcheck disable=SC2086
  stop_pid $SW_CLIENT_PIDS $SW_PID
  SW_PID=
  SW_CLIENT_PIDS=
}
