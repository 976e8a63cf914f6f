#!/usr/bin/env bash
# The GPU checks of the lifecycle issue, as one script for a lent device
# (run from the repository root; results under $OUT):
#   1. the device, JAX's view of it and the CPU-kernel switch (auto = off
#      on a GPU);
#   2. every config's smoke variant through the suite's smoke tests, and the
#      kernel-switch tests;
#   3. benchmarks/throughput.py for 1, 8 and 64 seeds with auto kernels.
# Wheels the device lacks travel in .whl/ (see .whl/README.txt, made here).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import jax, jaxlib, flax, optax, orbax.checkpoint as o
from ticketjax.core import kernels
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__)
print(jax.devices(), "backend", jax.default_backend(), "cpu kernels (auto):", kernels.enabled())'
} 2>&1 | tee "$OUT/device.txt"
start=$(date +%s)
timeout 200 python3 -m pytest -q -p no:cacheprovider -n 4 \
  tests/experiment_test.py tests/kernels_test.py \
  -k 'smoke or kernels or forward_mode or data_order or modes' 2>&1 \
  | tail -40 | tee "$OUT/smoke.log"
echo "smoke tests wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/smoke.log"
for s in 1 8 64; do
  timeout 80 python3 benchmarks/throughput.py --seeds=$s --rounds=5 2>&1 \
    | grep -v Warning | tee "$OUT/throughput_$s.txt"
done
