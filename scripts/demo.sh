#!/usr/bin/env bash
# Installs everything ferry needs (idempotently) and runs the demo: a Temporal dev server with its
# web UI, three simulated Xen hosts (or, with --driver qemu, two QEMU hosts running a real guest),
# the workers, the API, and a live migration with progress.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec node --import tsx scripts/demo.ts "$@"
