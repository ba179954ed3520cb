# lib-audit.sh: the audit trail's scripted morning, shared by audit_morning.test (SQLite) and
# pg_audit.test (PostgreSQL); sourced after lib-radius.sh (and lib-pg.sh), bash.
#
#   audit_rows ARGS...        ctl audit ARGS into $AUDIT_OUT (and echoed, indented)
#   audit_expect N PATTERN    exactly N lines of $AUDIT_OUT match the extended regexp PATTERN
#   audit_scan_secrets FILE...  none of $AUDIT_SECRETS (one fixed string a line) is in any FILE
AUDIT_OUT=$FTM_TMP/audit.out
AUDIT_SECRETS=$FTM_TMP/audit-secrets.txt
: >"$AUDIT_SECRETS"

audit_secret() { local s; for s in "$@"; do [ -n "$s" ] && printf '%s\n' "$s" >>"$AUDIT_SECRETS"; done; return 0; }
audit_secret_seed() { # SEEDHEX: the seed as hex (both cases) and base32
  audit_secret "$1" "$(tr a-f A-F <<<"$1")" \
    "$(python3 -c 'import base64,sys; print(base64.b32encode(bytes.fromhex(sys.argv[1])).decode().rstrip("="))' "$1")"
}

audit_rows() {
  ctl audit "$@" >"$AUDIT_OUT" 2>&1 || fail "ftmpushctl audit $*: $(cat "$AUDIT_OUT")"
  sed 's/^/    | /' "$AUDIT_OUT"
}

audit_expect() { # N PATTERN
  local n
  n=$(grep -cE -- "$2" "$AUDIT_OUT")
  [ "$n" = "$1" ] || fail "audit: expected $1 row(s) matching /$2/, found $n"
}

audit_scan_secrets() {
  local f s found=0
  for f in "$@"; do
    [ -f "$f" ] || continue
    while IFS= read -r s; do
      if grep -aqiF -- "$s" "$f"; then echo "LEAK in $f: \"$s\""; found=1; fi
    done <"$AUDIT_SECRETS"
  done
  [ "$found" = 0 ] || fail "a secret is in the audit trail (above)"
  echo "   $(wc -l <"$AUDIT_SECRETS") secrets checked against $# files"
}
