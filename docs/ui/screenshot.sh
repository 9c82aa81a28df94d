#!/usr/bin/env bash
# Screenshots of the served deployment in the Prefect UI (headless Chromium): the run form with
# its typed parameters, and the deployment page. Needs Debian's `chromium` and playwright-core
# (`npm install playwright-core` into $NODE_PATH's parent, default /tmp/pw). Runs in a scratch
# HOME so the user's Prefect profile is left alone.
#   docs/ui/screenshot.sh            (from the repository root, after `make install`)
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-4310}
SCRATCH=$(mktemp -d)
export HOME=$SCRATCH METAMON_SP_CACHE=${METAMON_SP_CACHE:-$(eval echo ~root)/.cache/metamon-sp}
env -u PREFECT_API_URL .venv/bin/python -m deployments.serve --local --port "$PORT" \
  --home "$SCRATCH/server" --runs-dir "$SCRATCH/runs" > "$SCRATCH/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE; wait $SERVE || true; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 120); do
  ID=$(.venv/bin/python - <<'PY' 2>/dev/null || true
import asyncio
from prefect.client.orchestration import get_client
async def main():
    async with get_client() as c:
        print((await c.read_deployment_by_name("selfplay/gen1")).id)
asyncio.run(main())
PY
)
  [ -n "$ID" ] && break
  sleep 1
done
shot() {  # url, file, text to wait for
  NODE_PATH=${NODE_PATH:-/tmp/pw/node_modules} node docs/ui/screenshot.js "$1" "$2" "$3"
}
shot "http://127.0.0.1:$PORT/deployments/deployment/$ID/run" docs/ui/run-form.png "scale"
shot "http://127.0.0.1:$PORT/deployments/deployment/$ID" docs/ui/deployment.png "gen1"
echo "docs/ui/run-form.png docs/ui/deployment.png"
