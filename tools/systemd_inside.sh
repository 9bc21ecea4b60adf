#!/bin/bash
# Runs inside the container tools/test_systemd.sh boots, once systemd is
# up: installs the package with apt and checks it against the real
# systemd. Writes "PASS: ...", "FAIL: ...", "MEASURED: ..." lines and a
# last "systemd: N passed, M failed" to the file named by $1.
set -u
out=${1:?results file}
: >"$out"
pass=0 fail=0
say() { echo "$*" | tee -a "$out"; }
check() { # name, then a command
  local name=$1
  shift
  if "$@" >>/root/test/detail.log 2>&1; then
    pass=$((pass + 1))
    say "PASS: $name"
  else
    fail=$((fail + 1))
    say "FAIL: $name"
  fi
}
measured() { say "MEASURED: $*"; }
cd /root/test || exit 1
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

# --- install ------------------------------------------------------------------
check "apt installs the package" apt-get install -y /root/test/enchufe.deb
check "enchufe.socket is enabled and listening" systemctl is-active --quiet enchufe.socket
check "enchufe.service is enabled" systemctl is-enabled --quiet enchufe.service
check "enchufe-tls.socket is installed but not enabled" \
  bash -c '! systemctl is-enabled --quiet enchufe-tls.socket'
check "a search through the socket unit" \
  bash -c 'enchufe-cli search morpheus | grep -q "Follow the white rabbit"'
check "the service runs as a dynamic user" \
  bash -c 'ps -o user= -p "$(systemctl show -P MainPID enchufe)" | grep -vq root'
check "systemctl status shows the STATUS= line" \
  bash -c 'systemctl status enchufe --no-pager | grep -q "Status: \".* answered"'
score=$(systemd-analyze security enchufe.service --no-pager 2>/dev/null |
  sed -n 's/.*Overall exposure level for enchufe.service: \([0-9.]*\) .*/\1/p')
measured "systemd-analyze security enchufe.service: ${score:-?}"
check "the hardening scores under 2.0" awk -v s="${score:-99}" 'BEGIN { exit !(s < 2.0) }'

# Runs enchufe-bench in the background: bench NAME ARGS... (JSON in NAME.json)
bench() {
  local name=$1
  shift
  enchufe-bench -q --json -d 8 "$@" >"$name.json" 2>"$name.err" &
}
# answers and failures of a bench run: "N M"
tally() {
  jq -r '"\(.requests) \([.errors[]] | add)"' "$1.json" 2>/dev/null || echo "0 -1"
}
ok_run() { # name: answered some, failed none
  local r f
  read -r r f < <(tally "$1")
  [ "$r" -gt 0 ] && [ "$f" -eq 0 ]
}

# --- restart under load -------------------------------------------------------
bench restart-keepalive -c 20
bench restart-perconn -c 8 --mode per-conn
sleep 2
t0=$(date +%s%N)
check "systemctl restart enchufe under load" systemctl restart enchufe
measured "systemctl restart enchufe took $((($(date +%s%N) - t0) / 1000000)) ms (the 2 s shutdown delay, the drain, the start)"
wait
for run in restart-keepalive restart-perconn; do
  read -r r f < <(tally "$run")
  measured "$run: $r requests, $f failed, $(jq -r .retried "$run.json" 2>/dev/null) retried once after a keep-alive close"
  check "$run: no request failed across the restart" ok_run "$run"
done

# --- TLS, and a reload with a renewed certificate -----------------------------
mkdir -p /etc/enchufe
mkcert() { # name serial: a certificate for localhost signed by the test CA
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
    -subj /CN=localhost -out "$1.csr" 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$1.ext" &&
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "$2" -days 30 \
      -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
  -subj "/CN=enchufe test CA" -days 30 -out ca.pem 2>/dev/null
mkcert first 4097
mkcert renewed 4098
install_cert() { # name: the certificate and its key where the unit reads them, each file swapped whole
  install -m 644 "$1.pem" /etc/enchufe/.cert.pem && mv /etc/enchufe/.cert.pem /etc/enchufe/cert.pem
  install -m 640 -g ssl-cert "$1.key" /etc/ssl/private/.enchufe.key &&
    mv /etc/ssl/private/.enchufe.key /etc/ssl/private/enchufe.key
}
install_cert first
printf 'ENCHUFE_OPTS="--shutdown-delay 2 --tls-cert /etc/enchufe/cert.pem --tls-key /etc/ssl/private/enchufe.key --metrics 127.0.0.1:9464"\n' \
  >/etc/default/enchufe
# systemd will not start a socket unit while its service runs (systemd
# 252 runs a restart's stop after the socket's start, so `systemctl
# restart` of both fails): stop the service, then start both. Clients in
# clear meanwhile wait in enchufe.socket's backlog.
check "enchufe-tls.socket is enabled" systemctl enable enchufe-tls.socket
check "the service stops, then starts with the TLS socket" \
  bash -c 'systemctl stop enchufe.service && systemctl start enchufe-tls.socket enchufe.service'
serial() {
  openssl s_client -connect 127.0.0.1:65443 -servername localhost -CAfile ca.pem </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null
}
export -f serial
check "openssl s_client sees the first certificate" bash -c '[ "$(serial)" = serial=1001 ]'
check "a TLS search with enchufe-cli" \
  bash -c 'enchufe-cli --port 65443 --tls --tls-ca ca.pem search ring | grep -q Misty'
bench reload-tls-keepalive --port 65443 --tls --tls-ca ca.pem -c 20
bench reload-tls-perconn --port 65443 --tls --tls-ca ca.pem -c 8 --mode per-conn
sleep 2
install_cert renewed
t0=$(date +%s%N)
check "systemctl reload enchufe returns 0" systemctl reload enchufe
measured "systemctl reload enchufe took $((($(date +%s%N) - t0) / 1000000)) ms"
check "right after systemctl reload, s_client sees the renewed certificate" \
  bash -c '[ "$(serial)" = serial=1002 ]'
printf 'not a certificate\n' >/etc/enchufe/.cert.pem && mv /etc/enchufe/.cert.pem /etc/enchufe/cert.pem
check "systemctl reload fails for a bad certificate" \
  bash -c 'systemctl is-active --quiet enchufe && ! systemctl reload enchufe'
check "and the server goes on with the renewed one" bash -c '[ "$(serial)" = serial=1002 ]'
check "the service is still active after the failed reload" systemctl is-active --quiet enchufe
check "systemctl status shows why the reload failed" \
  bash -c 'systemctl status enchufe --no-pager | grep -q "reload #2 failed: TLS certificate"'
install_cert renewed
check "a good reload after the failed one" systemctl reload enchufe
wait
for run in reload-tls-keepalive reload-tls-perconn; do
  read -r r f < <(tally "$run")
  measured "$run: $r requests, $f failed, $(jq -r '.tls_full_handshakes + .tls_resumed' "$run.json" 2>/dev/null) handshakes"
  check "$run: no request failed across the reloads" ok_run "$run"
done
check "the expiry metric is the renewed certificate's" bash -c '
  want=$(date -d "$(openssl x509 -in renewed.pem -noout -enddate | cut -d= -f2)" +%s)
  got=$(enchufe-cli --json stats | jq .result.tls.certificate_not_after)
  [ -n "$want" ] && [ "$got" = "$want" ]'
check "the reload metrics" bash -c '
  m=$(enchufe-cli --json stats)
  [ "$(echo "$m" | jq .result.reloads.done)" = 2 ] && [ "$(echo "$m" | jq .result.reloads.failed)" = 1 ]'

# --- the watchdog ---------------------------------------------------------------
watchdog() {
  local pid restarts newpid t0 took client
  pid=$(systemctl show -P MainPID enchufe)
  restarts=$(systemctl show -P NRestarts enchufe)
  # (MainPID 0 means no server: kill -STOP 0 would stop this script.)
  [ "${pid:-0}" -gt 1 ] || { measured "watchdog: no server running"; return 1; }
  kill -STOP "$pid"
  t0=$(date +%s%N)
  # A client that comes while the server is frozen waits in the socket's backlog.
  timeout 60 enchufe-cli --timeout 40 search morpheus >frozen.out 2>&1 &
  client=$!
  newpid=$pid
  for _ in $(seq 1 400); do # 40 s
    newpid=$(systemctl show -P MainPID enchufe)
    [ "$newpid" != "$pid" ] && [ "$newpid" != 0 ] && systemctl is-active --quiet enchufe && break
    sleep 0.1
  done
  took=$((($(date +%s%N) - t0) / 1000000))
  measured "watchdog: a server frozen with SIGSTOP was restarted by systemd after $took ms (WatchdogSec=10)"
  wait "$client"
  [ "$newpid" != "$pid" ] && [ "$took" -lt 20000 ] &&
    [ "$(systemctl show -P NRestarts enchufe)" -gt "$restarts" ]
}
check "systemd restarts a frozen server within WatchdogSec + 10 s, and counts it" watchdog
check "the client that came during the freeze got its answer" grep -q "Follow the white rabbit" frozen.out

# --- upgrade, remove, purge -----------------------------------------------------
echo '# the admin was here' >>/etc/default/enchufe
upgrade_t0=$(date +%s)
export upgrade_t0
check "apt upgrades to the newer package" apt-get install -y /root/test/enchufe-newer.deb
check "the upgrade kept the admin's /etc/default/enchufe" grep -q "the admin was here" /etc/default/enchufe
check "the service runs again after the upgrade" \
  bash -c 'enchufe-cli search morpheus | grep -q "white rabbit"'
check "the TLS socket stays enabled across the upgrade" systemctl is-enabled --quiet enchufe-tls.socket
check "TLS is served after the upgrade" \
  bash -c 'enchufe-cli --port 65443 --tls --tls-ca ca.pem search ring | grep -q Misty'
check "the upgrade closed no listening socket (the backlog kept)" \
  bash -c '! journalctl -u enchufe.socket -u enchufe-tls.socket --since "@$upgrade_t0" | grep -q Closed'

check "apt removes the package" apt-get remove -y enchufe
check "remove stops the units" \
  bash -c '! systemctl is-active --quiet enchufe.socket enchufe-tls.socket enchufe.service'
check "nothing listens on 65432 or 65443 after the remove" \
  bash -c '! (exec 3<>/dev/tcp/127.0.0.1/65432) && ! (exec 3<>/dev/tcp/127.0.0.1/65443)'
check "remove takes the programs and units" \
  bash -c '! ls /usr/bin/enchufe-* /lib/systemd/system/enchufe* 2>/dev/null | grep -q .'
check "remove keeps the configuration" test -f /etc/default/enchufe
check "apt purges the package" apt-get purge -y enchufe
left=$(find / -xdev -name '*enchufe*' -not -path '/root/*' -not -path /etc/enchufe \
  -not -path /etc/ssl/private/enchufe.key -not -path '/var/log/*' -not -path '/var/lib/dpkg/*' \
  -not -path '/var/cache/apt/*' -not -path '/etc/systemd/system/*enchufe-test*' 2>/dev/null)
measured "after the purge, left on the system: ${left:-nothing} (besides the admin's /etc/enchufe and key)"
check "purge leaves nothing of the package behind" test -z "$left"

say "systemd: $pass passed, $fail failed"
