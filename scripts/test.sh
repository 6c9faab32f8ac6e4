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
# Every stack of this run uses this XenAPI password (lib/stack.ts takes it from the environment), so
# the logs can be searched for it afterwards.
export FERRY_XENAPI_PASSWORD="${FERRY_XENAPI_PASSWORD:-test-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
started=$(mktemp)
trap 'rm -f "$started"' EXIT
npx vitest run "$@"
echo "== secrets in logs" >&2
# Every log the tests wrote (test-artifacts/ and the folders of the stacks they started) must hold
# neither the XenAPI password nor a stack's payload codec key (<stack>/codec.key).
mapfile -t dirs < <(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'ferry-*' -newer "$started" 2>/dev/null; [ -d test-artifacts ] && echo test-artifacts)
leaks=0
scan() { # scan NAME VALUE DIR...
  local name=$1 value=$2
  shift 2
  [ "${#value}" -ge 8 ] || return 0
  while IFS= read -r file; do
    echo "secret found: the $name in $file" >&2
    leaks=1
  done < <(grep -rlF --include='*.log' -e "$value" "$@" 2>/dev/null || true)
}
if [ "${#dirs[@]}" -gt 0 ]; then
  scan "XenAPI password" "$FERRY_XENAPI_PASSWORD" "${dirs[@]}"
  for key in $(find "${dirs[@]}" -maxdepth 1 -name codec.key 2>/dev/null); do scan "payload codec key of $(dirname "$key")" "$(tr -d '\n' < "$key")" "${dirs[@]}"; done
fi
logs=$( ( [ "${#dirs[@]}" -gt 0 ] && find "${dirs[@]}" -name '*.log' 2>/dev/null ) | wc -l)
echo "searched $logs log files of ${#dirs[@]} folders" >&2
exit "$leaks"
