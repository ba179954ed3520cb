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
