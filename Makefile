# The kit's entry points. `make smoke` runs the tiny reproduction end to end on a CPU;
# `make test` runs the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= tiny
RUNS ?= runs
BIN := $(VENV)/bin
REPRO := $(BIN)/repro
# CPU wheel of torch first: letting pip resolve plain `torch` pulls multi-GB CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= train,eval,report,dev

.PHONY: setup test smoke verify bench clean reproduce-% docker-smoke

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q

smoke: setup
	$(REPRO) run smoke --profile tiny --runs-dir $(RUNS)
	$(REPRO) verify $(RUNS)/smoke

reproduce-%: setup
	$(REPRO) run $* --profile $(PROFILE) --runs-dir $(RUNS)
	$(REPRO) verify $(RUNS)/$*

verify: setup
	$(REPRO) verify $(RUNS)

bench: setup
	$(BIN)/python -m repro.bench --runs-dir bench

clean:
	rm -rf $(RUNS) bench

# Build the CPU image (pins from manifest.lock) and run the tiny reproduction in it. Needs a
# Docker daemon; fails before Docker runs while the cpu base image digest is unpinned.
docker-smoke: setup
	docker build $$($(BIN)/python -m repro.provenance.pins build-args cpu) -t repro-smoke:dev .
	docker run --rm -v "$$(pwd)/$(RUNS):/workspace/runs" repro-smoke:dev run smoke --profile tiny
