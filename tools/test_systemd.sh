#!/usr/bin/env bash
# The Debian package under a real systemd: boots a minimal bookworm root
# (mmdebstrap, then systemd-nspawn -b, in a network namespace of its own)
# in which tools/systemd_inside.sh installs the package with apt, checks
# it with systemctl and the real clients (socket activation, restart and
# reload under load, a renewed certificate seen by openssl s_client, the
# watchdog, the hardening score, STATUS=), then upgrades, removes and
# purges it. Prints its checks and figures, and "systemd: N passed, M
# failed".
#
#   tools/test_systemd.sh DEB NEWER_DEB
#
# Needs root, systemd-nspawn and mmdebstrap (make test-systemd installs
# them). Where no container can be booted (not root, no cgroup2) it says
# it skipped and why, and exits 0; except in CI (CI=true, which .ci/run
# sets), where not running is a failure.
set -euo pipefail
deb=$(realpath "${1:?usage: test_systemd.sh DEB NEWER_DEB}")
newer=$(realpath "${2:?usage: test_systemd.sh DEB NEWER_DEB}")
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  if [ "${CI:-}" = true ]; then
    echo "systemd: cannot run in CI: $*" >&2
    exit 1
  fi
  echo "systemd: SKIPPED (not run, not passed): $*"
  exit 0
}
[ "$(id -u)" = 0 ] || skip "booting a container needs root"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is missing (apt-get install systemd-container)"
command -v mmdebstrap >/dev/null || skip "mmdebstrap is missing (apt-get install mmdebstrap)"
grep -qw cgroup2 /proc/filesystems || skip "the kernel has no cgroup2, which systemd needs"

work=$(mktemp -d -t enchufe-systemd.XXXXXX)
root=$work/root
cleanup() {
  # A container still up (a timeout) is ours: killing its init (the
  # child of systemd-nspawn, PID 1 inside) ends everything in it.
  if [ -n "${nspawn_pid:-}" ]; then
    for init in $(pgrep -P "$(pgrep -P "$nspawn_pid" -x systemd-nspawn || echo 0)" || true); do
      kill -9 "$init" 2>/dev/null || true
    done
    kill -9 "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# The root: systemd, the clients the checks use, and the package's
# libraries, so that apt installs the .deb with no network (the container
# has none but its own loopback). The same sources and apt settings as
# this machine, as fresh-ci does.
sources=()
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
  [ -s "$f" ] && sources+=("$f")
done
aptopts=()
for f in /etc/apt/apt.conf.d/*; do [ -f "$f" ] && aptopts+=("--aptopt=$f"); done
echo "systemd: building a bookworm root with systemd (mmdebstrap)"
t0=$(date +%s)
mmdebstrap --quiet --variant=minbase "${aptopts[@]}" \
  --include=systemd,systemd-sysv,dbus,openssl,ssl-cert,procps,jq,libjansson4,libyajl2,libmicrohttpd12 \
  bookworm "$root" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1 ||
  { cat "$work/mmdebstrap.log" >&2; exit 1; }
echo "systemd: root made in $(($(date +%s) - t0)) s"

mkdir -p "$root/root/test"
cp "$deb" "$root/root/test/enchufe.deb"
cp "$newer" "$root/root/test/enchufe-newer.deb"
cp "$here/systemd_inside.sh" "$root/root/test/inside.sh"
# The checks run once the system is up, then power it off.
cat >"$root/etc/systemd/system/enchufe-test.service" <<'EOF'
[Unit]
Description=enchufe package checks
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/bash /root/test/inside.sh /root/test/results
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=600
[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/enchufe-test.service \
  "$root/etc/systemd/system/multi-user.target.wants/enchufe-test.service"
echo enchufe-test >"$root/etc/hostname"

echo "systemd: booting it (systemd-nspawn -b, private network)"
t0=$(date +%s)
set +e
timeout 900 systemd-nspawn -q -b -D "$root" --private-network --register=no --keep-unit \
  >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!
wait "$nspawn_pid"
rc=$?
set -e
nspawn_pid=
echo "systemd: the container ran $(($(date +%s) - t0)) s (systemd-nspawn exit $rc)"
if [ ! -s "$root/root/test/results" ]; then
  echo "systemd: no results; the console said:" >&2
  tail -n 60 "$work/console.log" >&2
  exit 1
fi
cat "$root/root/test/results"
if ! grep -q '^systemd: [0-9]* passed, 0 failed$' "$root/root/test/results"; then
  echo "systemd: what the units logged:" >&2
  journalctl -D "$root/var/log/journal" --no-pager -o short-monotonic \
    -u enchufe.service -u enchufe.socket -u enchufe-tls.socket 2>&1 | tail -n 80 >&2
  exit 1
fi
