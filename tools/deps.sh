#!/usr/bin/env bash
# Installs what `make` (build) or `make test` (test) needs and is missing,
# with apt-get. Does nothing when everything is already there.
set -euo pipefail

what=${1:-build}
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if ! command -v pkg-config >/dev/null || ! pkg-config --exists jansson; then
  missing+=(libjansson-dev)
fi
if [ "$what" = test ]; then
  if ! command -v pkg-config >/dev/null || ! pkg-config --exists criterion; then
    missing+=(libcriterion-dev)
  fi
  command -v python3 >/dev/null || missing+=(python3)
  command -v timeout >/dev/null || missing+=(coreutils)
fi

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing ${missing[*]}; run as root, or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
