#!/usr/bin/env bash
# The README's set-up time: `make curate DATASET=demo` from a fresh clone, as on a bare machine.
#
#     bench/setup_time.sh [RUNS]        (default 3; run as root or with sudo; writes bench/results/setup_time.md)
#
# Before each run: a fresh clone of this checkout's HEAD in a temporary folder, the demo's Debian packages
# removed, and the apt, uv and pip caches emptied, so every package is downloaded and installed again. It
# changes this machine (packages, caches): run it where that is fine. Each run's demo manifest must equal the
# first's (its content hash is printed beside the time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${1:-3}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
times=()
for i in $(seq "$RUNS"); do
  git clone -q "$ROOT" "$WORK/clone-$i"
  $SUDO apt-get remove -y -qq openclipart-svg openclipart-png >/dev/null
  $SUDO apt-get clean
  rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/uv" "${XDG_CACHE_HOME:-$HOME/.cache}/pip"
  start=$(date +%s.%N)
  (cd "$WORK/clone-$i" && make curate DATASET=demo >"$WORK/run-$i.log" 2>&1) || { tail -20 "$WORK/run-$i.log"; exit 1; }
  seconds=$(echo "$(date +%s.%N) - $start" | bc)
  digest=$("$WORK/clone-$i/.venv/bin/python" - "$WORK/clone-$i/runs/demo" <<'EOF'
import hashlib, sys
import pyarrow as pa
import curate
t = curate.load_manifest(sys.argv[1])  # (the published generation)
t = t.select(sorted(t.column_names)).sort_by("id")
sink = pa.BufferOutputStream()
with pa.ipc.new_stream(sink, t.schema) as w:
    w.write_table(t)
print(hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:8], t.num_rows)
EOF
)
  echo "run $i: $seconds s, demo manifest $digest"
  times+=("$seconds")
  rm -rf "$WORK/clone-$i"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -g)
{
  echo "# Set-up time: \`make curate DATASET=demo\` from a fresh clone"
  echo
  echo "\`bench/setup_time.sh $RUNS\` on $(date -u +%Y-%m-%d), $(nproc) cores, commit $(git rev-parse --short HEAD)."
  echo "Before each run: a fresh clone, the demo's Debian packages removed, the apt, uv and pip caches emptied."
  echo
  echo "| run | seconds |"
  echo "|---|---|"
  for i in "${!times[@]}"; do printf '| %d | %.1f |\n' $((i + 1)) "${times[$i]}"; done
  echo
  printf 'min / median / max: %.1f / %.1f / %.1f s\n' "$(echo "$sorted" | head -1)" \
    "$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")" "$(echo "$sorted" | tail -1)"
} > bench/results/setup_time.md
cat bench/results/setup_time.md
