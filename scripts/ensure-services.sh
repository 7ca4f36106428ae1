#!/usr/bin/env bash
# Start the machine's PostgreSQL and Redis when they are not answering (CI, fresh machines).
# Honors TEST_DATABASE_ADMIN_URL / TEST_REDIS_URL: when set, those servers are used as they are.
# A Redis started here keeps its files in CHATFLOW_REDIS_DIR (default: $TMPDIR/chatflow-redis).
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if [[ -z "${TEST_DATABASE_ADMIN_URL:-}" ]] && ! pg_up; then
  echo "ensure-services: starting PostgreSQL" >&2
  if command -v pg_ctlcluster >/dev/null; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "ensure-services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

if [[ -z "${TEST_REDIS_URL:-}" ]] && ! redis_up; then
  echo "ensure-services: starting Redis" >&2
  redis_dir="${CHATFLOW_REDIS_DIR:-${TMPDIR:-/tmp}/chatflow-redis}"
  mkdir -p "$redis_dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$redis_dir" --logfile "$redis_dir/redis.log"
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "ensure-services: Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
fi
