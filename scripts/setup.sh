#!/usr/bin/env bash
# Create .venv (if missing) and install tusk with its test dependencies, pinned in pyproject.
# Also installs bubblewrap (the sandbox runner) when it is missing and we may use apt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Also installs Debian's chromium, which the web console's browser tests drive (Playwright with
# its executable path; Playwright's own browser download needs a network we do not have).
apt_missing=()
command -v bwrap >/dev/null 2>&1 || apt_missing+=(bubblewrap)
[ -n "${TUSK_NO_BROWSER:-}" ] || command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
if [ ${#apt_missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq "${apt_missing[@]}") >/dev/null 2>&1 \
    || echo "setup: could not install ${apt_missing[*]}; sandboxed pipelines or browser tests will be skipped" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test,examples]'
