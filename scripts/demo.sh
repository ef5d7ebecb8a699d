#!/usr/bin/env bash
# The main job: install tusk, then run Pachyderm's images -> edges -> montage DAG end to end on
# the embedded default (SQLite + local objects + bubblewrap sandbox), and show that a second
# `put file` runs only the new datum.
set -euo pipefail
cd "$(dirname "$0")/.."
TUSK_NO_BROWSER=1 bash scripts/setup.sh  # the demo needs no browser
REPO_DIR=$PWD
export PATH="$PWD/.venv/bin:$PATH"
export TUSK_ROOT="${TUSK_ROOT:-$(mktemp -d)/tusk}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# The pipelines' own Python environment (with Pillow), as a user would have one: user code
# runs on the user's interpreter, never on tusk's virtualenv.
USER_ENV="${TUSK_DEMO_ENV:-$REPO_DIR/.demo-env}"
[ -x "$USER_ENV/bin/python3" ] || python3 -m venv "$USER_ENV"
"$USER_ENV/bin/python3" -m pip install -q --disable-pip-version-check "pillow==13.0.0" >/dev/null
"$USER_ENV/bin/python3" examples/opencv/make_images.py "$WORK/photos" liberty kitten harbor
# The pipelines' code lives in an image, built here from a Python root made on this machine
# (no registry, no download) when a container engine can run; scripts/engine.sh installs and
# starts Docker's where it may (root, apt). Without one the same code runs in the host sandbox,
# and the specs say so: "tusk": {"runtime": "sandbox"}, with the code named by its host path.
OPENCV="$WORK/opencv"
mkdir -p "$OPENCV"
cp examples/opencv/{edges.py,montage.py,edges.json,montage.json,Dockerfile} "$OPENCV/"
bash scripts/engine.sh
if python3 -c 'from tusk.images.engines import engines; raise SystemExit(not engines())'; then
  IMAGES=1
  "$USER_ENV/bin/python3" scripts/python_rootfs.py "$OPENCV/rootfs" --pip pillow==13.0.0
  BUILD=(--build)
else
  IMAGES=0
  echo "demo: no container engine answers: the pipelines run in the host sandbox instead"
  for p in edges montage; do
    sed -i -e "s#\"/code/#\"$OPENCV/#" -e "s#\"python3\"#\"$USER_ENV/bin/python3\"#" \
      -e 's#^{#{"tusk": {"runtime": "sandbox"},#' "$OPENCV/$p.json"
  done
  BUILD=()
fi

say tusk create repo images
say tusk put file images@master:/liberty.png -f "$WORK/photos/liberty.png"
say tusk put file images@master:/kitten.png -f "$WORK/photos/kitten.png"
say tusk list file images@master
say tusk create pipeline -f "$OPENCV/edges.json" "${BUILD[@]}"
say tusk create pipeline -f "$OPENCV/montage.json" "${BUILD[@]}"
say tusk wait commit montage@master
say tusk list job
say tusk list file edges@master
say tusk get file montage@master:/montage.png -o "$WORK/montage.png"
file "$WORK/montage.png" 2>/dev/null || ls -l "$WORK/montage.png"

echo; echo "# A new image: only its edges datum runs; the others are skipped."
say tusk put file images@master:/harbor.png -f "$WORK/photos/harbor.png"
ID=$(tusk list commit images@master -n 1 --raw | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
say tusk wait commit "$ID"
say tusk list job "$ID"
say tusk list datum "edges@$ID"
say tusk list file edges@master
say tusk inspect file montage@master:/montage.png
say tusk logs -p edges --job "$ID"

if [ "$IMAGES" = 1 ]; then
  echo; echo "# Change the code (edges now inverts), rebuild its image and update: one command."
  sed -i 's/img = ImageOps.autocontrast(img)/img = ImageOps.invert(ImageOps.autocontrast(img))/' \
    "$OPENCV/edges.py"
  say tusk update pipeline -f "$OPENCV/edges.json" --build --reprocess
  say tusk wait commit montage@master
  say tusk list job -p edges
  EJ=$(tusk list job -p edges --raw | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  say tusk inspect job "edges@$EJ"
  say tusk lineage edges@master:/liberty.png
fi

echo; echo "# Versioned data underneath: history, ancestry refs, diffs."
say tusk list commit images@master
say tusk diff file images@master
say tusk list file images@master^
say tusk fsck
echo
echo "demo finished; state is in $TUSK_ROOT (montage written to a temp dir and removed)"
