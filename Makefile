# Two commands for a fresh machine (Python 3.11 + access to PyPI):
#   make demo   build .venv from the lock, then run the demo
#   make test   build .venv from the lock, then run the test suite
# NVIDIA GPUs: `make gpu` (= `make venv GPU=1`) builds a second environment, .venv-gpu, from
# requirements-gpu.lock (mxnet-cu112 and NVIDIA's CUDA 11 wheels); GPU=1 points every target
# at it (`make demo GPU=1`). Without GPU=1 nothing changes: .venv and the CPU lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
ifeq ($(GPU),1)
VENV   := .venv-gpu
LOCK   := requirements-gpu.lock
else
VENV   := .venv
LOCK   := requirements.lock
endif
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-from-lock
PIPCHECK := $(PY) -m pip check
ifeq ($(GPU),1)
# pip check, less one complaint: pyproject.toml declares the CPU wheel mxnet==1.9.1, and pip
# cannot know that mxnet-cu112 is the same package under another name. Any other problem fails.
PIPCHECK := ! $(PY) -m pip check | grep -v -e '^No broken requirements found\.$$' \
	-e '^gluon-resnet-v2 [^ ]* requires mxnet, which is not installed\.$$'
endif
# MXNet sizes its CPU thread pool at import; unset it uses half the cores.
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: venv gpu test demo clean

venv: $(STAMP)

gpu:
	$(MAKE) venv GPU=1

# the environment ignores itself in git (as Python 3.13's venv does), so .venv-gpu needs no entry
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo '*' > $(VENV)/.gitignore
	$(PY) -m pip install --quiet --upgrade "pip==24.0"
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PIPCHECK)
	touch $@

test: venv
	$(PY) -m pytest -q

demo: venv
	$(PY) -m gluon_resnet_v2.demo

clean:
	rm -rf .venv .venv-gpu build *.egg-info
