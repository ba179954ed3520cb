# lib-policy.sh: the verdict policy and the timed unlock on two freeradius nodes, PAM and ftmpushctl
# sharing one store (sourced after lib-radius.sh, lib-pam.sh and lib-pg.sh, by policy_nodes.test on an
# SQLite file and pg_policy.test on PostgreSQL).
#
#   policy_scenario       run it all; needs nodes A and B set up (rad_node, radius_user alice 'S3cret!pw'),
#                         pam_user alice 'S3cret!pw', pam_service login, and store_sql SQL (the test's
#                         way to run SQL on the store: only to move a lock's time back, never a verdict)
#   node_start_refused N  start node N's freeradius expecting it to exit; its log in $FTM_TMP/start-N.log

node_start_refused() {
  rad_node "$1"
  radius_write_conf
  timeout 30 freeradius -f -l stdout -xx -d "$RAD_DIR" -n radiusd >"$FTM_TMP/start-$1.log" 2>&1
  [ $? -ne 0 ] || fail "node $1 started with a policy option in its module configuration"
}

# Seconds a node may keep the old policy (FTM_POLICY_REFRESH_SECONDS, 2) plus one.
policy_settle() { sleep 3; }

policy_scenario() {
  local seed serial bad c code
  token_add alice
  seed=$TOKEN_SEED serial=$TOKEN_SERIAL
  rad_node A; radius_start
  rad_node B; radius_start

  step "ftmpushctl shows the store's policy: the nodes' lockout_threshold (3) is the store's"
  ctl policy show >"$FTM_TMP/policy.out" 2>&1 || { cat "$FTM_TMP/policy.out"; fail "policy show"; }
  cat "$FTM_TMP/policy.out"
  for c in window lockout_threshold lockout_duration activation_expire challenge_timeout; do
    grep -q "^$c " "$FTM_TMP/policy.out" || fail "policy show lacks $c"
  done
  [ "$(ctl policy show lockout_threshold)" = 3 ] || fail "lockout_threshold is not 3"
  [ "$(ctl policy show lockout_duration)" = 0 ] || fail "lockout_duration does not default to 0"

  step "ftmpushctl policy set while the nodes run: lockout_threshold 2, lockout_duration 10 (minutes)"
  ctl policy set lockout_threshold 2 || fail "policy set lockout_threshold"
  ctl policy set lockout_duration 10 || fail "policy set lockout_duration"
  ctl policy set lockout_threshold 1001 >/dev/null 2>&1 && fail "policy set accepted lockout_threshold 1001"
  [ "$(ctl policy show lockout_threshold)" = 2 ] || fail "a refused value changed the policy"
  policy_settle
  wait_fresh_step 40

  step "one wrong code on A, one on B: locked at the store's threshold 2, told for how long"
  code=$(totp "$seed")
  bad=$(wrong_code "$(totp "$seed" 1)")
  for c in "$(totp "$seed" -1)" "$code" "$(totp "$seed" 1)"; do [ "$bad" != "$c" ] || bad=$(wrong_code "$bad"); done
  rad_node A; rad_auth alice "S3cret!pw$bad"
  expect_code Access-Reject "A: wrong code"
  expect_msg "Invalid token code" "A: wrong code"
  rad_node B; rad_auth alice "S3cret!pw$bad"
  expect_code Access-Reject "B: second wrong code"
  expect_msg "Token locked: try again in 10 minutes" "B: locked at 2 by the store's policy"
  [ "$(token_field "$serial" lock_reason)" = failures ] || fail "lock reason: $(ctl token show "$serial")"
  token_field "$serial" locked_until | grep -q UTC || fail "no locked_until: $(ctl token show "$serial")"

  step "before the duration: a valid code is refused on A and through PAM, with the wait"
  rad_node A; rad_auth alice "S3cret!pw$code"
  expect_code Access-Reject "A: valid code while locked"
  expect_msg "Token locked: try again in" "A: locked"
  login login alice "S3cret!pw$code"
  expect_fail "PAM: valid code while locked"
  out_has "Token locked: try again in"
  [ "$(token_field "$serial" failures)" = 2 ] || fail "a refusal while locked counted: $(ctl token show "$serial")"

  step "after the duration (the lock's time moved back 10 minutes in the store): Accept, failures reset"
  store_sql "UPDATE $STORE_TOKENS SET locked_at = locked_at - 600 WHERE serial = '$serial'"
  [ "$(token_field "$serial" locked_until)" = "ended (the next login unlocks it)" ] \
    || fail "token show after the duration: $(ctl token show "$serial")"
  rad_node B; rad_auth alice "S3cret!pw$code"
  expect_code Access-Accept "B: after lockout_duration"
  [ "$(token_field "$serial" status)" = active ] || fail "not active again: $(ctl token show "$serial")"
  [ "$(token_field "$serial" failures)" = 0 ] || fail "failures not reset: $(ctl token show "$serial")"

  step "an admin's lock survives lockout_duration"
  ctl token lock "$serial" >/dev/null || fail "token lock"
  [ "$(token_field "$serial" lock_reason)" = admin ] || fail "lock reason: $(ctl token show "$serial")"
  store_sql "UPDATE $STORE_TOKENS SET locked_at = locked_at - 31536000 WHERE serial = '$serial'"
  c=$(totp "$seed" 1)
  rad_node A; rad_auth alice "S3cret!pw$c"
  expect_code Access-Reject "A: admin lock a year later"
  expect_msg "Token locked" "A: admin lock"
  case $RAD_MSG in *"try again"*) fail "an admin lock announced an end: $RAD_MSG";; esac
  login login alice "S3cret!pw$c"
  expect_fail "PAM: admin lock"
  ctl token unlock "$serial" >/dev/null || fail "token unlock"
  rad_node B; rad_auth alice "S3cret!pw$c"
  expect_code Access-Accept "B: after token unlock"

  step "a module configuration setting a policy otherwise is refused at start, saying where it lives"
  rad_node A; radius_stop
  radius_opt lockout_threshold 4
  node_start_refused A
  grep -F "lockout_threshold = 4 in the configuration: lockout_threshold is a store policy now" "$FTM_TMP/start-A.log" \
    || { tail -n 20 "$FTM_TMP/start-A.log"; fail "node A's refusal does not say where lockout_threshold lives"; }
  grep -qF 'ftmpushctl policy set lockout_threshold 4' "$FTM_TMP/start-A.log" || fail "no ftmpushctl command in the refusal"
  step "the same value as the store's: started, with a warning"
  radius_opt lockout_threshold 2
  rad_node A; radius_start
  grep -F "lockout_threshold = 2 in the configuration is ignored" "$RAD_LOG" || fail "no warning for an equal value"
  unset 'RAD_OPTS[lockout_threshold]'

  step "PAM with a config setting a policy otherwise: refused, the log says where it lives"
  sed -i '/^lockout_threshold *=/d' "$PAM_TOP_CONF"; echo "lockout_threshold = 4" >>"$PAM_TOP_CONF"; pam_conf_write
  PAM_WRAPPER_DEBUGLEVEL=1 login login alice "S3cret!pw$(totp "$seed" 1)"
  expect_fail "PAM with lockout_threshold = 4 in its config"
  out_has "lockout_threshold is a store policy now"
  out_lacks "successfully authenticated"
  sed -i '/^lockout_threshold *=/d' "$PAM_TOP_CONF"; pam_conf_write
}
