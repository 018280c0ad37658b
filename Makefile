# torchvox developer commands. Each target sets itself up: it creates (or
# reuses) the virtual environment in $(VENV), installs what it needs and builds
# the Rust extension, so a fresh clone needs nothing but `make demo` / `make test`.

VENV ?= .venv
PYTHON_BOOTSTRAP ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.torchvox-deps
DEMO_OUT ?= demo-output

.DEFAULT_GOAL := help
.PHONY: help venv build demo test test-rust test-python lint bench clean

help:  ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) scripts/requirements.py dev plot > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements.txt
	touch $(STAMP)

venv: $(STAMP)  ## Create the virtual environment and install dependencies

build: $(STAMP)  ## Build the Rust extension (release) into the environment
	$(PY) -m maturin develop --release --quiet

demo: build  ## Run the end-to-end pipeline on the bundled sample data
	$(PY) -m torchvox.cli.main demo --output $(DEMO_OUT)

test: build  ## Build, then run cargo test (core) and pytest
	cargo test --quiet -p torchvox-core
	$(PY) -m pytest -q

test-rust:  ## Run the core crate's Rust tests only
	cargo test --quiet -p torchvox-core

test-python: build  ## Run the Python tests only
	$(PY) -m pytest -q

lint: $(STAMP)  ## rustfmt, clippy -D warnings, ruff, mypy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(PY) -m ruff check python tests benches scripts
	$(PY) -m ruff format --check python tests benches scripts
	$(PY) -m mypy

bench: build  ## Benchmarks against TorchIO and MONAI -> benches/results.md, plus criterion
	$(PY) benches/run.py --output benches/results.md
	cargo bench -p torchvox-core --bench kernels -- --quick

clean:  ## Remove build products (keeps the virtual environment)
	cargo clean
	rm -rf $(DEMO_OUT) python/torchvox/_native*.so
