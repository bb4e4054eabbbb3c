# mmvidt developer entry points. `make test` works on a fresh machine: it installs what is missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export MMVIDT_VENV := $(abspath $(VENV))

.PHONY: install test test-all parity

install:
	bash tools/install.sh

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m 'slow or not slow'

parity: install
	$(PYTHON) tools/misc/check_parity.py ../shared/fixtures/*.pt
