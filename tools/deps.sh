#!/usr/bin/env bash
# Installs what `make` (build) or `make test` (test) needs and is missing,
# with apt-get. Does nothing when everything is already there.
set -euo pipefail

what=${1:-build}
missing=()

# Installs packages with apt-get now (as root), or says what to run.
install_now() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing $*; run as root, or: sudo apt-get install -y $*" >&2
    exit 1
  fi
  echo "Installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if ! command -v pkg-config >/dev/null || ! pkg-config --exists jansson; then
  missing+=(libjansson-dev)
fi
if ! command -v pkg-config >/dev/null || ! pkg-config --exists yajl; then
  missing+=(libyajl-dev)
fi
if ! command -v pkg-config >/dev/null || ! pkg-config --exists libmicrohttpd; then
  missing+=(libmicrohttpd-dev)
fi
if ! command -v pkg-config >/dev/null || ! pkg-config --exists libsystemd; then
  missing+=(libsystemd-dev)
fi
if ! command -v pkg-config >/dev/null || ! pkg-config --exists openssl; then
  missing+=(libssl-dev)
fi
if [ "$what" = test ]; then
  command -v openssl >/dev/null || missing+=(openssl)
  command -v stunnel4 >/dev/null || missing+=(stunnel4)
  if ! command -v pkg-config >/dev/null || ! pkg-config --exists criterion; then
    missing+=(libcriterion-dev)
  fi
  command -v python3 >/dev/null || missing+=(python3)
  command -v pytest-3 >/dev/null || missing+=(python3-pytest)
  command -v timeout >/dev/null || missing+=(coreutils)
  command -v pgrep >/dev/null || missing+=(procps)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v curl >/dev/null || missing+=(curl)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v systemd-socket-activate >/dev/null || missing+=(systemd)
  command -v ip >/dev/null || missing+=(iproute2)
fi

if [ "$what" = fuzz ]; then
  # libFuzzer's runtime ships apart from clang on Debian (libclang-rt-N-dev),
  # and N is only known once clang is there: install clang first if needed.
  command -v clang >/dev/null || install_now clang
  if [ ! -e "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ] &&
     ! ls "$(dirname "$(clang -print-libgcc-file-name)")"/libclang_rt.fuzzer*.a >/dev/null 2>&1; then
    major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
    missing+=("libclang-rt-$major-dev")
  fi
fi
if [ "$what" = bench ]; then
  command -v python3 >/dev/null || missing+=(python3)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-benchmark >/dev/null || missing+=(redis-tools)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v perf >/dev/null || missing+=(linux-perf)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v stunnel4 >/dev/null || missing+=(stunnel4)
  command -v openssl >/dev/null || missing+=(openssl)
fi
if [ "$what" = json-libs ]; then
  # The C JSON libraries make json-libs measures (jansson and yajl are
  # build dependencies already).
  for pkg in libjson-c-dev libcjson-dev libjsmn-dev libjsonparser-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
fi
if [ "$what" = deb ]; then
  command -v dpkg-buildpackage >/dev/null || missing+=(dpkg-dev)
  command -v dh >/dev/null || missing+=(debhelper)
  command -v lintian >/dev/null || missing+=(lintian)
  dpkg -s build-essential >/dev/null 2>&1 || missing+=(build-essential)
fi
if [ "$what" = systemd ]; then
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
fi
if [ "$what" = dissector ]; then
  command -v tshark >/dev/null || missing+=(tshark)
  command -v python3 >/dev/null || missing+=(python3)
fi
if [ "$what" = lint ]; then
  command -v python3 >/dev/null || missing+=(python3)
  command -v cppcheck >/dev/null || missing+=(cppcheck)
  command -v clang-tidy >/dev/null || missing+=(clang-tidy)
fi

[ ${#missing[@]} -eq 0 ] && exit 0
install_now "${missing[@]}"
