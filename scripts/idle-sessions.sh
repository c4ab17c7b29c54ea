#!/usr/bin/env bash
# Idle sessions on one server: the all-in-one (release build) with its caps raised by flag, and
# idle bots seated in the `lobby` mode (no inputs, a keepalive ping every 5 s) from 254 loopback
# addresses. Once every bot is seated, it samples the server's CPU (utime + stime from
# /proc/PID/stat) over a quiet window, and its RSS (VmRSS, VmHWM) at the end of it.
#
#   scripts/idle-sessions.sh target/release out-quic quic 20000
#   scripts/idle-sessions.sh target/release out-ws ws 19000 2
#
# BIN_DIR holds `tickroom` and `tickroom-bot`; OUT_DIR gets ready.json, server.log, each swarm's
# report and table, and idle.txt (the figures). SWARMS (default 1) splits the bots over that many
# swarm processes: a process here may hold at most `ulimit -Hn` descriptors (20,000 on the
# test machine), and a WebSocket bot needs one socket each. WINDOW_S (default 60) is the
# sampling window; RAMP_S (default 100) the swarms' ramp; MARGIN_S (default 60) how long the
# bots stay after the window; PING (default 5s) the bots' keepalive
# interval; SERVER_ARGS more server flags (a ping interval of 15 s needs a longer idle timeout:
# PING=15s SERVER_ARGS="--idle-timeout-ms 45000").
set -euo pipefail

if [ "$#" -lt 4 ]; then
  echo "usage: $0 BIN_DIR OUT_DIR ws|quic BOTS [SWARMS]" >&2
  exit 2
fi
bin=$1
out=$2
transport=$3
bots=$4
swarms=${5:-1}
window=${WINDOW_S:-60}
ramp=${RAMP_S:-100}
mkdir -p "$out"
ready="$out/ready.json"
rm -f "$ready"

# Caps raised by flag: sessions (--max-connections), per address (20,000 over 254 addresses is
# 79 each), the gateway's per-address request rate, and the HTTP connection caps.
# shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
"$bin/tickroom" --http 127.0.0.1:0 --ws 127.0.0.1:0 --quic 127.0.0.1:0 --metrics 127.0.0.1:0 \
  --ready-file "$ready" --max-connections $((bots + 1000)) --max-connections-per-ip 256 \
  --gateway-rate-per-ip 100000 --gateway-rate-burst 100000 \
  --http-max-connections 4096 --http-max-connections-per-ip 256 ${SERVER_ARGS:-} \
  2>"$out/server.log" &
server=$!
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

deadline=$((SECONDS + 20))
until [ -s "$ready" ]; do
  if ! kill -0 "$server" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "the server did not start; its log:" >&2
    cat "$out/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$ready" "$1"; }
http=$(field http)
metrics=$(field metrics)

# Each swarm plays long enough to cover its ramp, the wait for the last bots to be seated and
# the window.
per=$((bots / swarms))
play=$((ramp + window + ${MARGIN_S:-60}))
for i in $(seq 1 "$swarms"); do
  "$bin/tickroom-bot" swarm --server "http://$http" --metrics-url "http://$metrics/metrics" \
    --bots "$per" --ramp "${ramp}s" --duration "${play}s" --transport "$transport" \
    --mode lobby --input-hz 0 --ping-interval "${PING:-5s}" --source-addrs 254 --no-progress \
    --report "$out/report-$i.json" >"$out/swarm-$i.txt" 2>"$out/swarm-$i.log" &
  pids+=($!)
done

sessions() {
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://$metrics/metrics" 2>/dev/null | awk '$1 == "tickroom_sessions" { print int($2) }'
}
# Wait (bounded) until every bot is seated.
deadline=$((SECONDS + ramp + 120))
want=$((per * swarms))
while :; do
  n=$(sessions || echo 0)
  [ "${n:-0}" -ge "$want" ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "only ${n:-0} of $want sessions seated by the deadline" >&2
    break
  fi
  sleep 1
done
seated_at=$(sessions)
ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
s0=$SECONDS
sleep "$window"
t1=$(ticks)
s1=$SECONDS
seated_after=$(sessions)
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$server/status")
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$server/status")
fds=$(ls "/proc/$server/fd" | wc -l)
{
  echo "transport $transport, bots $want over $swarms swarm(s), seated $seated_at at the start of the window, $seated_after at its end"
  awk -v t="$((t1 - t0))" -v hz="$hz" -v s="$((s1 - s0))" -v n="$seated_after" 'BEGIN {
    printf "server CPU over %d s: %.2f %% of a core, %.2f us per session-second\n", s, 100 * t / hz / s, 1e6 * t / hz / s / n }'
  awk -v r="$rss" -v h="$hwm" -v n="$seated_after" 'BEGIN {
    printf "server RSS %.0f MiB (peak %.0f MiB), %.1f KiB per session\n", r / 1024, h / 1024, r / n }'
  echo "server descriptors: $fds"
} | tee "$out/idle.txt"

status=0
for p in "${pids[@]}"; do
  wait "$p" || status=$?
done
pids=()
cat "$out"/swarm-*.txt
exit "$status"
