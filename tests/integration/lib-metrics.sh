# lib-metrics.sh: helpers for the metrics*.test scripts (sourced after lib-radius.sh or lib-pam.sh, bash).
# Scrapes of the metrics listener with curl, one sample's value, deltas between two scrapes, promtool.
#
#   metrics_setup                 skip (77) when promtool (Debian's prometheus) or curl is missing
#   metrics_scrape PORT FILE      GET http://127.0.0.1:PORT/metrics into FILE (200 and the 0.0.4 type)
#   metric FILE SERIES            the value of the sample SERIES (name{labels} as rendered), or "missing"
#   expect_delta SERIES N         with B and A set to the before and after scrapes: A - B = N exactly
#   expect_value SERIES N         the after scrape's value is N
#   metrics_promtool FILE         promtool check metrics accepts FILE (lint included)
#   metrics_bound_only_loopback PORT   every socket listening on PORT is bound to 127.0.0.1
#   metrics_serves_only_metrics PORT   GET /metrics is served, nothing else is
metrics_setup() {
  command -v promtool >/dev/null || skip "promtool not installed (Debian's prometheus, scripts/deps.sh)"
  command -v curl >/dev/null || skip "curl not installed"
  command -v ss >/dev/null || skip "ss not installed (iproute2)"
}

metrics_scrape() { # PORT FILE
  local i st type
  for i in $(seq 50); do
    st=$(curl -s -o "$2" -w '%{http_code} %{content_type}' --max-time 5 "http://127.0.0.1:$1/metrics") && break
    sleep 0.1
  done
  type=${st#* }
  [ "${st%% *}" = 200 ] || fail "GET /metrics on $1: HTTP ${st%% *}"
  [ "$type" = "text/plain; version=0.0.4; charset=utf-8" ] || fail "GET /metrics: Content-Type $type"
}

metric() { # FILE SERIES
  awk -v s="$2" 'substr($0, 1, length(s) + 1) == s " " { print $NF; found = 1; exit }
                 END { if (!found) print "missing" }' "$1"
}

expect_delta() { # SERIES N
  local b a
  b=$(metric "$B" "$1") a=$(metric "$A" "$1")
  [ "$a" != missing ] && [ "$b" != missing ] || fail "no sample $1 in the scrapes"
  [ $(( a - b )) = "$2" ] || fail "$1 moved by $(( a - b )) ($b -> $a), expected $2"
  echo "   $1 +$2"
}

expect_value() { # SERIES N
  [ "$(metric "$A" "$1")" = "$2" ] || fail "$1 is $(metric "$A" "$1"), expected $2"
  echo "   $1 = $2"
}

metrics_promtool() { # FILE
  promtool check metrics <"$1" >"$FTM_TMP/promtool.out" 2>&1 || { cat "$FTM_TMP/promtool.out"; fail "promtool check metrics refused the scrape"; }
  echo "   promtool check metrics: ok ($(grep -c '^ftmpush_' "$1") samples)"
}

metrics_bound_only_loopback() { # PORT
  local addrs
  addrs=$(ss -ltnH "sport = :$1" | awk '{ print $4 }')
  [ -n "$addrs" ] || fail "nothing listens on port $1"
  echo "$addrs" | grep -qv '^127\.0\.0\.1:' && fail "the metrics listener is bound beyond loopback: $addrs"
  echo "   listening on $addrs only"
}

metrics_serves_only_metrics() { # PORT
  local base=http://127.0.0.1:$1 p st m
  for p in / /metrics/ /metricsx /ftm/v1/health /ftm/v1/cb/x /enrol/x /debug/pprof; do
    st=$(curl -s -o "$FTM_TMP/other.out" -w '%{http_code}' --max-time 5 "$base$p")
    [ "$st" = 404 ] || fail "GET $p: HTTP $st, expected 404"
    grep -q '^ftmpush_' "$FTM_TMP/other.out" && fail "GET $p served metrics"
  done
  for m in POST PUT DELETE OPTIONS; do
    st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$m" "$base/metrics")
    [ "$st" = 405 ] || fail "$m /metrics: HTTP $st, expected 405"
  done
  st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -I "$base/metrics")
  [ "$st" = 405 ] || fail "HEAD /metrics: HTTP $st, expected 405"
  echo "   404 for every other path, 405 for every other method"
}
