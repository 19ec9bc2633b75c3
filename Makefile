# pksweb: `make run` starts the dashboard, `make test` runs the whole suite.
# Everything installs into .venv from pyproject.toml; nothing else is needed for
# `make run` (no database server, broker or Redis). `make test` also installs
# Debian's chromium and redis-server with apt when they are missing (browser tests,
# Redis-restart tests), and builds the container image (`make image`) that one test runs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test install install-test lint migrate seed chromium redis-server clean sandbox bench

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "pksweb needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

# The embedded server also starts a sandbox fleet (PKSWEB_SANDBOX_CLUSTERS=0 for none).
run: seed
	PKSWEB_SANDBOX_CLUSTERS=$${PKSWEB_SANDBOX_CLUSTERS:-3} $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The Redis-restart tests start and kill a redis-server of their own.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "Installing Debian's redis-server for the Redis-restart tests (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# The whole suite on SQLite, then the tests marked `postgres` again on PostgreSQL (text that
# SQLite would store whole must fit PostgreSQL's columns; row locks that SQLite ignores must hold).
PKSWEB_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
test: install-test chromium redis-server image
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	DATABASE_URL=$(PKSWEB_TEST_PG_URL) PKSWEB_TEST_DATABASE_NAME=test_pksweb_$$$$ $(BIN)/python -m pytest -m postgres -p no:cacheprovider

# A fleet of simulated clusters on :6550, kubeconfigs in var/sandbox (Ctrl-C stops it).
sandbox: install
	$(BIN)/python manage.py sandbox --port 6550 --clusters 3 --nodes 5 --out var/sandbox

# Benchmarks print their figures and write raw numbers under var/bench/.
bench: install-test
	$(BIN)/python bench/run_all.py

lint: install-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var staticfiles

# The container image: `make image` builds localhost/pksweb:latest FROM a Debian root filesystem made here with
# mmdebstrap (no image registry needed) and writes it as an OCI archive; tools/image.sh says how. It runs as root
# (as here). `make podman` installs Debian's podman, buildah, runc and mmdebstrap with apt when they are missing.
IMAGE ?= localhost/pksweb:latest
IMAGE_BASE ?= localhost/pksweb-base:bookworm
IMAGE_ARCHIVE ?= var/image/pksweb.oci.tar
IMAGE_CA ?= /etc/ssl/certs/ca-certificates.crt
PODMAN_TOOLS := podman buildah runc mmdebstrap
.PHONY: image podman

podman:
	@export PATH="$$PATH:/usr/sbin:/sbin"; missing=; \
	for tool in $(PODMAN_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	[ -z "$$missing" ] || { \
	  echo "Installing Debian's$$missing for make image (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

image: podman
	IMAGE=$(IMAGE) IMAGE_BASE=$(IMAGE_BASE) IMAGE_ARCHIVE=$(IMAGE_ARCHIVE) IMAGE_CA=$(IMAGE_CA) tools/image.sh
