#!/usr/bin/env bash
# Installs everything ferry needs (idempotently) and runs every check: lint, typecheck, all tests.
# The tests start their own Temporal dev server, simulators and workers on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --browser
echo "== lint" >&2
npm run --silent lint
echo "== typecheck" >&2
npm run --silent typecheck
echo "== tests" >&2
npx vitest run "$@"
