#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py says what it runs), for one call on a lent GPU machine:
#
#   first, here:   bash benchmarks/fetch_gpu_wheels.sh     # .whl/: what the device image lacks
#   device tool:   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
#   a second call for the parts the first did not reach, e.g.:
#                  run(command="GPU_CHECK_PARTS=big,xla,bf16 bash benchmarks/gpu_check.sh", ...)
#   here, the profile part's trace (xprof installed):
#                  mkdir p && tar xzf profile.tar.gz -C p
#                  python -m benchmarks.profile_step --analyze p
#   here, tiny (every code path on the CPU, in a few minutes; not a measurement):
#                  GPU_CHECK_TINY=1 JAX_PLATFORMS=cpu bash benchmarks/gpu_check.sh
#
# Environment: OUT (default /tmp/gpu_check_out; the device tool sets it), GPU_CHECK_TINY,
# GPU_CHECK_PARTS (fp32,profile,torch,main,big,xla,bf16), GPU_CHECK_BUDGET_S (default 480 on
# a GPU), GPU_CHECK_FACES (default 2000; 10000 builds the standard celebamask_synthetic/128),
# PYTHON.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# The device README's install line, where this Python lacks our packages (the device image;
# a project venv has them all and installs nothing). Only missing packages travel in .whl/.
if ! "$PY" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in
    ('grain', 'tensorflow_datasets', 'ml_collections', 'dm_pix', 'tensorboardX')))"; then
  start=$(date +%s)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
  echo "gpu_check.sh: installed $(ls .whl/*.whl | wc -l) wheels into /tmp/site" \
       "in $(( $(date +%s) - start )) s"
fi

OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -n "${GPU_CHECK_TINY:-}" ] && [ "${GPU_CHECK_TINY}" != 0 ]; then
  default_budget=1500
else
  default_budget=480
fi
budget=${GPU_CHECK_BUDGET_S:-$default_budget}
set -o pipefail
# A last guard over the driver's own deadline: SIGTERM makes it print what it has.
timeout -k 20 "$(( ${budget%.*} + 60 ))" "$PY" -m benchmarks.gpu_check --out "$OUT" "$@" 2>&1 \
  | tee "$OUT/console.log"
