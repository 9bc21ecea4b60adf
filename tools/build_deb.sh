#!/usr/bin/env bash
# Builds the Debian package from a copy of this tree (dpkg-buildpackage
# cleans the tree it builds in) into OUTDIR, and runs lintian on it,
# failing on any error or warning.
#
#   tools/build_deb.sh OUTDIR [VERSION]
#
# VERSION (default: debian/changelog's) makes a package of that version,
# with a changelog entry saying so: the upgrade check builds one a step
# above the real one.
set -euo pipefail
out=${1:?usage: build_deb.sh OUTDIR [VERSION]}
version=${2:-}
top=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out/enchufe"
out=$(cd "$out" && pwd)
(cd "$top" && tar --exclude=./build --exclude=./bin --exclude=./.git -cf - .) | tar -xf - -C "$out/enchufe"
cd "$out/enchufe"
if [ -n "$version" ]; then
  { printf 'enchufe (%s) unstable; urgency=medium\n\n  * A rebuild, for the upgrade check.\n\n' "$version"
    printf ' -- %s  %s\n\n' "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' debian/changelog | head -1)" "$(date -R)"
    cat debian/changelog; } >debian/changelog.new
  mv debian/changelog.new debian/changelog
fi
dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log" >&2; exit 1; }
cd "$out"
lintian --fail-on error,warning --info ./*.changes
ls "$out"/*.deb
