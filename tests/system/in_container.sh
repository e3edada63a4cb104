#!/bin/bash
# Runs inside the booted container (PID 1 is systemd 252) as a oneshot unit, after the project was
# installed with systemd/install.sh and /etc/watchstander/watchstander.toml set up by the test.
# Each check writes one line "NAME<TAB>pass|fail|info<TAB>detail" to /out/results.tsv; the test on
# the host asserts on them. Exit status: 0 when no check failed.
set -u
OUT=/out
RES=$OUT/results.tsv
: >"$RES"
PROBE="python3 /opt/watchstander-test/probe.py"
CFG=/etc/watchstander/watchstander.toml
U=watchstander.service
T0=$(date +%s)

result() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RES"; echo "[$(( $(date +%s) - T0 ))s] $1: $2 - $3"; }
check() { if [ "$2" = 0 ]; then result "$1" pass "$3"; else result "$1" fail "$3"; fi; }
prop() { systemctl show -P "$1" "$U"; }
active() { systemctl is-active "$U" 2>/dev/null; }
wait_active() {  # wait_active TIMEOUT [OLD_PID]: active, with a main PID other than OLD_PID
  local end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if [ "$(active)" = active ] && [ "$(prop MainPID)" != 0 ] && [ "$(prop MainPID)" != "${2:-x}" ]; then return 0; fi
    sleep 0.5
  done
  return 1
}
mark() { sleep 1; echo "@$(date +%s)"; }  # a journal position: everything logged after it (--since)

# 1. The sysadmin's next step: enable and start. Type=notify: start returns once READY=1 arrived.
systemctl enable --now "$U" >/dev/null 2>&1; rc=$?
[ "$rc" = 0 ] && [ "$(active)" = active ]; up=$?
check ready "$up" "enable --now rc=$rc, state $(active), status '$(prop StatusText)'; log: $(journalctl -u "$U" -o cat | grep -v '^Start\|^Stop\|^Fail\|Scheduled restart' | tail -3 | tr '\n' '|' | head -c 400)"
journalctl -b -o cat | grep -i "ConfigurationDirectory" >"$OUT/configdir.txt"
[ ! -s "$OUT/configdir.txt" ]; check config_directory_mode "$?" "$(head -c 300 "$OUT/configdir.txt")"
dumped=$(journalctl -u "$U" -o cat | grep -c '^\[store\]')
[ "$dumped" = 0 ] && [ "$up" = 0 ]; check config_check_quiet "$?" "effective-config lines in the journal: $dumped (the check must also pass: ready)"
if [ "$up" != 0 ]; then  # nothing else can be checked; do not spend minutes waiting on each check
  for name in capture_running metrics_endpoint udp_incident tcp_lf_incident tcp_octet_incident reload_good reload_bad_refused stop_nothing_lost \
      kill9_store_intact watchdog_pings watchdog_trip journal_warning store_private; do
    result "$name" fail "not run: the service never became active"
  done
  systemctl stop "$U"
  systemd-analyze security --no-pager "$U" >"$OUT/security.txt" 2>&1
  score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$OUT/security.txt")
  result exposure info "systemd-analyze security: ${score:-none} (not asserted: the service never ran)"
  journalctl -u "$U" -o short-precise >"$OUT/journal.txt" 2>&1
  exit 1
fi

# Every feature on: live capture under the unit's CAP_NET_RAW, and the metrics endpoint on loopback.
journalctl -u "$U" -o cat | grep "listening:" | tail -1 >"$OUT/listening.txt"
grep -q "capture lo" "$OUT/listening.txt"; check capture_running "$?" "$(grep -o 'capture lo[^;]*' "$OUT/listening.txt" || journalctl -u "$U" -o cat | grep -i capture | tail -1 | head -c 300)"
metrics=$(python3 -c "
import urllib.request
body = urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=10).read().decode()
print(sum(1 for line in body.splitlines() if line.startswith('watchstander_')))" 2>&1 | tail -1)
[ "${metrics:-0}" -gt 0 ] 2>/dev/null; check metrics_endpoint "$?" "watchstander_* samples at 127.0.0.1:9464/metrics: $metrics"

# 2. Syslog incidents: UDP, TCP with LF framing, TCP with octet counting (RFC 6587).
$PROBE send udp 192.0.2.10 12
got=$($PROBE wait 192.0.2.10 12 40); check udp_incident "$?" "stored $got of 12 failed logins sent over UDP"
$PROBE send tcp-lf 192.0.2.20 12
got=$($PROBE wait 192.0.2.20 12 40); check tcp_lf_incident "$?" "stored $got of 12 sent over TCP, LF framing"
$PROBE send tcp-octet 192.0.2.30 12
got=$($PROBE wait 192.0.2.30 12 40); check tcp_octet_incident "$?" "stored $got of 12 sent over TCP, octet counting"

# 3. Reload: a good configuration is applied in place; a bad one is refused and logged, old one stays.
cp "$CFG" /root/good.toml
pid=$(prop MainPID); restarts=$(prop NRestarts); c=$(mark)
sed -i 's/^failures = 10$/failures = 9/' "$CFG"
systemctl reload "$U"; rc=$?; sleep 4
[ "$rc" = 0 ] && [ "$(active)" = active ] && [ "$(prop MainPID)" = "$pid" ] && [ "$(prop NRestarts)" = "$restarts" ]
check reload_good "$?" "rc=$rc state=$(active) pid $pid -> $(prop MainPID), restarts $restarts -> $(prop NRestarts); log: $(journalctl -u "$U" --since "$c" -o cat | grep -i reload | tail -2 | tr '\n' '|' | head -c 300)"
pid=$(prop MainPID); c=$(mark)
sed -i 's/^flush_s = .*/flush_s = -1/' "$CFG"  # valid TOML, invalid value: validation must refuse it
systemctl reload "$U"; rc=$?; sleep 4
refusal=$(journalctl -u "$U" --since "$c" -p err -o cat | tail -3 | tr '\n' '|' | head -c 300)
[ "$(active)" = active ] && [ "$(prop MainPID)" = "$pid" ] && [ -n "$refusal" ]
check reload_bad_refused "$?" "state=$(active) pid $pid -> $(prop MainPID); error-priority log: '$refusal'"
cp /root/good.toml "$CFG"; chgrp watchstander "$CFG"; chmod 0640 "$CFG"
if [ "$(active)" != active ] || [ "$(prop MainPID)" != "$pid" ]; then systemctl restart "$U"; fi
wait_active 30

# 4. systemctl stop loses nothing received before it (flush_s is long: the stop must flush).
$PROBE send tcp-lf 192.0.2.40 100; sleep 1
systemctl stop "$U"; rc=$?
result_stop=$(prop Result); status_stop=$(prop ExecMainStatus)
systemctl start "$U"; wait_active 30
got=$($PROBE count 192.0.2.40)
[ "$rc" = 0 ] && [ "$got" = 100 ]
check stop_nothing_lost "$?" "stop rc=$rc result=$result_stop exit=$status_stop; stored $got of 100"

# 5. kill -9: the store stays intact, the audit chain verifies, the service comes back by itself.
$PROBE send udp 192.0.2.50 50
$PROBE wait 192.0.2.50 50 40 >/dev/null
pid=$(prop MainPID)
$PROBE send udp 192.0.2.51 20; sleep 0.2
systemctl kill -s KILL "$U"
wait_active 60 "$pid"; back=$?
after=$($PROBE count 192.0.2.50); lost_window=$($PROBE count 192.0.2.51)
verify=$(watchstander audit verify 2>&1); vrc=$?
integrity=$(runuser -u watchstander -- python3 -c "import sqlite3; print(sqlite3.connect('file:/var/lib/watchstander/watchstander.db?mode=ro', uri=True).execute('pragma integrity_check').fetchone()[0])" 2>&1)
[ "$back" = 0 ] && [ "$after" = 50 ] && [ "$vrc" = 0 ] && [ "$integrity" = ok ]
check kill9_store_intact "$?" "restarted=$((back == 0)) stored-before-kill $after of 50; audit verify rc=$vrc ($(echo "$verify" | tail -1 | head -c 200)); integrity_check: $integrity"
result kill9_unflushed_window info "$lost_window of 20 sent 0.2 s before kill -9 were stored (network intake window)"

# 6. The watchdog: pings keep a live loop running; a stopped loop is aborted and restarted.
mkdir -p /run/systemd/system/$U.d
printf '[Service]\nWatchdogSec=4\nTimeoutAbortSec=5\n' >/run/systemd/system/$U.d/50-test-watchdog.conf
systemctl daemon-reload; systemctl restart "$U"; wait_active 30; pid=$(prop MainPID)
sleep 10
[ "$(active)" = active ] && [ "$(prop MainPID)" = "$pid" ]
check watchdog_pings "$?" "WatchdogSec=4: after 10 s state=$(active) pid $pid -> $(prop MainPID)"
pid=$(prop MainPID); restarts=$(prop NRestarts); c=$(mark)
kill -STOP "$pid"
wait_active 60 "$pid"; back=$?
tripped=$(journalctl -u "$U" --since "$c" -o cat | grep -ci "watchdog timeout")
[ "$back" = 0 ] && [ "$tripped" -gt 0 ] && [ "$(prop NRestarts)" -gt "$restarts" ]
check watchdog_trip "$?" "stopped pid $pid: watchdog-timeout lines $tripped, restarts $restarts -> $(prop NRestarts), state=$(active) pid=$(prop MainPID)"
rm -f /run/systemd/system/$U.d/50-test-watchdog.conf; systemctl daemon-reload
systemctl restart "$U"; wait_active 30

# 7. Journal priorities: warnings reach the journal as warnings, info lines stay info.
# The test config follows a file the service user cannot read: the daemon must warn about it.
sleep 2
journalctl -u "$U" -p warning -o cat >"$OUT/journal-warning.txt"
journalctl -u "$U" -p info -o cat >"$OUT/journal-info.txt"
infos_as_warning=$(grep -c "control socket listening" "$OUT/journal-warning.txt")
[ -s "$OUT/journal-warning.txt" ] && grep -qi "cannot follow\|/var/log/ws-unreadable.log" "$OUT/journal-warning.txt" && [ "$infos_as_warning" = 0 ]
check journal_warning "$?" "$(wc -l <"$OUT/journal-warning.txt") lines at -p warning (info lines among them: $infos_as_warning); first: $(head -1 "$OUT/journal-warning.txt" | head -c 200)"

# 8. The store belongs to the service user alone.
modes=$(stat -c '%n %U:%G %a' /var/lib/watchstander/watchstander.db* 2>&1 | tr '\n' ';')
bad=$(stat -c '%U %a' /var/lib/watchstander/watchstander.db* 2>/dev/null | grep -vc '^watchstander 600$')
[ "$bad" = 0 ]; check store_private "$?" "$modes"

# 9. Exposure (systemd-analyze security), with the shipped unit.
systemd-analyze security --no-pager "$U" >"$OUT/security.txt" 2>&1
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$OUT/security.txt")
python3 -c "import sys; sys.exit(0 if float('${score:-99}') <= 2.0 else 1)"
check exposure "$?" "systemd-analyze security: ${score:-none}"

# 10. A clean final stop.
systemctl stop "$U"; rc=$?
[ "$rc" = 0 ] && [ "$(prop Result)" = success ]
check stop_clean "$?" "rc=$rc result=$(prop Result) exit=$(prop ExecMainStatus)"

journalctl -u "$U" -o short-precise >"$OUT/journal.txt" 2>&1
systemctl status --no-pager "$U" >"$OUT/status.txt" 2>&1
result elapsed info "$(( $(date +%s) - T0 )) s inside the container"
! grep -q "	fail	" "$RES"
