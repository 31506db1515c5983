# Set-up, run and test. Every target installs what it needs first and is idempotent:
# stamps are rebuilt only when pyproject.toml, requirements.lock or package-lock.json change.
# Only PyPI, the npm registry and Debian are used.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
CACHE   := $(CURDIR)/.cache
SOLC    := $(shell node -p 'require("./package.json").dependencies.solc' 2>/dev/null)

export SOLCX_BINARY_PATH := $(CACHE)/solcx
export APE_DATA_FOLDER   ?= $(CACHE)/ape
export PATH              := $(CACHE)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup run test lint gas hardening bench bench-smoke wrk chromium clean web

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: $(VENV)/.installed node_modules/.installed $(CACHE)/bin/anvil $(SOLCX_BINARY_PATH)/solc-v$(SOLC) web ## install everything (idempotent)

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# NOTE: `npm ci` refuses this lock file: npm records only this platform's Anvil binary package.
# Every version in package.json is exact and the lock file pins the rest, so `npm install` is stable.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# npm picks the Anvil binary for this machine's architecture; expose it under a fixed name.
$(CACHE)/bin/anvil: | node_modules/.installed
	mkdir -p $(@D)
	ln -sf "$$(ls -d $(CURDIR)/node_modules/@foundry-rs/anvil-*/bin/anvil | head -n 1)" $@

# py-solc-x finds compilers as $SOLCX_BINARY_PATH/solc-v<version>: point that at the solc-js shim.
$(SOLCX_BINARY_PATH)/solc-v$(SOLC): | node_modules/.installed
	mkdir -p $(@D)
	ln -sf $(CURDIR)/tools/solc.js $@

# The page's JavaScript is bundled from npm packages (viem, mipd) by esbuild: no CDN at run time.
WEB_SRC := $(wildcard backend/web/src/*.js) backend/web/index.html backend/web/app.css backend/web/build.mjs
web: backend/web/dist/index.html
backend/web/dist/index.html: node_modules/.installed $(WEB_SRC)
	node backend/web/build.mjs

wrk: ## install Debian's wrk (the benchmarks' HTTP load generator), if missing
	@command -v wrk >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends wrk; }

bench: setup wrk ## what the privacy layer costs beside baselines: prints a table, writes docs/BENCHMARKS.md
	$(PY) -m bench

bench-smoke: setup wrk ## every benchmark at tiny sizes, as CI runs them (writes nothing)
	$(PY) -m bench --smoke

chromium: ## install Debian's Chromium for the browser tests, if missing
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

run: setup ## run the product: local Anvil, deployed contract, backend and page
	$(PY) -m backend dev

test: setup chromium wrk lint ## run every test (and the benchmarks at tiny sizes, so they keep working)
	ape test tests/contracts --network ethereum:local:foundry -p no:cacheprovider
	$(PY) -m pytest -p no:ape_test -p no:cacheprovider tests/backend tests/e2e tests/scripts
	$(PY) -m pytest -p no:ape_test -p no:cacheprovider tests/hardening
	$(PY) -m bench --smoke

hardening: setup ## issue #6 checks in full (fuzz, auth matrix, flood, kill -9, outage, forensics, slither)
	$(PY) tools/hardening.py

lint: setup ## ruff and mypy
	ruff check backend scripts tests tools bench
	ruff format --check backend scripts tests tools bench
	mypy backend scripts

gas: setup ## print the gas table: SLT against a naive reference contract
	ape run gas --network ethereum:local:foundry

clean: ## remove build outputs and caches (keeps .venv and node_modules)
	rm -rf .build contracts/.cache $(CACHE)/ape
