# Two entry points (see README "Quick start"): `make demo` and `make test`.
# Each creates the virtual environment it needs and installs the project into it (test: with the
# diffusion, serve and test extras).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.core-installed
FULL_STAMP := $(VENV)/.full-installed

.PHONY: demo test test-fast test-slow bench clean

demo: $(CORE_STAMP)
	mkdir -p output
	$(BIN)/liveavatar generate --engine preview --image samples/portrait.png --audio samples/speech.wav \
		--prompt @samples/prompt.txt --save_file output/demo.mp4 --overwrite
	@echo "To run liveavatar yourself: source $(VENV)/bin/activate  (or call $(BIN)/liveavatar)"

test: $(FULL_STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(FULL_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(FULL_STAMP)
	$(BIN)/python -m pytest -q -m slow

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(FULL_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[diffusion,serve,test]"
	touch $(CORE_STAMP) $@

clean:
	rm -rf $(VENV) output .pytest_cache
