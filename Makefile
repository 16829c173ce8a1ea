# The two commands of the README: `make demo` and `make test`.
# Each installs what it needs into .venv (and node_modules) first.

PYTHON ?= python3
#: Where `make demo` and `make demo-production` serve the demo.
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
#: The newest Python and Django the suite runs on too: python3.13 (on the PATH, or pyenv's), Django 6.1.
NEWEST_PYTHON ?= $(shell for python in python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null); do $$python -c "" 2>/dev/null && echo $$python && break; done)
NEWEST_DJANGO := Django>=6.1,<6.2
NEWEST := .venv-newest
NEWEST_INSTALLED := $(NEWEST)/.installed
NODE_CLIENTS := tests/js/node_modules/.installed
DEMO_CLIENT := demo_client/node_modules/.installed
BENCH_CLIENTS := bench/js/node_modules/.installed
# Debian's packages the end-to-end tier uses: Chromium (the demo's browser test: test tools
# download no browsers here), HAProxy and sudo (the production recipe's test).
DEBIAN_TOOLS := /usr/bin/chromium /usr/sbin/haproxy /usr/bin/sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo demo-production test test-fast test-e2e test-newest docs cluster-check cluster-compare cluster-bench cluster-scale lint bench bench-idle bench-footprint bench-storm

demo: $(INSTALLED) $(DEMO_CLIENT)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

demo-production: $(INSTALLED) $(DEMO_CLIENT)
	$(BIN)/python -m demo_project.production --port $(PORT)

# The whole suite: lint, the fast tier (with its coverage floor), the end-to-end tier, both again on
# the newest Python and Django, then the production topology on hosts of this machine through faults.
test: test-fast test-e2e test-newest cluster-check

# No server process: the worker, consumers and layers in the test's own processes (one a core).
test-fast: lint docs
	SIOLESS_TEST_TIER=fast $(BIN)/pytest -n auto -m "not e2e" \
		--cov=sioless --cov-report=term:skip-covered --cov-fail-under=80

# Real daphne, workers, qcluster, Redis, PostgreSQL, Node clients and Chromium.
test-e2e: $(INSTALLED) $(NODE_CLIENTS) $(DEMO_CLIENT) $(BENCH_CLIENTS) $(DEBIAN_TOOLS)
	$(BIN)/pytest -m e2e

# On python3.13 with Django 6.1 (skipped, saying why, where there is no python3.13): the fast tier,
# and of the end-to-end tier what the interpreter and Django serve (the stock clients of both
# languages on both transports, the API, MessagePack, the hostile inputs, the quickstart as written).
# The rest of that tier tests what processes and services do to sioless (kills, restarts, floods,
# heartbeats, the demo's browser, the recipe behind HAProxy): the first run covers it, and
# `make test` stays within CI's 30 minutes.
NEWEST_E2E := $(addprefix tests/,test_e2e_node.py test_e2e_python.py test_polling.py test_api.py \
	test_msgpack.py test_security.py test_hostile.py test_quickstart.py)
ifeq ($(NEWEST_PYTHON),)
test-newest:
	@echo "test-newest skipped: this machine has no python3.13"
else
test-newest: $(NEWEST_INSTALLED) $(NODE_CLIENTS) $(DEMO_CLIENT) $(BENCH_CLIENTS) $(DEBIAN_TOOLS)
	SIOLESS_TEST_TIER=fast $(NEWEST)/bin/pytest -n auto -m "not e2e"
	$(NEWEST)/bin/pytest -m e2e $(NEWEST_E2E)
endif

$(NEWEST_INSTALLED): setup.cfg pyproject.toml
	$(NEWEST_PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install --quiet --upgrade pip
	$(NEWEST)/bin/python -m pip install --quiet --editable ".[test,bench]" "$(NEWEST_DJANGO)"
	touch $@

# The documentation site (the README and docs/, the API reference's docstrings), warnings as errors.
docs: $(INSTALLED)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# Ten hosts of this machine (network namespaces; as root, else skipped with the reason): Redis with
# a replica and Sentinels, PostgreSQL, two application hosts, HAProxy, a load client; one JSON line.
cluster-check: $(INSTALLED) $(DEBIAN_TOOLS) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.cluster --clients 100 --reconnect 1000

# The cluster check's faults for sioless and, beside it, for python-socketio deployed on the same hosts.
cluster-compare: $(INSTALLED) $(DEBIAN_TOOLS) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.cluster --clients 100 --reconnect 1000
	$(BIN)/python -m bench.cluster --clients 100 --reconnect 1000 --server python-socketio

# Both servers with a mass reconnect of 9,000 connections, half of them dropped at once (HAProxy
# needs two file descriptors a connection, and this machine allows a process 20,000).
cluster-bench: $(INSTALLED) $(DEBIAN_TOOLS) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.cluster --clients 100 --reconnect 9000
	$(BIN)/python -m bench.cluster --clients 100 --reconnect 9000 --server python-socketio

# CPU and Redis requests per event on 1-3 application hosts and 1, 2 and 4 shards, and python-socketio
# on 1-3 hosts (as root, ~12 minutes).
cluster-scale: $(INSTALLED) $(DEBIAN_TOOLS) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.cluster.scale

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable ".[test,bench]"
	touch $@

$(NODE_CLIENTS): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund
	touch $@

$(DEMO_CLIENT): demo_client/package.json demo_client/package-lock.json
	npm ci --prefix demo_client --no-audit --no-fund
	touch $@

$(BENCH_CLIENTS): bench/js/package.json bench/js/package-lock.json
	npm ci --prefix bench/js --no-audit --no-fund
	touch $@

$(DEBIAN_TOOLS) &:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium haproxy sudo

bench: $(INSTALLED) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.run

bench-idle: $(INSTALLED) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.idle

bench-footprint: $(INSTALLED)
	$(BIN)/python -m bench.footprint

bench-storm: $(INSTALLED) $(BENCH_CLIENTS)
	$(BIN)/python -m bench.storm
