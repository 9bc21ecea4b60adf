#!/usr/bin/env bash
# A hostname with several addresses, end to end. The name is given both
# 127.0.0.1 and ::1 in a private /etc/hosts, bind-mounted inside a mount
# namespace of our own (unshare -m, as root), so nothing outside changes:
#  - the server listens on each address, all on one port;
#  - the client tries each address in turn, and reports every failure.
set -euo pipefail
bin=${1:-bin}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
printf '::1 enchufe-multi\n127.0.0.1 enchufe-multi\n' >"$work/hosts"
# unshare and sh both exec, so a command run this way keeps the PID $! saw.
in_ns() { exec unshare -m sh -c "mount --bind '$work/hosts' /etc/hosts && exec \"\$@\"" sh "$@"; }

pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
summary() { echo "multihost: $pass passed, $fail failed"; }
# A server that does not come up ends the run here, saying why, with the
# summary line: nothing after it could mean anything.
need_listening() {
  if ! grep -q "Listening on" "$1"; then
    fail=$((fail + 1))
    echo "FAIL: the server did not start; it said:"
    sed 's/^/  /' "$1"
    summary
    exit 1
  fi
}
# pgrep: 0 a match, 1 none, anything else an error (missing, bad pattern),
# which must fail the check rather than pass as "none".
no_process() {
  local rc=0
  pgrep -f "$1" >/dev/null || rc=$?
  [ "$rc" -eq 1 ] || { echo "pgrep -f '$1' exited $rc"; return 1; }
}

(in_ns "$bin/enchufe-server" --host enchufe-multi --port 0) 2>"$work/server.log" &
pid=$!
for _ in $(seq 50); do grep -c "Listening on" "$work/server.log" 2>/dev/null | grep -q 2 && break; sleep 0.1; done
need_listening "$work/server.log"
check "listens on both addresses" "grep -q 'Listening on \[::1\]:' '$work/server.log' && grep -q 'Listening on 127.0.0.1:' '$work/server.log'"
port=$(sed -n 's/^Listening on 127.0.0.1://p' "$work/server.log")
check "both on the same port" "grep -q 'Listening on \[::1\]:$port\$' '$work/server.log'"
check "served over IPv4" "'$bin/enchufe-cli' --host 127.0.0.1 --port $port search ring | grep -q 'Got result: In the caves'"
check "served over IPv6" "'$bin/enchufe-cli' --host ::1 --port $port search ring | grep -q 'Got result: In the caves'"
check "a client resolving the name is served" "(in_ns '$bin/enchufe-cli' --host enchufe-multi --port $port search ring) | grep -q 'Got result'"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
check "the server is gone" "no_process 'enchufe-server --host enchufe-multi'"

# Only IPv4 now: the client's first address (::1) is refused, the second works.
"$bin/enchufe-server" --host 127.0.0.1 --port 0 2>"$work/server4.log" &
pid=$!
for _ in $(seq 50); do grep -q "Listening on" "$work/server4.log" 2>/dev/null && break; sleep 0.1; done
need_listening "$work/server4.log"
port=$(sed -n 's/^Listening on 127.0.0.1://p' "$work/server4.log")
check "the client falls back to the next address" "(in_ns '$bin/enchufe-cli' --host enchufe-multi --port $port search ring) | grep -q 'Got result'"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
out=$( (in_ns "$bin/enchufe-cli" --host enchufe-multi --port "$port" search ring) 2>&1 || true)
check "every failed address is reported" "echo \"\$out\" | grep -q '\[::1\]:$port: Connection refused' && echo \"\$out\" | grep -q '127.0.0.1:$port: Connection refused'"
summary
[ "$fail" -eq 0 ]
