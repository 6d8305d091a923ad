#!/usr/bin/env bash
# Downloads into .whl/ the wheels that benchmarks/gpu_check.sh installs on the lent GPU machine.
#
#     bash benchmarks/fetch_gpu_wheels.sh          # from the repository root; needs PyPI
#
# That machine (the device tool's image 'cuda': Python 3.12, jax 0.11 with its CUDA 13 plugin,
# flax, optax, orbax-checkpoint, absl-py, etils, chex, numpy, protobuf, psutil, pyarrow,
# requests, tqdm, wrapt, attrs, six, PyYAML, tensorboard, matplotlib, pillow, torch; see
# /work/.library/device/KINDS.md) reaches no registry, so what our requirements.txt needs and
# the image lacks travels as wheels (`carry: [".whl"]`). Only what is missing travels: a
# carried numpy, jax or protobuf would shadow the image's own (`pip install --target` plus
# PYTHONPATH puts ours first), and TensorFlow never travels (reading, training and
# build_synthetic never import it).
#
# The list: requirements.txt's pins that the image lacks, then their own Requires-Dist that the
# image lacks (checked with `unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist`):
#   grain          -> array-record, portpicker (absl-py, cloudpickle, etils, numpy, protobuf: image)
#   tensorflow-datasets -> array-record, dm-tree, immutabledict, promise, simple-parsing,
#                     tensorflow-metadata, termcolor, toml (etils, psutil, pyarrow, requests,
#                     tqdm, wrapt, protobuf: image)
#   simple-parsing -> docstring-parser
#   importlib-resources: tensorflow-datasets requires it only for Python < 3.9, yet its builder
#                     imports it (lazily, through etils) when it prepares a dataset: the build
#                     fails without it (found by a dry run in a venv of the image's packages).
#   ml-collections (absl-py, PyYAML: image); dm-pix (chex: image); tensorboardX (numpy,
#                     packaging, protobuf: image)
#   tensorflow-metadata's googleapis-common-protos is left out: nothing we import loads google.api.
# tensorflow-metadata 1.21.0's generated code needs protobuf >= 6.31.1 at run time (a newer
# major is fine: checked with 7.36.2); grain's, >= 5.28.3. gpu_check prints the image's protobuf
# and, if an import fails on that check, runs on with TEMPORARILY_DISABLE_PROTOBUF_VERSION_CHECK.
# Checked on a CPU: these wheels (their cp311 builds) over a venv holding only packages of the
# image's list ran gpu_check's env and main parts (build, train, resume) with no TensorFlow.
# promise 2.3 is published as a source archive only: it is built here into a pure-Python wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=.whl
mkdir -p "$DEST"
rm -f "$DEST"/*.whl

BINARY=(
  grain==0.2.18
  array-record==0.8.6
  tensorflow-datasets==4.9.10
  ml-collections==1.1.0
  dm-pix==0.4.5
  tensorboardX==2.6.5
  portpicker==1.6.0
  dm-tree==0.1.10
  immutabledict==4.3.1
  simple-parsing==0.1.9
  docstring-parser==0.18.0
  tensorflow-metadata==1.21.0
  termcolor==3.3.0
  toml==0.10.2
  importlib-resources==7.1.0
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
# The wheels for the device's Python (3.12, x86-64, manylinux), whatever this machine runs.
PIP_CONSTRAINT= "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${PLATFORMS[@]}" -d "$DEST" "${BINARY[@]}"
# promise: source only on PyPI; a pure-Python wheel built here runs anywhere.
PIP_CONSTRAINT= "$PY" -m pip wheel --no-deps --no-binary=promise -w "$DEST" promise==2.3

echo "wheels in $DEST:"
ls -1 "$DEST"
du -ch "$DEST"/*.whl | tail -1
