#!/usr/bin/env bash
# The all-in-one server and two swarms at the same time against it, one over WebSocket and one
# over QUIC, meant to run inside `tickroom-bot netns-loss` (server and bots must share the
# namespace whose loopback loses packets):
#
#   target/release/tickroom-bot netns-loss --loss 2% -- scripts/netns-loss-swarms.sh target/release out \
#     --bots 200 --ramp 5s --duration 30s --mode arena
#
# BIN_DIR holds `tickroom` and `tickroom-bot`; OUT_DIR gets ready.json, server.log,
# report-ws.json, report-quic.json and each swarm's table (swarm-ws.txt, swarm-quic.txt). The
# remaining arguments go to each swarm (so --bots 200 runs 400 bots in all); not --server,
# --transport or --report (set here), nor --seed (both swarms would log in the same players).
# TICKROOM_SERVER_ARGS adds flags to the server (tests: "--max-tick-p99-ms 1000").
# Exit code: 0 when both swarms exited 0, else the last failing swarm's.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 BIN_DIR OUT_DIR [swarm flags...]" >&2
  exit 2
fi
bin=$1
out=$2
shift 2
mkdir -p "$out"
ready="$out/ready.json"
rm -f "$ready"
if [ -z "${TICKROOM_KERNEL_LOSS:-}" ]; then
  echo "note: TICKROOM_KERNEL_LOSS is not set: not running under tickroom-bot netns-loss?" >&2
fi

# shellcheck disable=SC2086 # TICKROOM_SERVER_ARGS is a list of flags
"$bin/tickroom" --http 127.0.0.1:0 --ws 127.0.0.1:0 --quic 127.0.0.1:0 --metrics 127.0.0.1:0 \
  --ready-file "$ready" ${TICKROOM_SERVER_ARGS:-} 2>"$out/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

# The ready file is written atomically once every listener is bound: poll for it (20 s at most).
deadline=$((SECONDS + 20))
until [ -s "$ready" ]; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "the server exited before it was ready; its log:" >&2
    cat "$out/server.log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "the server was not ready after 20 s" >&2
    exit 1
  fi
  sleep 0.05
done
field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" "$ready"; }
http=$(field http)
metrics=$(field metrics)

# Both swarms at once, so both see the same loss and the same load on the machine (one after
# the other, a burst of someone else's work would land in one of them only).
pids=()
for transport in ws quic; do
  "$bin/tickroom-bot" swarm --server "http://$http" --metrics-url "http://$metrics/metrics" \
    --transport "$transport" --no-progress --report "$out/report-$transport.json" "$@" \
    >"$out/swarm-$transport.txt" 2>&1 &
  pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do
  code=0
  wait "$pid" || code=$?
  [ "$code" -eq 0 ] || status=$code
done
cat "$out/swarm-ws.txt" "$out/swarm-quic.txt"
exit "$status"
