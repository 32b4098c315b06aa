# Every target bootstraps .venv from the pinned dependencies in pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/default.toml

.PHONY: run test venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/ukl run $(CONFIG)

test: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) results .pytest_cache
