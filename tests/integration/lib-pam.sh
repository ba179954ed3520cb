# lib-pam.sh: helpers for the pam_*.test and ssh_*.test scripts (sourced, bash).
# A private PAM service directory for pam_wrapper (no change to /etc), a pam_pwdfile first factor,
# a throw-away token store, and pamtester driven by expect so every prompt gets its own answer.
#
#   pam_setup                         skip (77) when a tool is missing; writes $PAM_CONF, $PAM_PWFILE
#   pam_conf_set KEY VALUE            append an option to $PAM_CONF ("push.X" keys go under [push])
#   pam_policy NAME VALUE             a verdict policy (window, lockout_threshold, lockout_duration,
#                                     activation_expire, challenge_timeout): it lives in the store, so
#                                     `ftmpushctl policy set` on the store of $PAM_CONF (pam_setup: lockout_threshold 3)
#   pam_user USER PASSWORD            add USER to the pwdfile
#   pam_service NAME [ARGS...]        write the standard three-line stack; ARGS go to both instances
#   pam_service_raw NAME < LINES      write a service file from stdin (@MODULE@, @PWDFILE@, @CONF@ expanded)
#   pam_login SERVICE USER [ANSWER...]  run pamtester; each prompt ("...: ") gets the next ANSWER
#                                     ("@sh:COMMAND": COMMAND's output, run when that prompt shows);
#                                     output in $PAM_OUT; returns pamtester's exit code (0 = success)
#   token_add USER [SEEDHEX] [PUSH]   create a token with ftmpushctl; sets TOKEN_SERIAL and TOKEN_SEED
#   totp SEEDHEX [OFFSET_STEPS]       the current code (oathtool, 60 s, 6 digits)
#   expect_ok / expect_fail DESC      assert on the last pam_login
#   out_has TEXT                      assert the last output contains TEXT
#   at_exit CMD                       run CMD when the test exits (see "cleanup at exit" below)
set -u

FTM_SRCDIR=${FTM_SRCDIR:?run through tests/integration/run.sh}
FTM_BUILDDIR=${FTM_BUILDDIR:?run through tests/integration/run.sh}
FTM_TMP=${FTM_TMP:?run through tests/integration/run.sh}

PAM_MODULE=$FTM_BUILDDIR/pam_ftmpush/.libs/pam_ftmpush.so
FTMPUSHCTL=$FTM_BUILDDIR/tools/ftmpushctl
FTMPUSHD=$FTM_BUILDDIR/tools/ftmpushd
PAM_SVCDIR=$FTM_TMP/pam.d
PAM_CONF=$FTM_TMP/ftmpush.conf
PAM_TOP_CONF=$FTM_TMP/conf.top
PAM_PUSH_CONF=$FTM_TMP/conf.push
PAM_PWFILE=$FTM_TMP/passwd
PAM_OUT=$FTM_TMP/pam.out
PAM_EXPECT=$FTM_TMP/pamtester.exp
TOKEN_SERIAL=
TOKEN_SEED=

# ---- cleanup at exit: every handler runs ----
# at_exit CMD adds CMD (once) to what runs when the test's shell exits, last in first out. `trap CMD
# EXIT` in the test or in another lib (radius_setup, push_setup...) does the same instead of replacing
# the handlers already there, so a test's own trap never drops push_cleanup: phone_start and
# ftmpushd_start register it themselves. `trap - EXIT`, other signals and subshells get bash's trap.
if [ -z "${FTM_EXIT_OWNER:-}" ]; then
  FTM_EXIT_OWNER=$BASHPID
  FTM_EXIT_CMDS=()
fi
ftm_exit_run() {
  local i
  [ "$BASHPID" = "$FTM_EXIT_OWNER" ] || return 0
  for (( i = ${#FTM_EXIT_CMDS[@]} - 1; i >= 0; i-- )); do eval "${FTM_EXIT_CMDS[i]}"; done
  FTM_EXIT_CMDS=()
}
at_exit() {
  local c
  for c in "${FTM_EXIT_CMDS[@]}"; do [ "$c" = "$1" ] && return 0; done
  FTM_EXIT_CMDS+=("$1")
  builtin trap ftm_exit_run EXIT
}
trap() {
  if [ $# = 2 ] && [ "$2" = EXIT ] && [ -n "$1" ] && [ "$1" != - ] && [ "$BASHPID" = "$FTM_EXIT_OWNER" ]; then
    at_exit "$1"
  else
    builtin trap "$@"
  fi
}
# what a trap set before this file was sourced (lib-radius, lib-push) keeps running too
ftm_exit_adopt() {
  [ -n "$1" ] || return 0
  eval "set -- $1"	# trap -p prints: trap -- 'CMD' EXIT
  [ "$3" = ftm_exit_run ] || at_exit "$3"
}
ftm_exit_adopt "$(builtin trap -p EXIT)"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -f "$PAM_OUT" ] && { echo "---- last pamtester output"; cat "$PAM_OUT"; }; exit 1; }
step() { echo; echo "== $*"; }

# The pam_wrapper and pam_pwdfile libraries, found the Debian way.
pam_find_libs() {
  PAM_WRAPPER_LIB=$(dpkg -L libpam-wrapper 2>/dev/null | grep '/libpam_wrapper\.so$' | head -n 1)
  PAM_PWDFILE_MOD=$(dpkg -L libpam-pwdfile 2>/dev/null | grep '/pam_pwdfile\.so$' | head -n 1)
  PAM_PERMIT_MOD=$(dpkg -L libpam-modules 2>/dev/null | grep '/pam_permit\.so$' | head -n 1)
}

pam_setup() {
  pam_find_libs
  [ -n "$PAM_WRAPPER_LIB" ] || skip "libpam-wrapper not installed (scripts/deps.sh)"
  [ -n "$PAM_PWDFILE_MOD" ] || skip "libpam-pwdfile not installed (scripts/deps.sh)"
  command -v pamtester >/dev/null || skip "pamtester not installed (scripts/deps.sh)"
  command -v expect >/dev/null || skip "expect not installed (scripts/deps.sh)"
  command -v oathtool >/dev/null || skip "oathtool not installed (scripts/deps.sh)"
  [ -f "$PAM_MODULE" ] || skip "pam_ftmpush.so not built ($PAM_MODULE)"
  [ -x "$FTMPUSHCTL" ] || skip "ftmpushctl not built ($FTMPUSHCTL)"
  mkdir -p "$PAM_SVCDIR"
  umask 077
  : >"$PAM_PWFILE"
  cat >"$PAM_TOP_CONF" <<EOF
# ftmpush test configuration ($FTM_TMP)
token_db = $FTM_TMP/tokens.db
no_token = reject
challenge = yes
debug = 2
EOF
  # The test's own socket path even without ftmpushd: a daemon at the default path (a package's, or one
  # another run left) is not this test's, and pam_ftmpush refuses one it does not trust (fail closed).
  echo "socket = $FTM_TMP/ftmpushd.sock" >"$PAM_PUSH_CONF"
  pam_conf_write
  pam_write_expect
  pam_policy lockout_threshold 3
}

pam_policy() {
  local out
  out=$("$FTMPUSHCTL" --config "$PAM_CONF" policy set "$1" "$2" 2>&1) || fail "ftmpushctl policy set $1 $2: $out"
}

# Options are kept in two parts so [push] keys always follow the top-level ones.
pam_conf_set() {
  local key=$1 value=$2 file=$PAM_TOP_CONF
  case $key in push.*) file=$PAM_PUSH_CONF; key=${key#push.};; esac
  sed -i "/^$key *=/d" "$file"
  echo "$key = $value" >>"$file"
  pam_conf_write
}

pam_conf_write() {
  { cat "$PAM_TOP_CONF"; if [ -s "$PAM_PUSH_CONF" ]; then echo "[push]"; cat "$PAM_PUSH_CONF"; fi; } >"$PAM_CONF"
  chmod 600 "$PAM_CONF"
}

pam_user() {
  local hash
  hash=$(openssl passwd -6 "$2") || fail "openssl passwd"
  echo "$1:$hash" >>"$PAM_PWFILE"
}

# The stack documented in docs/pam.md, with the built module by absolute path.
pam_service() {
  local name=$1; shift
  cat >"$PAM_SVCDIR/$name" <<EOF
auth     requisite  $PAM_MODULE split config=$PAM_CONF $*
auth     requisite  $PAM_PWDFILE_MOD pwdfile=$PAM_PWFILE use_first_pass
auth     required   $PAM_MODULE config=$PAM_CONF $*
account  required   $PAM_PERMIT_MOD
EOF
}

pam_service_raw() {
  sed -e "s#@MODULE@#$PAM_MODULE#g" -e "s#@PWDFILE@#$PAM_PWDFILE_MOD pwdfile=$PAM_PWFILE#g" \
      -e "s#@CONF@#$PAM_CONF#g" -e "s#@PERMIT@#$PAM_PERMIT_MOD#g" >"$PAM_SVCDIR/$1"
}

pam_write_expect() {
  cat >"$PAM_EXPECT" <<'EOF'
# pamtester under pam_wrapper; each prompt ending in ": " gets the next answer from argv.
set timeout [expr {[info exists env(FTM_EXPECT_TIMEOUT)] ? $env(FTM_EXPECT_TIMEOUT) : 120}]
log_user 1
set service [lindex $argv 0]
set user [lindex $argv 1]
set answers [lrange $argv 2 end]
spawn -noecho env LD_PRELOAD=$env(PAM_WRAPPER_LIB) PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$env(PAM_SVCDIR) \
  pamtester -v -I rhost=192.0.2.7 $service $user authenticate
expect {
  -re {: $} {
    if {[llength $answers] == 0} {
      send_user "\nFTM-TEST: unexpected prompt, no answer left\n"
      send "\r"
      set answers {}
    } else {
      set a [lindex $answers 0]
      # "@sh:COMMAND": the answer is COMMAND's output, run when the prompt shows (number matching)
      if {[string match "@sh:*" $a]} {
        if {[catch {exec sh -c [string range $a 4 end] 2>@1} a]} { send_user "\nFTM-TEST: @sh failed: $a\n"; set a "" }
      }
      send -- "$a\r"
      set answers [lrange $answers 1 end]
    }
    exp_continue
  }
  eof {}
  timeout { send_user "\nFTM-TEST: timeout\n"; exit 124 }
}
set st [wait]
if {[llength $answers] > 0} { send_user "\nFTM-TEST: [llength $answers] answer(s) not asked for\n" }
exit [lindex $st 3]
EOF
}

pam_login() {
  local service=$1 user=$2 rc; shift 2
  PAM_WRAPPER_LIB=$PAM_WRAPPER_LIB PAM_SVCDIR=$PAM_SVCDIR expect -f "$PAM_EXPECT" "$service" "$user" "$@" \
    >"$PAM_OUT" 2>&1
  rc=$?
  sed 's/^/    | /' "$PAM_OUT"
  return $rc
}

expect_ok() { [ "$LOGIN_RC" -eq 0 ] || fail "$1: expected success, pamtester exit $LOGIN_RC"; echo "ok: $1"; }
expect_fail() { [ "$LOGIN_RC" -ne 0 ] || fail "$1: expected failure, login succeeded"; echo "ok: $1"; }
out_has() { grep -qF -- "$1" "$PAM_OUT" || fail "output lacks \"$1\""; }
out_lacks() { ! grep -qF -- "$1" "$PAM_OUT" || fail "output has \"$1\""; }
login() { pam_login "$@"; LOGIN_RC=$?; }

ctl() { "$FTMPUSHCTL" -c "$PAM_CONF" "$@"; }

# token_add USER [SEEDHEX] [PUSH]: a FortiToken Mobile-like token (sha1, 6 digits, 60 s).
token_add() {
  local user=$1 seed=${2:-} push=${3:-} out
  [ -n "$seed" ] || seed=$(openssl rand -hex 20)
  TOKEN_SEED=$seed
  TOKEN_SERIAL=FTKMOB$(openssl rand -hex 5 | tr a-f A-F)
  out=$(ctl token add "$user" --serial "$TOKEN_SERIAL" --seed "$seed" ${push:+--push "$push"} 2>&1) \
    || fail "ftmpushctl token add: $out"
}

# The code of the current step (+OFFSET steps), computed independently of ftmpush.
totp() {
  local now=$(( $(date +%s) + ${2:-0} * 60 ))
  oathtool --totp -s 60 -d 6 -N "@$now" "$1"
}

# Seconds left in the current 60 s step: tests that need two codes of one step wait if it is short.
step_left() { echo $(( 60 - $(date +%s) % 60 )); }
wait_fresh_step() { local l; l=$(step_left); [ "$l" -ge "${1:-15}" ] || { echo "(waiting ${l}s for a fresh step)"; sleep "$l"; }; }

# ---- a real sshd on loopback (ssh_*.test) ----
#   ssh_setup            skip unless root with sshd/ssh; creates the test user $SSH_USER (removed on exit)
#   ssh_service [ARGS]   the sshd PAM service in $PAM_SVCDIR (pam_wrapper: nothing in /etc/pam.d)
#   sshd_start           sshd on 127.0.0.1:$SSH_PORT
#   ssh_try [ANSWER...]  ssh keyboard-interactive; each prompt gets the next answer ("@sh:" as for
#                        pam_login); output in $PAM_OUT;
#                        LOGIN_RC 0 when the remote command ran (the login succeeded)
SSH_PORT=
SSH_USER=
SSHD_PID=
SSH_MADE_RUNDIR=0
SSH_EXPECT=$FTM_TMP/ssh.exp

ssh_cleanup() {
  if [ -n "$SSHD_PID" ]; then kill "$SSHD_PID" 2>/dev/null; wait "$SSHD_PID" 2>/dev/null; SSHD_PID=; fi
  if [ -n "$SSH_USER" ] && id "$SSH_USER" >/dev/null 2>&1; then
    pkill -KILL -u "$SSH_USER" 2>/dev/null
    userdel "$SSH_USER" >/dev/null 2>&1
  fi
  [ "$SSH_MADE_RUNDIR" = 1 ] && rmdir /run/sshd 2>/dev/null
  SSH_USER=
}

ssh_setup() {
  [ "$(id -u)" = 0 ] || skip "ssh tests need root (a test user and sshd's privilege separation)"
  [ -x /usr/sbin/sshd ] || skip "openssh-server not installed"
  command -v ssh >/dev/null || skip "openssh-client not installed"
  pam_setup
  SSH_PORT=$(( ${FTM_PORT_BASE:-21000} + 22 ))
  SSH_USER=ftmt$(openssl rand -hex 3)
  at_exit 'ssh_cleanup; ${EXTRA_CLEANUP:-:}'
  useradd -M -d "$FTM_TMP/home" -s /bin/sh "$SSH_USER" || skip "useradd failed"
  mkdir -p "$FTM_TMP/home" && chown "$SSH_USER" "$FTM_TMP/home"
  chmod 755 "$FTM_TMP"
  if [ ! -d /run/sshd ]; then mkdir -m 0755 /run/sshd && SSH_MADE_RUNDIR=1; fi
  ssh-keygen -q -t ed25519 -N '' -f "$FTM_TMP/ssh_host_ed25519_key" || fail "ssh-keygen"
  cat >"$FTM_TMP/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $FTM_TMP/ssh_host_ed25519_key
PidFile $FTM_TMP/sshd.pid
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
AuthenticationMethods keyboard-interactive
PermitRootLogin no
AllowUsers $SSH_USER
StrictModes no
MaxAuthTries 3
LoginGraceTime 120
UseDNS no
PrintMotd no
EOF
  cat >"$SSH_EXPECT" <<'EOF'
# ssh keyboard-interactive; each prompt ending in ": " gets the next answer from argv.
set timeout [expr {[info exists env(FTM_EXPECT_TIMEOUT)] ? $env(FTM_EXPECT_TIMEOUT) : 120}]
log_user 1
set port [lindex $argv 0]
set user [lindex $argv 1]
set answers [lrange $argv 2 end]
spawn -noecho ssh -p $port -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no \
  -o NumberOfPasswordPrompts=1 -o ConnectTimeout=10 -o LogLevel=ERROR $user@127.0.0.1 echo FTM-LOGGED-IN
expect {
  -re {: $} {
    if {[llength $answers] == 0} { send_user "\nFTM-TEST: unexpected prompt\n"; close; wait; exit 3 }
    set a [lindex $answers 0]
    if {[string match "@sh:*" $a]} {
      if {[catch {exec sh -c [string range $a 4 end] 2>@1} a]} { send_user "\nFTM-TEST: @sh failed: $a\n"; set a "" }
    }
    send -- "$a\r"
    set answers [lrange $answers 1 end]
    exp_continue
  }
  eof {}
  timeout { send_user "\nFTM-TEST: timeout\n"; exit 124 }
}
set st [wait]
exit [lindex $st 3]
EOF
}

ssh_service() {
  cat >"$PAM_SVCDIR/sshd" <<EOF
auth     requisite  $PAM_MODULE split config=$PAM_CONF $*
auth     requisite  $PAM_PWDFILE_MOD pwdfile=$PAM_PWFILE use_first_pass
auth     required   $PAM_MODULE config=$PAM_CONF $*
account  required   $PAM_PERMIT_MOD
session  required   $PAM_PERMIT_MOD
password required   $(dirname "$PAM_PERMIT_MOD")/pam_deny.so
EOF
}

sshd_start() {
  env LD_PRELOAD="$PAM_WRAPPER_LIB" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$PAM_SVCDIR" \
    /usr/sbin/sshd -D -e -f "$FTM_TMP/sshd_config" >"$FTM_TMP/sshd.log" 2>&1 &
  SSHD_PID=$!
  for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$SSH_PORT") 2>/dev/null; then return 0; fi
    kill -0 "$SSHD_PID" 2>/dev/null || { cat "$FTM_TMP/sshd.log"; fail "sshd did not start"; }
    sleep 0.2
  done
  cat "$FTM_TMP/sshd.log"; fail "sshd not listening on $SSH_PORT"
}

ssh_try() {
  expect -f "$SSH_EXPECT" "$SSH_PORT" "$SSH_USER" "$@" >"$PAM_OUT" 2>&1
  LOGIN_RC=$?
  sed 's/^/    | /' "$PAM_OUT"
  if [ $LOGIN_RC -eq 0 ] && ! grep -q FTM-LOGGED-IN "$PAM_OUT"; then LOGIN_RC=1; fi
}

# ---- push: the simulated phone (tests/phone) and ftmpushd ----
#   phone_start              phone.py on loopback (ntfy + control), certs in $FTM_TMP/certs; $PHONECTL
#   push_conf                push options in $PAM_CONF: listener on $PUSH_PORT, socket $PUSH_SOCKET
#   ftmpushd_start / ftmpushd_stop
#   ntfy_target TOPIC        the token push target for an ntfy topic on the simulated server
# kept when another lib (lib-push.sh) started the phone before this file was sourced: push_cleanup ends it
PHONE_PID=${PHONE_PID:-}
FTMPUSHD_PID=${FTMPUSHD_PID:-}
PUSH_PORT=
PUSH_SOCKET=$FTM_TMP/ftmpushd.sock
PHONE_DIR=$FTM_TMP/phone
PHONECTL="python3 $FTM_SRCDIR/tests/phone/phonectl.py --state-dir $FTM_TMP/phone"
NTFY_URL=

push_cleanup() {
  [ -n "$FTMPUSHD_PID" ] && { kill "$FTMPUSHD_PID" 2>/dev/null; wait "$FTMPUSHD_PID" 2>/dev/null; FTMPUSHD_PID=; }
  [ -n "$PHONE_PID" ] && { kill "$PHONE_PID" 2>/dev/null; wait "$PHONE_PID" 2>/dev/null; PHONE_PID=; }
  return 0
}

phone_start() {
  [ -f "$FTM_SRCDIR/tests/phone/phone.py" ] || skip "tests/phone not present"
  python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography not installed"
  [ -x "$FTMPUSHD" ] || skip "ftmpushd not built ($FTMPUSHD)"
  sh "$FTM_SRCDIR/tests/phone/mkcerts.sh" "$FTM_TMP/certs" || fail "mkcerts.sh"
  mkdir -p "$PHONE_DIR"
  python3 "$FTM_SRCDIR/tests/phone/phone.py" --state-dir "$PHONE_DIR" \
    --ntfy-port $(( FTM_PORT_BASE + 1 )) --gateway-port -1 --control-port $(( FTM_PORT_BASE + 3 )) \
    --tls-cert "$FTM_TMP/certs/server.pem" --tls-key "$FTM_TMP/certs/server.key" \
    --callback-ca "$FTM_TMP/certs/ca.pem" --max-seconds 600 >"$FTM_TMP/phone.log" 2>&1 &
  PHONE_PID=$!
  at_exit push_cleanup
  $PHONECTL wait-ready --timeout 20 >/dev/null || { cat "$FTM_TMP/phone.log"; fail "phone.py not ready"; }
  NTFY_URL=https://127.0.0.1:$(( FTM_PORT_BASE + 1 ))
}

push_conf() {
  PUSH_PORT=$(( FTM_PORT_BASE + 4 ))
  pam_conf_set push.status enable
  pam_conf_set push.server 127.0.0.1
  pam_conf_set push.server_port "$PUSH_PORT"
  pam_conf_set push.server_cert "$FTM_TMP/certs/server.pem"
  pam_conf_set push.server_key "$FTM_TMP/certs/server.key"
  pam_conf_set push.ca_file "$FTM_TMP/certs/ca.pem"
  pam_conf_set push.timeout "${1:-15}"
  pam_conf_set push.socket "$PUSH_SOCKET"
}

ntfy_target() { echo "ntfy:$NTFY_URL/$1"; }

ftmpushd_start() {
  "$FTMPUSHD" -f -d -c "$PAM_CONF" >>"$FTM_TMP/ftmpushd.log" 2>&1 &
  FTMPUSHD_PID=$!
  at_exit push_cleanup
  for _ in $(seq 50); do
    [ -S "$PUSH_SOCKET" ] && return 0
    kill -0 "$FTMPUSHD_PID" 2>/dev/null || { cat "$FTM_TMP/ftmpushd.log"; fail "ftmpushd did not start"; }
    sleep 0.2
  done
  cat "$FTM_TMP/ftmpushd.log"; fail "ftmpushd socket $PUSH_SOCKET did not appear"
}

ftmpushd_stop() {
  [ -n "$FTMPUSHD_PID" ] && { kill "$FTMPUSHD_PID" 2>/dev/null; wait "$FTMPUSHD_PID" 2>/dev/null; FTMPUSHD_PID=; }
  return 0
}
