#!/usr/bin/env bash
# Start LocalStack (community) for the LocalStack profile (docs/localstack.md):
#   - with a working Docker engine: the container (what `localstack start` runs);
#   - without one: localstack-core on this host, in its own venv, on Python >= 3.13.
#
#   scripts/localstack-start.sh                 # foreground on 127.0.0.1:4566 (Ctrl-C stops it)
#   scripts/localstack-start.sh --detach DIR    # background; waits until healthy; DIR/pid (or
#                                               # DIR/container), DIR/endpoint, DIR/localstack.log
#   scripts/localstack-start.sh --find-python   # print the interpreter host mode would use
#
# Settings (environment): LOCALSTACK_PORT (4566), LOCALSTACK_DOCKER (auto | 1 | 0),
# LOCALSTACK_IMAGE (localstack/localstack:4.14.0, the last image that starts without an auth
# token; set LOCALSTACK_AUTH_TOKEN and a newer tag for the paid edition), LOCALSTACK_PYTHON (an
# interpreter for host mode), LOCALSTACK_VENV (where host mode installs localstack-core),
# LOCALSTACK_START_TIMEOUT_S (120).
set -euo pipefail
cd "$(dirname "$0")/.."

LOCALSTACK_VERSION=2026.3.0
# localstack-core 2026.3.0 imports warnings.deprecated (Python 3.13); on 3.12 its runtime stops at
# start-up with "No component plugins found in namespace localstack.runtime.components".
MIN_PYTHON=(3 13)
port="${LOCALSTACK_PORT:-4566}"
timeout_s="${LOCALSTACK_START_TIMEOUT_S:-120}"
image="${LOCALSTACK_IMAGE:-localstack/localstack:4.14.0}"

say() { echo "localstack-start: $*" >&2; }

# Is "$1" a Python >= MIN_PYTHON that can make a venv? (pyenv shims of inactive versions fail here)
usable_python() {
  [[ -x "$1" ]] || return 1
  "$1" -c "import sys, venv, ensurepip; sys.exit(0 if sys.version_info[:2] >= (${MIN_PYTHON[0]}, ${MIN_PYTHON[1]}) else 1)" \
    >/dev/null 2>&1
}

find_python() {
  local candidates=()
  [[ -n "${LOCALSTACK_PYTHON:-}" ]] && candidates+=("$LOCALSTACK_PYTHON")
  local name path
  for name in python3.15 python3.14 python3.13 python3; do
    path="$(command -v "$name" 2>/dev/null || true)"
    [[ -n "$path" ]] && candidates+=("$path")
  done
  # Installed but not activated: pyenv's versions, uv's managed Pythons, /usr and /opt installs
  # (newest first).
  local roots=("${PYENV_ROOT:-$HOME/.pyenv}/versions" "${XDG_DATA_HOME:-$HOME/.local/share}/uv/python" /opt)
  while IFS= read -r path; do candidates+=("$path"); done < <(
    for root in "${roots[@]}"; do
      [[ -d "$root" ]] && ls -d "$root"/*/bin/python3 2>/dev/null
    done | sort -V -r
    ls /usr/local/bin/python3.1[3-9] /usr/bin/python3.1[3-9] 2>/dev/null | sort -V -r
  )
  for path in "${candidates[@]}"; do
    if usable_python "$path"; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

docker_ok() {
  case "${LOCALSTACK_DOCKER:-auto}" in
    0|false|no) return 1 ;;
  esac
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

ensure_venv() {
  local python="$1" tag
  tag="$("$python" -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")')"
  venv="${LOCALSTACK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/chatflow/localstack-$LOCALSTACK_VERSION-$tag}"
  mkdir -p "$(dirname "$venv")"
  # Several runs may share the venv (other worktrees, CI on the same machine): one installs.
  exec 9>"$venv.lock"
  flock -w 600 9 || { say "timed out waiting for another install into $venv"; exit 1; }
  if [[ ! -f "$venv/.chatflow-installed" ]]; then
    say "installing localstack-core $LOCALSTACK_VERSION into $venv (once; ~2 min)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # ONE install: these pins only hold when resolved together with localstack-core (a later
    # `-c constraints` install does not downgrade what the first one put there). [runtime]
    # brings the server's own dependencies.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "localstack-core[runtime]==$LOCALSTACK_VERSION" "cbor2<6" "pyopenssl==25.1.0" \
      "cryptography>=45,<46" service_identity
    touch "$venv/.chatflow-installed"
  fi
  flock -u 9
  exec 9>&-
}

wait_healthy() {
  local endpoint="$1" alive="$2" deadline=$((SECONDS + timeout_s))
  while ((SECONDS < deadline)); do
    if curl -fsS --max-time 2 "$endpoint/_localstack/health" >/dev/null 2>&1; then
      return 0
    fi
    "$alive" || return 1
    sleep 0.5
  done
  return 1
}

if [[ "${1:-}" == "--find-python" ]]; then
  find_python || { say "no Python >= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]} found (set LOCALSTACK_PYTHON)"; exit 3; }
  exit 0
fi
detach_dir=""
if [[ "${1:-}" == "--detach" ]]; then
  detach_dir="${2:?--detach needs a directory}"
  mkdir -p "$detach_dir"
fi
endpoint="http://127.0.0.1:$port"
if curl -fsS --max-time 2 "$endpoint/_localstack/health" >/dev/null 2>&1; then
  say "something already answers on $endpoint; stop it or choose LOCALSTACK_PORT"
  exit 1
fi

if docker_ok; then
  name="chatflow-localstack-$port"
  args=(--rm --name "$name" -p "127.0.0.1:$port:4566" -e SQS_CLOUDWATCH_METRICS_REPORT_INTERVAL=5
        -v /var/run/docker.sock:/var/run/docker.sock)
  [[ -n "${LOCALSTACK_AUTH_TOKEN:-}" ]] && args+=(-e LOCALSTACK_AUTH_TOKEN)
  if [[ -z "$detach_dir" ]]; then
    say "docker run $image on $endpoint"
    exec docker run "${args[@]}" "$image"
  fi
  docker run -d "${args[@]}" "$image" >"$detach_dir/container"
  echo "$endpoint" >"$detach_dir/endpoint"
  container_alive() { [[ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" == true ]]; }
  if ! wait_healthy "$endpoint" container_alive; then
    docker logs "$name" >"$detach_dir/localstack.log" 2>&1 || true
    say "the container did not become healthy within ${timeout_s}s ($detach_dir/localstack.log)"
    exit 1
  fi
  say "container $name healthy on $endpoint"
  exit 0
fi

python="$(find_python)" || {
  say "no Docker engine and no Python >= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]} (looked on PATH, in pyenv's and uv's"
  say "  install directories, /usr, /opt); install one or set LOCALSTACK_PYTHON"
  exit 3
}
ensure_venv "$python"
# Host mode. LocalStack believes it runs in a container here and uses /var/lib/localstack and
# /tmp/localstack: never clear them, another run may share them.
export GATEWAY_LISTEN="127.0.0.1:$port" SQS_CLOUDWATCH_METRICS_REPORT_INTERVAL=5 CLEAR_TMP_FOLDER=0
if [[ -z "$detach_dir" ]]; then
  say "host mode ($python) on $endpoint"
  exec "$venv/bin/python" -m localstack.runtime.main
fi
# Its own session (setsid): scripts/localstack-stop.sh ends the whole process group.
setsid "$venv/bin/python" -m localstack.runtime.main >"$detach_dir/localstack.log" 2>&1 < /dev/null &
echo $! >"$detach_dir/pid"
echo "$endpoint" >"$detach_dir/endpoint"
pid_alive() { kill -0 "$(cat "$detach_dir/pid")" 2>/dev/null; }
if ! wait_healthy "$endpoint" pid_alive; then
  say "LocalStack did not become healthy within ${timeout_s}s; last lines of $detach_dir/localstack.log:"
  tail -n 15 "$detach_dir/localstack.log" >&2 || true
  scripts/localstack-stop.sh "$detach_dir" || true
  exit 1
fi
say "host mode ($python, pid $(cat "$detach_dir/pid")) healthy on $endpoint"
