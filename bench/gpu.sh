#!/usr/bin/env bash
# The GPU check (python -m bench.gpu): ViT-B-32 fp16 batch sweep, decode apart, GPU utilisation, CPU-vs-GPU
# cosine, the SemDeDup pairwise kernel on CUDA vs numpy, and the CLIP-score pass (text tower + clip_score on the
# stored vectors). Under 8 minutes on one H100.
#
#   here, once:        bash bench/gpu.sh --prepare   the wheels the GPU image lacks (Python 3.12) into .whl/
#   on the GPU machine: bash bench/gpu.sh            (the device tool: carry [".whl"]; results also go to $OUT)
#   anywhere:          bash bench/gpu.sh --smoke     tiny sizes on any device: checks the script, not the GPU
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# What curate's embed path needs beyond the GPU image's packages (torch, torchvision, timm, pyarrow, numpy,
# pillow, psutil, xxhash, pyyaml, tqdm, regex are there). Pinned as in pyproject.toml.
WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 pydantic==2.14.4 pydantic-core==2.50.5
        annotated-types==0.8.0 typing-inspection==0.4.5)

if [ "${1:-}" = "--prepare" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "${WHEELS[@]}"
  ls -la .whl
  exit 0
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/curate-site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/curate-site"
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec timeout 470 "$PYTHON" -m bench.gpu "$@"
