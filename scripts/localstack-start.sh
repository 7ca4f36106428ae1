#!/usr/bin/env bash
# Start LocalStack's community core on this host (no Docker): needs Python >= 3.12.
#
# Measured (../shared/notes/platform-facts.md): localstack-core 2026.3.0 runs on the host with
# `python -m localstack.runtime.main` only on Python >= 3.12 and with these pins. Without Docker,
# Lambda does not run (the community profile deploys none). The venv lives in .local/localstack.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${LOCALSTACK_PYTHON:-$(command -v python3.13 || command -v python3.12 || true)}"
if [[ -z "$python" ]]; then
  echo "localstack-start: needs python3.12+ (LocalStack uses 3.12 syntax); set LOCALSTACK_PYTHON" >&2
  echo "  or run the container: docker run -p 4566:4566 localstack/localstack" >&2
  exit 1
fi
venv=.local/localstack
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet "localstack-core==2026.3.0" "cbor2<6" "pyopenssl==25.1.0" \
    "cryptography>=45,<46" service_identity
fi
export GATEWAY_LISTEN="${GATEWAY_LISTEN:-127.0.0.1:4566}"
exec "$venv/bin/python" -m localstack.runtime.main
