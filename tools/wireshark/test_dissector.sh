#!/usr/bin/env bash
# Tests the Wireshark dissector on a capture built deterministically with
# text2pcap: a request split across two TCP segments, then a segment
# carrying two whole answers. tshark must show all three messages with
# their header fields. Then over TLS: a live capture on loopback of
# enchufe-cli --tls talking to enchufe-server --tls-only, with the keys
# the client wrote to SSLKEYLOGFILE: tshark decrypts it and the dissector
# shows the request and the answer (and, without the keys, shows neither).
# Run by `make test` (installs tshark if missing), as root (to capture).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=${ENCHUFE_PORT:-65432}

python3 - "$work" <<'PY'
import json, struct, sys
def frame(content, ctype, enc):
    h = json.dumps({"byteorder": "little", "content-type": ctype, "content-encoding": enc,
                    "content-length": len(content)}, ensure_ascii=False).encode()
    return struct.pack(">H", len(h)) + h + content
req = frame(b'{"action": "search", "value": "morpheus"}', "text/json", "utf-8")
ans1 = frame('{"result": "Follow the white rabbit. \U0001f430"}'.encode(), "text/json", "utf-8")
ans2 = frame(b"First 10 bytes of request: getsomethi", "binary/custom-server-binary-type", "binary")
segments = [req[:30], req[30:], ans1 + ans2]
with open(sys.argv[1] + "/dump.txt", "w") as out:
    for seg in segments:  # text2pcap's hex dump format, one packet each
        for off in range(0, len(seg), 16):
            out.write("%06x %s\n" % (off, " ".join("%02x" % b for b in seg[off:off + 16])))
        out.write("\n")
PY
# All segments one way (client port to server port) keeps the sequence
# numbers text2pcap writes contiguous, which is what reassembly needs.
text2pcap -q -T "40000,$port" "$work/dump.txt" "$work/cap.pcap"
tshark -X "lua_script:$here/enchufe.lua" -o tcp.desegment_tcp_streams:TRUE \
  -r "$work/cap.pcap" -O enchufe -V -P 2>"$work/err" >"$work/out" || { cat "$work/err"; exit 1; }
if grep -q "Dissector bug\|Lua: Error" "$work/out" "$work/err"; then
  cat "$work/out" "$work/err"; echo "dissector: 0 passed, 1 failed"; exit 1
fi

pass=0 fail=0
expect() {
  local n
  n=$(grep -c -- "$2" "$work/out" || true)
  if [ "$n" -ge "$1" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: expected $1 x '$2', saw $n"; fi
}
expect 3 "enchufe message:"
expect 2 "content-type: text/json"
expect 1 "content-type: binary/custom-server-binary-type"
expect 1 "content-length: 41"
expect 1 "content (text): {\"action\": \"search\", \"value\": \"morpheus\"}"
expect 1 "content (text): {\"result\": \"Follow the white rabbit."
expect 3 "JSON header length:"
expect 1 "2 enchufe messages"
[ "$fail" -eq 0 ] || { echo "--- tshark said:"; cat "$work/out" "$work/err"; }

# --- TLS, decrypted with the client's key log ---------------------------------
bin=${ENCHUFE_BIN:-bin}
certs=${ENCHUFE_TLS_DIR:-build/tls}
server="" capture=""
stop_all() {
  [ -n "$server" ] && kill "$server" "$capture" 2>/dev/null || true
  [ -n "$server" ] && wait "$server" "$capture" 2>/dev/null || true
  server="" capture=""
}
trap 'stop_all; rm -rf "$work"' EXIT
# One capture of two TLS exchanges, decoded with and without the keys.
# tshark's "Capturing on" can come before the capture really sees the
# interface (a slow, nested container missed the first connection once),
# so a capture that missed a message is made again, at most three times;
# a dissector that cannot decode fails all three.
capture_tls() {
  rm -f "$work/tls.pcapng" "$work/keys.log" "$work/err" "$work/capture.log"
  tls_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin/enchufe-server" --port 0 --tls-only --tls-port "$tls_port" --tls-cert "$certs/server.pem" \
    --tls-key "$certs/server.key" 2>"$work/server.log" &
  server=$!
  tshark -i lo -f "tcp port $tls_port" -w "$work/tls.pcapng" -q 2>"$work/capture.log" &
  capture=$!
  # Both ready: the server says it listens, tshark says it captures.
  for _ in $(seq 100); do
    grep -q "Listening on" "$work/server.log" && grep -q "Capturing on" "$work/capture.log" && break
    sleep 0.1
  done
  SSLKEYLOGFILE="$work/keys.log" "$bin/enchufe-cli" --tls --tls-ca "$certs/ca.pem" \
    --host localhost --port "$tls_port" search morpheus >"$work/cli.out"
  SSLKEYLOGFILE="$work/keys.log" "$bin/enchufe-cli" --tls --tls-ca "$certs/ca.pem" \
    --host localhost --port "$tls_port" getsomething x >>"$work/cli.out"
  sleep 1 # the last packets reach the capture file
  stop_all
  decode -o "tls.keylog_file:$work/keys.log" >"$work/out"
  decode >"$work/out-without-keys"
}
decode() {
  tshark -X "lua_script:$here/enchufe.lua" -o "enchufe.tls_port:$tls_port" "$@" \
    -d "tcp.port==$tls_port,tls" -r "$work/tls.pcapng" -O enchufe -V 2>>"$work/err"
}
for attempt in 1 2 3; do
  capture_tls
  [ "$(grep -c "enchufe message:" "$work/out" || true)" -ge 4 ] && break
  echo "dissector: capture $attempt saw $(grep -c "enchufe message:" "$work/out" || true) of 4 messages"
done
expect 1 "content (text): {\"action\": \"search\", \"value\": \"morpheus\"}"
expect 1 "content (text): {\"result\": \"Follow the white rabbit."
expect 2 "content-type: binary/custom-"
expect 4 "enchufe message:"
if grep -q "morpheus" "$work/out-without-keys"; then
  fail=$((fail + 1)); echo "FAIL: without the key log, nothing should be decrypted"
else
  pass=$((pass + 1))
fi
[ "$fail" -eq 0 ] || { echo "--- tshark said:"; cat "$work/out" "$work/err" "$work/capture.log"; }
echo "dissector: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
