#!/usr/bin/env bash
# Completes Debian 12's libfreeradius-dev headers into build/freeradius-include so that rlm_ftmpush can
# be built out of tree (configure picks that directory by default once it holds freeradius/tmpl.h).
#
# Debian's libfreeradius-dev 3.2.1 ships radiusd.h but not headers radiusd.h includes (automask.h,
# clients.h, connection.h, listen.h, log.h, process.h, tmpl.h, xlat.h, ...). This script:
#   1. copies /usr/include/freeradius/* (the configured headers: autoconf.h, build.h, features.h,
#      radpaths.h, tls.h... these carry the version the module magic number is checked against);
#   2. fetches the Debian source package of the *installed* freeradius version (apt-get source, needs
#      a deb-src entry: scripts/deps.sh adds /etc/apt/sources.list.d/ftmpush-src.sources), once, into
#      build/freeradius-src/VERSION (a cache: later runs do not download again);
#   3. copies every header of src/include that Debian did not install, rewriting
#      `freeradius-devel/` to `freeradius/`; automask.h comes from the source or is generated.
# Nothing from the FreeRADIUS source goes into the repository (build/ is gitignored).
#
# Idempotent: a second run with the same installed version does nothing and exits 0 at once.
# Exits non-zero with a message saying what to do when anything is missing.
#   FTM_FR_INCLUDE_DIR  output directory (default: <top>/build/freeradius-include)
#   FTM_FR_SRC_CACHE    source cache     (default: <top>/build/freeradius-src)
#   FTM_FR_FORCE=1      rebuild the include dir even if it is up to date
set -euo pipefail

die() { echo "freeradius-headers: error: $*" >&2; exit 1; }
info() { echo "freeradius-headers: $*"; }

top=$(cd "$(dirname "$0")/.." && pwd)
out=${FTM_FR_INCLUDE_DIR:-$top/build/freeradius-include}
cache=${FTM_FR_SRC_CACHE:-$top/build/freeradius-src}
sysinc=/usr/include/freeradius

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

pkg_version() { # package -> installed version, empty if not installed
  dpkg-query -W -f='${Status}|${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed|//p'
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs Debian (12, bookworm) or a derivative"
frver=$(pkg_version freeradius)
[ -n "$frver" ] || die "the freeradius package is not installed: run scripts/deps.sh (or apt-get install freeradius)"
devver=$(pkg_version libfreeradius-dev)
[ -n "$devver" ] || die "libfreeradius-dev is not installed: run scripts/deps.sh (or apt-get install libfreeradius-dev)"
[ "$frver" = "$devver" ] || die "freeradius ($frver) and libfreeradius-dev ($devver) differ: the module magic number encodes the server version, install matching versions (apt-get install freeradius=$devver or libfreeradius-dev=$frver)"
[ -f "$sysinc/radiusd.h" ] || die "$sysinc/radiusd.h missing: reinstall libfreeradius-dev"

stamp="$out/.ftmpush-freeradius-version"
if [ "${FTM_FR_FORCE:-0}" != 1 ] && [ -f "$out/freeradius/tmpl.h" ] && [ -f "$stamp" ] \
    && [ "$(cat "$stamp")" = "$frver" ]; then
  info "up to date ($out, freeradius $frver)"
  exit 0
fi

mkdir -p "$cache" "$(dirname "$out")"
# Serialise concurrent runs (two builds started at once share the cache).
exec 9>"$cache/.lock"
flock 9

srcdir="$cache/$frver"
srcinc="$srcdir/include"
if [ ! -f "$srcinc/tmpl.h" ]; then
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found"
  command -v dpkg-source >/dev/null 2>&1 || die "dpkg-source not found: apt-get install dpkg-dev (scripts/deps.sh installs it)"
  dl="$cache/download-$frver"
  mkdir -p "$dl"
  dsc=$(ls "$dl"/freeradius_*.dsc 2>/dev/null | head -n1 || true)
  if [ -z "$dsc" ]; then
    if ! apt-cache showsrc freeradius 2>/dev/null | grep -qx "Version: $frver"; then
      if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
        die "no deb-src entry in /etc/apt: run scripts/deps.sh (it adds /etc/apt/sources.list.d/ftmpush-src.sources), then run this script again"
      fi
      info "source of freeradius $frver not in the apt lists: apt-get update"
      $SUDO apt-get update -q >/dev/null || die "apt-get update failed (network? permissions? run as root or with sudo)"
      apt-cache showsrc freeradius 2>/dev/null | grep -qx "Version: $frver" \
        || die "the source of freeradius $frver is not available from the configured deb-src entries (installed freeradius is $frver; apt-cache showsrc freeradius lists: $(apt-cache showsrc freeradius 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' '))"
    fi
    info "downloading the Debian source of freeradius $frver into $dl"
    # As root apt warns that the download is unsandboxed (the _apt user cannot write here): harmless.
    (cd "$dl" && apt-get source -q --download-only "freeradius=$frver") >"$cache/apt-get-source.log" 2>&1 || true
    dsc=$(ls "$dl"/freeradius_*.dsc 2>/dev/null | head -n1 || true)
    if [ -z "$dsc" ]; then
      tail -n 20 "$cache/apt-get-source.log" >&2
      die "apt-get source --download-only freeradius=$frver did not produce a .dsc in $dl (log: $cache/apt-get-source.log)"
    fi
  fi
  info "unpacking $(basename "$dsc")"
  tmpx=$(mktemp -d "$cache/x.XXXXXX")
  trap 'rm -rf "$tmpx"' EXIT
  dpkg-source -q --no-check -x "$dsc" "$tmpx/src" >/dev/null || die "dpkg-source -x $dsc failed"
  [ -f "$tmpx/src/src/include/tmpl.h" ] || die "unexpected source layout: $tmpx/src/src/include/tmpl.h missing"
  rm -rf "$srcdir.new"
  mkdir -p "$srcdir.new"
  cp -a "$tmpx/src/src/include" "$srcdir.new/include"
  cp -a "$tmpx/src/debian/changelog" "$srcdir.new/changelog"
  rm -rf "$srcdir"
  mv "$srcdir.new" "$srcdir"
  rm -rf "$tmpx"
  trap - EXIT
fi

# The source's version must be the installed one (the magic number check in the server).
srcver=$(sed -n '1s/^freeradius (\([^)]*\)).*/\1/p' "$srcdir/changelog")
[ "$srcver" = "$frver" ] || die "cached source is freeradius $srcver but $frver is installed: remove $cache and run again"

info "building $out from $sysinc + the freeradius $frver source"
new="$out.new.$$"
rm -rf "$new"
mkdir -p "$new/freeradius"
cp -a "$sysinc/." "$new/freeradius/"
copied=()
for h in "$srcinc"/*.h; do
  name=$(basename "$h")
  [ -e "$new/freeradius/$name" ] && continue  # keep Debian's configured copy
  sed 's,freeradius-devel/,freeradius/,g' "$h" >"$new/freeradius/$name"
  copied+=("$name")
done
if [ ! -f "$new/freeradius/automask.h" ]; then
  # autoconf.h includes it; it only undefines the PACKAGE_* macros a module's own config.h defines.
  cat >"$new/freeradius/automask.h" <<'EOF'
/* generated by ftmpush scripts/freeradius-headers.sh (same content as FreeRADIUS src/include/automask.h) */
#ifdef IS_MODULE
#	undef PACKAGE_BUGREPORT
#	undef PACKAGE_NAME
#	undef PACKAGE_STRING
#	undef PACKAGE_TARNAME
#	undef PACKAGE_URL
#	undef PACKAGE_VERSION
#endif
EOF
  copied+=("automask.h(generated)")
fi
for need in automask.h clients.h connection.h listen.h log.h process.h tmpl.h xlat.h radiusd.h modules.h build.h; do
  [ -f "$new/freeradius/$need" ] || die "$need still missing after completion"
done
if grep -rl 'freeradius-devel/' "$new/freeradius" >/dev/null 2>&1; then
  die "some headers still include freeradius-devel/: $(grep -rl 'freeradius-devel/' "$new/freeradius" | tr '\n' ' ')"
fi
echo "$frver" >"$new/.ftmpush-freeradius-version"
rm -rf "$out"
mv "$new" "$out"
info "added ${#copied[@]} headers: ${copied[*]}"
info "ok: $out (configure --with-freeradius-include=$out; it is the default when present)"
