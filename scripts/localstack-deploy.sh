#!/usr/bin/env bash
# Deploy Chatflow to a running LocalStack with cdklocal, then test what was deployed.
#
#   scripts/localstack-start.sh &            # or the container: docs/localstack.md
#   scripts/localstack-deploy.sh             # community edition: -c profile=localstack-community
#   CHATFLOW_LOCALSTACK_PROFILE=aws LOCALSTACK_AUTH_TOKEN=... scripts/localstack-deploy.sh   # paid edition
#
# Community profile: deploys the event backbone (EventBridge bus + catalog rules with retry/DLQ, SQS,
# SNS, KMS, CloudWatch alarms, Secrets Manager) and runs scripts/localstack_smoke.py against it.
# Full profile ("aws"): needs LocalStack's paid edition (API Gateway v2 + Management API, RDS,
# ElastiCache) and Docker (Lambda). Both are checked BEFORE anything is deployed; a deploy that
# fails half-way is destroyed again (CHATFLOW_LOCALSTACK_KEEP=1 keeps it for debugging). Then the
# e2e suite (tests/e2e) runs with CHATFLOW_WS_URL / CHATFLOW_HTTP_URL from the stack outputs.
set -euo pipefail
cd "$(dirname "$0")/.."

endpoint="${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}"
profile="${CHATFLOW_LOCALSTACK_PROFILE:-localstack-community}"
env_name="${CHATFLOW_ENV:-dev}"
py=".venv/bin/python"
outputs="${CHATFLOW_LOCALSTACK_OUTPUTS:-cdk.out/localstack-outputs.json}"
say() { echo "localstack-deploy: $*" >&2; }

export AWS_ENDPOINT_URL="$endpoint" AWS_ENDPOINT_URL_S3="$endpoint"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" AWS_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export CDK_DEFAULT_ACCOUNT=000000000000 CDK_DEFAULT_REGION="$AWS_DEFAULT_REGION"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1

if ! info="$(curl -fsS --max-time 5 "$endpoint/_localstack/info")"; then
  say "no LocalStack at $endpoint (start it: scripts/localstack-start.sh)"
  exit 1
fi

if [[ "$profile" == "aws" ]]; then
  # Fail fast, before CloudFormation creates anything: the full app needs the paid edition's
  # services and Docker for Lambda.
  edition="$("$py" -c 'import json,sys; print(json.load(sys.stdin).get("edition", "unknown"))' <<<"$info")"
  health="$(curl -fsS --max-time 5 "$endpoint/_localstack/health")"
  missing="$("$py" - "$health" <<'PY'
import json, sys
services = json.loads(sys.argv[1]).get("services", {})
need = ("apigatewayv2", "apigatewaymanagementapi", "rds", "elasticache", "lambda")
print(" ".join(s for s in need if services.get(s) in (None, "disabled", "error")))
PY
)"
  if [[ "$edition" != "pro" && "$edition" != "enterprise" ]] || [[ -n "$missing" ]]; then
    say "the full profile needs LocalStack's paid edition (LOCALSTACK_AUTH_TOKEN): edition=$edition," \
      "unavailable services: ${missing:-none}. The community edition runs the community profile" \
      "(unset CHATFLOW_LOCALSTACK_PROFILE)."
    exit 2
  fi
  if ! docker info >/dev/null 2>&1; then
    say "the full profile runs Lambda functions, which LocalStack runs in Docker: no Docker engine here"
    exit 2
  fi
fi

test -d node_modules/aws-cdk-local || npm ci --no-audit --no-fund
cdklocal=(npx cdklocal --no-notices -c "env=$env_name" -c "profile=$profile")
deployed=0
cleanup() {
  local status=$?
  if ((status != 0 && deployed == 0)) && [[ "${CHATFLOW_LOCALSTACK_KEEP:-0}" != 1 ]]; then
    say "deploy failed: destroying what was created (CHATFLOW_LOCALSTACK_KEEP=1 keeps it)"
    "${cdklocal[@]}" destroy --all --force >&2 || true
  fi
}
trap cleanup EXIT
say "bootstrap + deploy (env=$env_name, profile=$profile) to $endpoint"
"${cdklocal[@]}" bootstrap "aws://$CDK_DEFAULT_ACCOUNT/$AWS_DEFAULT_REGION" >&2
"${cdklocal[@]}" deploy --all --require-approval never --outputs-file "$outputs" >&2
deployed=1

if [[ "$profile" == "localstack-community" ]]; then
  "$py" scripts/localstack_smoke.py "$outputs"
else
  read -r ws_url http_url < <("$py" - "$outputs" <<'PY'
import json, sys
outputs = json.load(open(sys.argv[1]))
api = next(v for k, v in outputs.items() if k.endswith("-Api"))
print(api["WebSocketUrl"], api["HttpApiUrl"])
PY
)
  CHATFLOW_WS_URL="$ws_url" CHATFLOW_HTTP_URL="$http_url" "$py" -m pytest -p no:cacheprovider tests/e2e -m e2e -q
fi
