#!/usr/bin/env bash
# Deploy Chatflow to a running LocalStack with cdklocal, then test what was deployed.
#
#   scripts/localstack-start.sh &            # or: docker run localstack/localstack (see docs/localstack.md)
#   scripts/localstack-deploy.sh             # community edition: -c profile=localstack-community
#   CHATFLOW_LOCALSTACK_PROFILE=aws LOCALSTACK_AUTH_TOKEN=... scripts/localstack-deploy.sh   # paid edition
#
# Community profile: deploys the event backbone (EventBridge bus + catalog rules with retry/DLQ, SQS,
# SNS, CloudWatch alarms, Secrets Manager) and runs scripts/localstack_smoke.py against it.
# Full profile ("aws", needs LocalStack's paid edition for API Gateway v2 + Management API, RDS and
# ElastiCache, and Docker for Lambda): deploys every stack and runs the e2e suite (tests/e2e) with
# CHATFLOW_WS_URL / CHATFLOW_HTTP_URL taken from the stack outputs.
set -euo pipefail
cd "$(dirname "$0")/.."

endpoint="${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}"
profile="${CHATFLOW_LOCALSTACK_PROFILE:-localstack-community}"
env_name="${CHATFLOW_ENV:-dev}"
py=".venv/bin/python"
outputs="cdk.out/localstack-outputs.json"

export AWS_ENDPOINT_URL="$endpoint" AWS_ENDPOINT_URL_S3="$endpoint" LOCALSTACK_HOSTNAME="${endpoint#*://}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" AWS_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export CDK_DEFAULT_ACCOUNT=000000000000 CDK_DEFAULT_REGION="$AWS_DEFAULT_REGION"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1

if ! curl -fsS "$endpoint/_localstack/health" >/dev/null; then
  echo "localstack-deploy: no LocalStack at $endpoint (start it: scripts/localstack-start.sh)" >&2
  exit 1
fi
test -d node_modules/aws-cdk-local || npm ci --no-audit --no-fund

cdklocal=(npx cdklocal --no-notices -c "env=$env_name" -c "profile=$profile")
echo "localstack-deploy: bootstrap + deploy (env=$env_name, profile=$profile) to $endpoint" >&2
"${cdklocal[@]}" bootstrap "aws://$CDK_DEFAULT_ACCOUNT/$AWS_DEFAULT_REGION"
"${cdklocal[@]}" deploy --all --require-approval never --outputs-file "$outputs"

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
