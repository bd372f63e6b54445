#!/usr/bin/env bash
# `make rehearsal` (docs/rehearsal.md): the paper profile's declarations at reduced sizes on a CPU.
# Starts the local chat-judge endpoint (judge_server.py) the rehearsal profile points MM-SafetyBench,
# SIUO and XSTest's judges at, runs `make reproduce-all PROFILE=rehearsal` (every paper experiment,
# their reports, the findings on one seed, `repro verify` of all of them), and stops the server.
# Env: RUNS (default runs-rehearsal). The server listens on 127.0.0.1:18418, the port
# experiments/_base/rehearsal.yaml names (judges:).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${RUNS:-runs-rehearsal}"
mkdir -p "$RUNS"
log="$RUNS/judge-server.log"
.venv/bin/python scripts/rehearsal/judge_server.py --port 18418 --workdir "$RUNS/judge-server" > "$log" 2>&1 &
server=$!
trap 'kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
    grep -q '^ready ' "$log" && break
    if ! kill -0 "$server" 2> /dev/null; then
        tail -20 "$log"
        echo "rehearsal: the judge server exited before it was ready (log above)" >&2
        exit 1
    fi
    sleep 1
done
grep -q '^ready ' "$log" || { echo "rehearsal: the judge server is not ready after 300 s ($log)" >&2; exit 1; }
make reproduce-all PROFILE=rehearsal RUNS="$RUNS" EXECUTOR=local
