#!/usr/bin/env bash
# The main job: install tusk, then walk through versioned data end to end in a fresh root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export TUSK_ROOT="${TUSK_ROOT:-$(mktemp -d)/tusk}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

mkdir -p "$WORK/photos/2024" "$WORK/photos/2025"
for i in 1 2 3; do head -c 20000 /dev/urandom > "$WORK/photos/2024/img$i.raw"; done
head -c 3000000 /dev/urandom > "$WORK/photos/2025/big.raw"
echo "liberty" > "$WORK/liberty.txt"

say tusk create repo images -d "raw images"
say tusk put file images@master:/liberty.txt -f "$WORK/liberty.txt"
say tusk put file images@master -r -f "$WORK/photos"
say tusk list file images@master:/photos
say tusk glob file 'images@master:/photos/*/*.raw'
say tusk start commit images@master -m "edit in an open commit"
echo "more" | tusk put file images@master:/liberty.txt -a -f -
say tusk delete file images@master:/photos/2024/img1.raw
say tusk finish commit images@master
say tusk list commit images@master
say tusk diff file images@master
say tusk get file images@master^:/liberty.txt
say tusk get file images@master:/liberty.txt
say tusk create repo edges
say tusk create branch edges@master -p images@master
say tusk finish commit edges@master       # a branch with provenance starts with an open commit
echo "edge" | tusk put file images@master:/new.txt -f -
ID=$(tusk list commit images@master -n 1 --raw | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
say tusk list commit "$ID"
say tusk finish commit "edges@$ID"
say tusk wait commit "$ID"
say tusk list repo
say tusk fsck
echo
echo "demo finished; state is in $TUSK_ROOT"
