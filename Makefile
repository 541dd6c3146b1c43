# Two entry points (see README "Quick start"): `make demo` and `make test`.
# Each creates the virtual environment it needs and installs the project into it (test: with the
# diffusion, serve, webrtc and test extras).
# The interpreter for the virtual environment: PYTHON if given, else the first of python3,
# python3.12, python3.11 that is 3.11 or 3.12 (see packaging/pick-python; pyproject's requires-python).
PYTHON_CANDIDATES := $(or $(PYTHON),python3 python3.12 python3.11)
PICKED = $(shell $(SHELL) packaging/pick-python $(PYTHON_CANDIDATES))
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
	$(if $(filter /%,$(firstword $(PICKED))),,$(error $(or $(PICKED),error: packaging/pick-python did not run)))
	$(PICKED) -m venv $(VENV)

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(FULL_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[diffusion,serve,webrtc,test]"
	touch $(CORE_STAMP) $@

clean:
	rm -rf $(VENV) output .pytest_cache
