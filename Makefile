# Two commands for a fresh machine (Python 3.11 + access to PyPI):
#   make demo   build .venv from the lock, then run the demo
#   make test   build .venv from the lock, then run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-from-lock
# MXNet sizes its CPU thread pool at import; unset it uses half the cores.
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: venv test demo clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==24.0"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

test: venv
	$(PY) -m pytest -q

demo: venv
	$(PY) -m gluon_resnet_v2.demo

clean:
	rm -rf $(VENV) build *.egg-info
