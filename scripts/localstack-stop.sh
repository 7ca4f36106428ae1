#!/usr/bin/env bash
# Stop a LocalStack that `scripts/localstack-start.sh --detach DIR` started: its container, or
# its process group (SIGTERM, then SIGKILL after 15 s). Stops only what DIR records.
set -euo pipefail
dir="${1:?usage: scripts/localstack-stop.sh DIR}"

if [[ -f "$dir/container" ]]; then
  docker rm -f "$(cat "$dir/container")" >/dev/null 2>&1 || true
  rm -f "$dir/container"
fi
if [[ -f "$dir/pid" ]]; then
  pid="$(cat "$dir/pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
fi
