# Proxboard: `make run` starts the app on the embedded defaults; `make test` runs the whole suite.
# Both set up everything they need themselves (virtualenv, packages, Debian packages, migrations).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv system-deps demo-deps bench vendor clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the suite drives for real: Chromium for the browser tests, OpenSSH's sshd for the SSH tests,
# debootstrap, bubblewrap and slirp4netns for the real container roots (tests/sshsim/realct.py, pytest -m slow).
system-deps:
	@bash scripts/debian-deps.sh "Installing Debian packages:" chromium=/usr/bin/chromium openssh-server=/usr/sbin/sshd \
	  debootstrap=/usr/sbin/debootstrap bubblewrap=/usr/bin/bwrap slirp4netns=/usr/bin/slirp4netns

# Demo mode (no PROXBOARD_PVE_HOST) also runs a local SSH node for the fake containers: it needs sshd.
# Its containers are real roots: debootstrap, bubblewrap and slirp4netns (without them it says so and falls back).
demo-deps:
	@if [ -z "$$PROXBOARD_PVE_HOST" ]; then \
	  bash scripts/debian-deps.sh --soft "Installing for the demo's SSH node:" openssh-server=/usr/sbin/sshd \
	    debootstrap=/usr/sbin/debootstrap bubblewrap=/usr/bin/bwrap slirp4netns=/usr/bin/slirp4netns; \
	fi

run: $(STAMP) demo-deps
	@bash scripts/run.sh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_shared_cache.py
	$(BIN)/python scripts/bench_slow_proxmox.py
	$(BIN)/python scripts/bench_alerts.py
	$(BIN)/python scripts/bench_metrics.py
	$(BIN)/python scripts/bench_memory.py
	$(BIN)/python scripts/bench_clusters.py

# Refresh the vendored front-end assets from the npm registry (versions in app/static/vendor/VERSIONS.txt).
vendor:
	bash scripts/vendor.sh

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
