# lib-radius.sh: helpers for the radius_*.test scripts (sourced, bash).
# The stock `freeradius` binary with our built module (libdir: the build tree first), a self-contained
# configuration in $FTM_TMP (no change to /etc), a loopback port from FTM_PORT_BASE, radclient to drive
# it, ftmpushctl for tokens and oathtool for codes.
#
#   radius_setup [minimal|site]   skip (77) when a tool is missing; writes the config directory:
#        minimal: the configuration of issue 3 as written (authorize { ftmpush files pap },
#                 Auth-Type ftmpush { pap ftmpush }) and a module section holding only token_db;
#        site:    raddb/mods-available/ftmpush and raddb/sites-available/ftmpush from the source tree
#                 (token_db and the listen address/port adjusted; nothing else changed).
#   radius_opt KEY VALUE          set a module option (before radius_start); push.X goes into push { }
#   radius_policy NAME VALUE      a verdict policy (window, lockout_threshold, lockout_duration,
#                                 activation_expire, challenge_timeout): it lives in the store, not in the
#                                 module section; `ftmpushctl policy set` at the next radius_start
#   radius_user USER PASSWORD [REPLY-ITEMS]   a users-file entry (Cleartext-Password)
#   radius_check                  freeradius -C on the configuration; output in $RAD_CHECK_OUT
#   radius_start / radius_stop    freeradius -f -l stdout -xx (multi-threaded; RAD_DEBUG_FLAGS replaces -xx,
#                                 "" for the normal log), stopped on exit
#   token_add USER [SEEDHEX]      ftmpushctl token add; sets TOKEN_SERIAL, TOKEN_SEED
#   token_field SERIAL FIELD      a field of `ftmpushctl token show` (failures, status, last_step...)
#   totp SEEDHEX [OFFSET_STEPS]   the code now (+OFFSET steps), from oathtool (60 s, 6 digits)
#   wrong_code CODE               a 6-digit code that is not CODE
#   rad_auth USER PASSWORD [ATTR=VALUE...]  one Access-Request; sets RAD_CODE (Access-Accept,
#                                 Access-Reject, Access-Challenge or none), RAD_MSG (Reply-Message),
#                                 RAD_STATE (State as 0x..); output in $RAD_OUT
#   expect_code CODE DESC         assert RAD_CODE
#   expect_msg TEXT DESC          assert RAD_MSG contains TEXT
#   log_lacks TEXT                assert the server log does not contain TEXT (secrets)
#   log_names_module_once         assert no server log line names the module twice ("ftmpush: ftmpush: ")
set -u

FTM_SRCDIR=${FTM_SRCDIR:?run through tests/integration/run.sh}
FTM_BUILDDIR=${FTM_BUILDDIR:?run through tests/integration/run.sh}
FTM_TMP=${FTM_TMP:?run through tests/integration/run.sh}
FTM_PORT_BASE=${FTM_PORT_BASE:?run through tests/integration/run.sh}

RAD_MODULE_DIR=$FTM_BUILDDIR/rlm_ftmpush/.libs
FTMPUSHCTL=$FTM_BUILDDIR/tools/ftmpushctl
RAD_DIR=$FTM_TMP/raddb
RAD_DB=$FTM_TMP/tokens.db
RAD_USERS=$RAD_DIR/users
RAD_LOG=$FTM_TMP/radiusd.log
RAD_OUT=$FTM_TMP/radclient.out
RAD_PORT=$FTM_PORT_BASE
RAD_SECRET=testing123
RAD_PID=
RAD_MODE=minimal
RAD_CODE=
RAD_MSG=
RAD_STATE=
TOKEN_SERIAL=
TOKEN_SEED=
declare -A RAD_OPTS=()
declare -A RAD_PUSH_OPTS=()
declare -A RAD_POLICY=()

skip() { echo "SKIP: $*"; exit 77; }
fail() {
  echo "FAIL: $*"
  [ -f "$RAD_OUT" ] && { echo "---- last radclient output"; cat "$RAD_OUT" "$RAD_OUT.err" 2>/dev/null; }
  [ -f "$RAD_LOG" ] && { echo "---- last lines of the server log ($RAD_LOG)"; tail -n 60 "$RAD_LOG"; }
  exit 1
}
step() { echo; echo "== $*"; }

radius_setup() {
  RAD_MODE=${1:-minimal}
  command -v freeradius >/dev/null || skip "freeradius not installed (scripts/deps.sh)"
  command -v radclient >/dev/null || skip "radclient not installed (freeradius-utils, scripts/deps.sh)"
  command -v oathtool >/dev/null || skip "oathtool not installed (scripts/deps.sh)"
  [ -f "$RAD_MODULE_DIR/rlm_ftmpush.so" ] || skip "rlm_ftmpush.so not built ($RAD_MODULE_DIR; configure found no FreeRADIUS headers?)"
  [ -x "$FTMPUSHCTL" ] || skip "ftmpushctl not built ($FTMPUSHCTL)"
  [ -d /usr/lib/freeradius ] || skip "/usr/lib/freeradius missing (freeradius package)"
  umask 077
  mkdir -p "$RAD_DIR/mods-enabled" "$RAD_DIR/sites-enabled" "$RAD_DIR/mods-config" "$FTM_TMP/run" \
    "$FTM_TMP/log"
  : >"$RAD_USERS"
  trap radius_stop EXIT
}

radius_opt() {
  case $1 in
    push.*) RAD_PUSH_OPTS[${1#push.}]=$2;;
    *) RAD_OPTS[$1]=$2;;
  esac
}

radius_policy() { RAD_POLICY[$1]=$2; }

radius_user() { # USER PASSWORD [REPLY-ITEMS]
  printf '%s\tCleartext-Password := "%s"\n' "$1" "$2" >>"$RAD_USERS"
  if [ -n "${3:-}" ]; then printf '\t%s\n' "$3" >>"$RAD_USERS"; fi
  echo >>"$RAD_USERS"
}

# Lines "key = value" for the options set with radius_opt, for the module section.
radius_opts_text() {
  local k
  for k in "${!RAD_OPTS[@]}"; do printf '\t%s = %s\n' "$k" "${RAD_OPTS[$k]}"; done
  if [ ${#RAD_PUSH_OPTS[@]} -gt 0 ]; then
    printf '\tpush {\n'
    for k in "${!RAD_PUSH_OPTS[@]}"; do printf '\t\t%s = %s\n' "$k" "${RAD_PUSH_OPTS[$k]}"; done
    printf '\t}\n'
  fi
}

radius_write_conf() {
  cat >"$RAD_DIR/radiusd.conf" <<EOF
# ftmpush integration test server ($FTM_TMP): everything in this directory, nothing from /etc
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = $FTM_TMP
sbindir = /usr/sbin
logdir = $FTM_TMP/log
raddbdir = $RAD_DIR
radacctdir = $FTM_TMP/log/radacct
name = radiusd
confdir = $RAD_DIR
modconfdir = $RAD_DIR/mods-config
certdir = $RAD_DIR/certs
cadir = $RAD_DIR/certs
run_dir = $FTM_TMP/run
db_dir = $FTM_TMP
dictdir = /usr/share/freeradius
# the module under test first, then the stock modules
libdir = $RAD_MODULE_DIR:/usr/lib/freeradius
pidfile = $FTM_TMP/run/radiusd.pid
correct_escapes = true
max_request_time = 30
cleanup_delay = 2
max_requests = 16384
hostname_lookups = no
proxy_requests = no

log {
	# -xx prints User-Password as <<< secret >>>, as docs tell admins who debug in production
	suppress_secrets = yes
	destination = stdout
	colourise = no
	stripped_names = no
	auth = ${RAD_LOG_AUTH:-yes}
	auth_badpass = no
	auth_goodpass = no
	# as docs/freeradius.md tells admins: -xx must not print User-Password
	suppress_secrets = yes
}

security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}

thread pool {
	start_servers = 8
	max_servers = 64
	min_spare_servers = 4
	max_spare_servers = 32
	max_requests_per_server = 0
	auto_limit_acct = no
}

client localhost {
	ipaddr = 127.0.0.1
	secret = $RAD_SECRET
	# BlastRADIUS (CVE-2024-3596): every request must carry a Message-Authenticator, as docs tell admins
	# (RAD_REQUIRE_MA=no only for a NAS that cannot send one: ocserv 1.1.6's radcli on PAP)
	require_message_authenticator = ${RAD_REQUIRE_MA:-yes}
	nas_type = other
}

modules {
	files {
		filename = $RAD_USERS
		acctusersfile = $RAD_DIR/acct_users
		preproxy_usersfile = $RAD_DIR/preproxy_users
	}
	pap {
		normalise = yes
	}
	always reject {
		rcode = reject
	}
	# as Debian's mods-enabled/attr_filter: what an Access-Reject and an Access-Challenge may carry
	attr_filter attr_filter.access_reject {
		key = "%{User-Name}"
		filename = $RAD_DIR/mods-config/attr_filter/access_reject
	}
	attr_filter attr_filter.access_challenge {
		key = "%{User-Name}"
		filename = $RAD_DIR/mods-config/attr_filter/access_challenge
	}
	\$INCLUDE $RAD_DIR/mods-enabled/
}

\$INCLUDE $RAD_DIR/sites-enabled/
EOF
  : >"$RAD_DIR/acct_users"
  : >"$RAD_DIR/preproxy_users"
  # The stock filters' content (freeradius's mods-config/attr_filter, RFC 2865 section 5.44 and 4.4).
  mkdir -p "$RAD_DIR/mods-config/attr_filter"
  printf 'DEFAULT\n\tEAP-Message =* ANY,\n\tState =* ANY,\n\tMessage-Authenticator =* ANY,\n\tError-Cause =* ANY,\n\tReply-Message =* ANY,\n\tMS-CHAP-Error =* ANY,\n\tProxy-State =* ANY\n' \
    >"$RAD_DIR/mods-config/attr_filter/access_reject"
  printf 'DEFAULT\n\tEAP-Message =* ANY,\n\tState =* ANY,\n\tMessage-Authenticator =* ANY,\n\tReply-Message =* ANY,\n\tProxy-State =* ANY,\n\tSession-Timeout =* ANY,\n\tIdle-Timeout =* ANY\n' \
    >"$RAD_DIR/mods-config/attr_filter/access_challenge"

  if [ "$RAD_MODE" = site ]; then
    # The shipped files, with only the store path and the listen address changed.
    sed -e "s|^\(\s*token_db\s*=\).*|\1 $RAD_DB|" "$FTM_SRCDIR/raddb/mods-available/ftmpush" \
      >"$RAD_DIR/mods-enabled/ftmpush.tmp"
    # Options of the test go in right after the opening brace (the shipped ones are commented out).
    awk -v extra="$(radius_opts_text)" '
      !done && /^ftmpush[ \t]*\{/ { print; if (extra != "") print extra; done = 1; next } { print }' \
      "$RAD_DIR/mods-enabled/ftmpush.tmp" >"$RAD_DIR/mods-enabled/ftmpush"
    rm -f "$RAD_DIR/mods-enabled/ftmpush.tmp"
    sed -e "s|^\(\s*ipaddr\s*=\).*|\1 127.0.0.1|" -e "s|^\(\s*port\s*=\).*|\1 $RAD_PORT|" \
      "$FTM_SRCDIR/raddb/sites-available/ftmpush" >"$RAD_DIR/sites-enabled/ftmpush"
  else
    # Issue 3's minimal configuration, as written.
    {
      echo "ftmpush {"
      printf '\ttoken_db = %s\n' "$RAD_DB"
      radius_opts_text
      echo "}"
    } >"$RAD_DIR/mods-enabled/ftmpush"
    cat >"$RAD_DIR/sites-enabled/default" <<EOF
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $RAD_PORT
	}
	authorize {
		ftmpush
		files
		pap
	}
	authenticate {
		Auth-Type ftmpush {
			pap
			ftmpush
		}
		Auth-Type PAP {
			pap
		}
	}
}
EOF
  fi
}

# radius_check: freeradius -C on the current configuration; output in $RAD_CHECK_OUT, returns its status.
RAD_CHECK_OUT=$FTM_TMP/config-check.log
radius_check() {
  radius_write_conf
  freeradius -C -l stdout -d "$RAD_DIR" -n radiusd >"$RAD_CHECK_OUT" 2>&1
}

radius_start() {
  local i k out
  for k in "${!RAD_POLICY[@]}"; do
    out=$(ctl policy set "$k" "${RAD_POLICY[$k]}" 2>&1) || fail "ftmpushctl policy set $k ${RAD_POLICY[$k]}: $out"
  done
  RAD_POLICY=()	# set once: a later `ftmpushctl policy set` of the test is not undone by a restart
  radius_write_conf
  # A config check first: its errors are clearer than a server that never comes up.
  if ! freeradius -C -l stdout -d "$RAD_DIR" -n radiusd >"$FTM_TMP/config-check.log" 2>&1; then
    cat "$FTM_TMP/config-check.log"
    fail "freeradius -C refused the configuration"
  fi
  # RAD_DEBUG_FLAGS: -xx unless a test sets it ("" = the normal log, as a production server writes it)
  freeradius -f -l stdout ${RAD_DEBUG_FLAGS--xx} -d "$RAD_DIR" -n radiusd >"$RAD_LOG" 2>&1 &
  RAD_PID=$!
  for i in $(seq 1 100); do
    grep -q "Ready to process requests" "$RAD_LOG" 2>/dev/null && return 0
    kill -0 "$RAD_PID" 2>/dev/null || { RAD_PID=; fail "freeradius exited at start"; }
    sleep 0.1
  done
  fail "freeradius did not become ready in 10 s"
}

radius_stop() {
  if [ -n "$RAD_PID" ] && kill -0 "$RAD_PID" 2>/dev/null; then
    kill "$RAD_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$RAD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$RAD_PID" 2>/dev/null || true
    wait "$RAD_PID" 2>/dev/null || true
  fi
  RAD_PID=
}

ctl() { "$FTMPUSHCTL" --db "$RAD_DB" "$@"; }

# token_add USER [SEEDHEX]: a FortiToken Mobile-like token (sha1, 6 digits, 60 s).
token_add() {
  local user=$1 seed=${2:-} out
  [ -n "$seed" ] || seed=$(openssl rand -hex 20)
  TOKEN_SEED=$seed
  TOKEN_SERIAL=FTKMOB$(openssl rand -hex 5 | tr a-f A-F)
  out=$(ctl token add "$user" --serial "$TOKEN_SERIAL" --seed "$seed" 2>&1) || fail "ftmpushctl token add: $out"
}

token_field() { # SERIAL FIELD
  ctl token show "$1" 2>&1 | sed -n "s/^$2: *//p"
}

# The code of the current step (+OFFSET steps), computed independently of ftmpush.
totp() {
  local now=$(( $(date +%s) + ${2:-0} * 60 ))
  oathtool --totp -s 60 -d 6 -N "@$now" "$1"
}
wrong_code() { printf '%06d' $(( (10#$1 + 500000) % 1000000 )); }

# Seconds left in the current 60 s step; tests that need two logins in one step wait if it is short.
step_left() { echo $(( 60 - $(date +%s) % 60 )); }
wait_fresh_step() { local l; l=$(step_left); [ "$l" -ge "${1:-15}" ] || { echo "(waiting ${l}s for a fresh step)"; sleep "$l"; }; }

# radclient's reply, parsed: packet type, Reply-Message, State.
rad_parse() {
  RAD_CODE=$(sed -n 's/^Received \(Access-[A-Za-z]*\) .*/\1/p' "$RAD_OUT" | tail -n 1)
  [ -n "$RAD_CODE" ] || RAD_CODE=none
  # Only the attributes of the reply (radclient -x prints the request's too).
  sed -n '/^Received /,$p' "$RAD_OUT" >"$RAD_OUT.reply"
  RAD_MSG=$(sed -n 's/^\s*Reply-Message = "\(.*\)"$/\1/p' "$RAD_OUT.reply" | tail -n 1)
  RAD_STATE=$(sed -n 's/^\s*State = \(0x[0-9a-fA-F]*\)$/\1/p' "$RAD_OUT.reply" | tail -n 1)
}

# rad_auth USER PASSWORD [ATTR=VALUE...]: extra attributes are passed as written (State=0x..).
rad_auth() {
  local user=$1 pass=$2 a
  shift 2
  {
    printf 'User-Name = "%s"\n' "$user"
    printf 'User-Password = "%s"\n' "$pass"
    echo 'Message-Authenticator = 0x00'
    for a in "$@"; do printf '%s = %s\n' "${a%%=*}" "${a#*=}"; done
  } >"$FTM_TMP/request.txt"
  radclient -x -r 1 -t 15 -f "$FTM_TMP/request.txt" "127.0.0.1:$RAD_PORT" auth "$RAD_SECRET" >"$RAD_OUT" 2>"$RAD_OUT.err" || true
  rad_parse
  echo "   $user -> $RAD_CODE${RAD_MSG:+ (\"$RAD_MSG\")}${RAD_STATE:+ State}"
}

expect_code() { [ "$RAD_CODE" = "$1" ] || fail "${2:-}: expected $1, got $RAD_CODE"; }
expect_msg() {
  case $RAD_MSG in *"$1"*) ;; *) fail "${2:-}: expected Reply-Message containing \"$1\", got \"$RAD_MSG\"";; esac
}
log_lacks() { ! grep -qF -- "$1" "$RAD_LOG" || fail "the server log contains \"$1\""; }

# FreeRADIUS names the module in its lines itself: "(3) ftmpush: " in a request (the instance running it),
# "rlm_ftmpush (ftmpush): " outside one. A line that names it again ("(3) ftmpush: ftmpush: ...") fails.
log_names_module_once() {
  local twice
  twice=$({ grep -aE '\([0-9]+\) ([A-Za-z0-9_.-]+): +(\1|rlm_[a-z_]+)[: ]' "$RAD_LOG"
             grep -aE 'rlm_[a-z_]+ \(([A-Za-z0-9_.-]+)\): +(\1|rlm_[a-z_]+)[: ]' "$RAD_LOG"; } | head -n 3)
  [ -z "$twice" ] || fail "a log line names the module twice: $twice"
}
