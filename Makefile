# The two set-up commands of the README, each installing what it needs:
#   make report   virtual environment, the package and its requirements, data; then the main job
#                 (SCHEDULER=tcp://HOST:PORT trains its runs on that Dask cluster)
#   make test     the same plus the dev extras; then the test suite (CI runs this)
# and the one that pins the versions they install:
#   make lock     constraints.txt, from a fresh venv with the newest versions the requirements allow
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK_VENV := .venv-lock
SHARED_CIFAR := ../shared/cifar10/make_batches.py
# -qq shows only errors: an editable install otherwise ends with setuptools'
# general warning about folders named like the package, which is this one.
PIP_INSTALL := -m pip install -qq

.PHONY: report test data lab chromium lock

report: $(VENV)/.runtime data
	$(PY) -m helpers.report $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# JupyterLab on notebooks/; jupytext keeps each notebook's .py twin in sync on save.
# The kernels' sockets are encrypted, as in the main job (helpers/report/job.py).
lab: $(VENV)/.runtime data
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --MappingKernelManager.transport_encryption=required

test: $(VENV)/.dev data chromium
	$(PY) -m pytest

# The browser tests drive Debian's Chromium (browsers cannot be downloaded by
# Playwright here). As root, install it; otherwise say how.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	  else echo "The browser tests need Chromium at /usr/bin/chromium: sudo apt-get install chromium"; exit 1; fi; \
	fi

# The package is installed editable (pip install -e): the notebooks and the
# kernels import helpers/ of this folder, and edits to it count at once.
# Every version comes from constraints.txt.
$(VENV)/.runtime: pyproject.toml requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --constraint constraints.txt --upgrade pip
	$(PY) $(PIP_INSTALL) --constraint constraints.txt --editable .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) $(PIP_INSTALL) --constraint constraints.txt --editable ".[dev]"
	touch $@

# pip freeze of a venv that installed everything `make test` installs, less
# this package. Local version labels (torch's "+cpu") are dropped: they name
# where a build came from, and torch==2.13.0 matches the CPU build as well.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python $(PIP_INSTALL) --upgrade pip
	$(LOCK_VENV)/bin/python $(PIP_INSTALL) --editable ".[dev]"
	{ echo "# Exact versions of every package that make installs: made by \`make lock\`"; \
	  echo "# with $$($(LOCK_VENV)/bin/python -c 'import platform; print("Python", platform.python_version(), "on", platform.system(), platform.machine())'), from requirements.txt and requirements-dev.txt."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | sed -E 's/\+[A-Za-z0-9.]+$$//'; \
	} > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt
	rm -rf $(LOCK_VENV)

# CIFAR10_DIR, when set, points at a copy the user already has. Otherwise the
# data goes to data/: built from an offline copy at ../shared/cifar10 where there is one,
# downloaded (and checked) from the official site where there is not.
data: $(VENV)/.runtime
	@if [ -n "$$CIFAR10_DIR" ]; then echo "using CIFAR10_DIR=$$CIFAR10_DIR"; \
	elif [ -f data/cifar-10-batches-py/batches.meta ]; then echo "data/cifar-10-batches-py is there"; \
	elif [ -f $(SHARED_CIFAR) ]; then $(PY) $(SHARED_CIFAR) data; \
	else $(PY) -m helpers download --data-dir data; fi
