#!/usr/bin/env bash
# False failovers at a heartbeat TTL: a Redis, a gateway and two room servers started with
# `--heartbeat-ttl-ms TTL`, and a bot swarm loading the machine for DURATION seconds. Nothing is
# killed, so every room that changes owner (`tickroom_rooms_taken_over` on either server) is a
# false positive: a loaded server's heartbeat came too late and a player, finding its room
# silent, had it moved. It also samples the servers' registrations every 50 ms: a lapse is a
# moment a player asking about its room would have had it moved.
#
#   scripts/failover-ttl.sh target/release out 1000 400 60
#
# BIN_DIR holds `tickroom` and `tickroom-bot`; OUT_DIR gets the logs, the swarm's report and
# ttl-TTL.txt (the figures). The swarm plays MODE (default `arena`: state sync, 30 Hz) over
# both transports; ROOM_ARGS adds room-server flags (`--no-failover` to compare).
#
#   MODE=duel-lockstep ROOM_ARGS=--no-failover scripts/failover-ttl.sh target/release out 3000 200 30
set -euo pipefail

if [ "$#" -lt 5 ]; then
  echo "usage: $0 BIN_DIR OUT_DIR TTL_MS BOTS DURATION_S" >&2
  exit 2
fi
bin=$1
out=$2
ttl=$3
bots=$4
duration=$5
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$out" >"$out/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
url="redis://127.0.0.1:$port"
keys="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
room_keys=$(TICKROOM_KEYS=$keys "$bin/tickroom" room-keys)

start() { # NAME ARGS...: starts a role, waits for its ready file
  local name=$1
  shift
  rm -f "$out/$name.json"
  "$@" --http 127.0.0.1:0 --metrics 127.0.0.1:0 --ready-file "$out/$name.json" 2>"$out/$name.log" &
  pids+=($!)
  local deadline=$((SECONDS + 20))
  until [ -s "$out/$name.json" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name did not start; its log:" >&2
      cat "$out/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

for i in 1 2; do
  # shellcheck disable=SC2086 # ROOM_ARGS is a list of flags
  TICKROOM_ROOM_KEYS=$room_keys start "room-$i" "$bin/tickroom" room --redis "$url" \
    --server-id "room-$i" --ws 127.0.0.1:0 --quic 127.0.0.1:0 --heartbeat-ttl-ms "$ttl" \
    --max-connections-per-ip 1024 --max-tick-p99-ms 1000 ${ROOM_ARGS:-}
done
TICKROOM_KEYS=$keys start gateway "$bin/tickroom" gateway --redis "$url" \
  --gateway-rate-per-ip 100000 --gateway-rate-burst 100000
http=$(field "$out/gateway.json" http)
metrics_urls="http://$(field "$out/room-1.json" metrics)/metrics,http://$(field "$out/room-2.json" metrics)/metrics"

# Meanwhile, every 50 ms: is each server's registration there? A missing one is a lapse: a
# player asking about its room at that moment would have had the room moved.
(
  samples=0
  lapses=0
  while [ ! -e "$out/done" ]; do
    for i in 1 2; do
      samples=$((samples + 1))
      [ "$(redis-cli -p "$port" exists "tickroom:server:room-$i")" = 1 ] || lapses=$((lapses + 1))
    done
    echo "$samples $lapses" >"$out/lapses"
    sleep 0.05
  done
) &
pids+=($!)
rm -f "$out/done"
"$bin/tickroom-bot" swarm --server "http://$http" --metrics-url "$metrics_urls" --bots "$bots" \
  --ramp 10s --duration "${duration}s" --transport mixed --mode "${MODE:-arena}" --no-progress \
  --report "$out/report-$ttl.json" >"$out/swarm-$ttl.txt" 2>"$out/swarm-$ttl.log" || true
touch "$out/done"
read -r samples lapses <"$out/lapses"

metric() { # URL NAME: a counter's value (0 when absent)
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "$1" 2>/dev/null | awk -v n="$2" '$1 == n || $1 == n"_total" { print int($2) }' | head -1
}
taken=0
moved=0
for url in ${metrics_urls//,/ }; do
  taken=$((taken + $(metric "$url" tickroom_rooms_taken_over || echo 0)))
  moved=$((moved + $(metric "$url" tickroom_rooms_moved_away || echo 0)))
done
python3 - "$out/report-$ttl.json" "$ttl" "$taken" "$moved" "$samples" "$lapses" >"$out/ttl-$ttl.txt" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"ttl {sys.argv[2]} ms: {r['joined']} of {r['bots']} bots, {r['errors']} errors, "
      f"rooms taken over {sys.argv[3]}, stale copies stopped {sys.argv[4]}, room moves {r['room_moves']}, "
      f"registration lapses {sys.argv[6]} of {sys.argv[5]} samples, "
      f"rtt p99 {r['rtt_ms']['p99']} ms, server cpu {r['server'].get('cpu_ms_per_bot_s')} ms/bot-s")
EOF
cat "$out/ttl-$ttl.txt"
