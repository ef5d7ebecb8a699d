#!/usr/bin/env bash
# Install tusk with its test dependencies, then run the whole test suite (unit, contract, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/engine.sh  # a container engine, a registry and busybox for the image tests
.venv/bin/ruff check src tests bench scripts  # style and common bugs, before the slow part
exec .venv/bin/python -m pytest -n 2 -p no:cacheprovider tests "$@"
