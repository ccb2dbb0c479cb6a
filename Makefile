# Two commands on a fresh machine (Python 3.11+; nothing else prepared):
#   make run    create the environment, install, start BrahmaHub on http://127.0.0.1:8000
#   make test   install everything the tests need, then run lint, types and the whole suite
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .cache/uv/bin/uv
VENV := .venv
# Debian packages the tests or benches need, installed with apt-get when missing.
TEST_DEBS := util-linux

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint check deps system-deps bench-media bench-api clean

run: deps
	$(VENV)/bin/brahmahub serve

test: deps system-deps lint
	$(VENV)/bin/pytest

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-media: deps
	$(VENV)/bin/python -m bench.media

bench-api: deps
	$(VENV)/bin/python -m bench.api

deps: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv .cache/uv
	.cache/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

system-deps:
	@missing=$$(for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
