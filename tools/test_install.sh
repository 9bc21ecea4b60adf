#!/usr/bin/env bash
# Installs into a temporary DESTDIR, checks every file landed and the
# installed binaries run, then uninstalls and checks they are gone.
set -euo pipefail
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
prefix=/usr/local
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }

make --no-print-directory -s install DESTDIR="$dest" PREFIX="$prefix" >/dev/null
for p in enchufe-server enchufe-cli enchufe-bench; do
  check "$p installed and runs" "'$dest$prefix/bin/$p' --version | grep -q '^$p [0-9]'"
  check "$p man page" "grep -q '^\.TH ${p^^} 1' '$dest$prefix/share/man/man1/$p.1'"
done
check "dissector installed" "test -s '$dest$prefix/share/enchufe/wireshark/enchufe.lua'"
check "systemd unit installed" "grep -q '^DynamicUser=yes' '$dest$prefix/share/enchufe/contrib/enchufe.service'"
check "systemd socket unit installed" "grep -q '^ListenStream=' '$dest$prefix/share/enchufe/contrib/enchufe.socket'"
check "TLS socket unit installed" "grep -q '^FileDescriptorName=tls' '$dest$prefix/share/enchufe/contrib/enchufe-tls.socket'"
check "the unit's paths follow PREFIX" "grep -q '^ExecStart=$prefix/bin/enchufe-server ' '$dest$prefix/share/enchufe/contrib/enchufe.service'"
check "reload helper installed" "test -x '$dest$prefix/libexec/enchufe/enchufe-reload'"
check "default options installed" "grep -q '^ENCHUFE_OPTS=' '$dest$prefix/share/enchufe/contrib/enchufe.default'"
check "HAProxy config installed" "grep -q '^    balance leastconn' '$dest$prefix/share/enchufe/contrib/haproxy/enchufe.cfg'"
make --no-print-directory -s uninstall DESTDIR="$dest" PREFIX="$prefix" >/dev/null
check "uninstall removes the programs" "! ls '$dest$prefix/bin/'enchufe-* >/dev/null 2>&1"
check "uninstall removes the helper" "test ! -e '$dest$prefix/libexec/enchufe'"
check "uninstall removes the data" "test ! -e '$dest$prefix/share/enchufe'"
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
