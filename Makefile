# Two commands do all set-up on a fresh machine (see README):
#   make run    create .venv, install smilejax, run bin/run_all_folds on the built-in synthetic corpus
#   make test   create .venv, install smilejax[test], run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.smilejax-installed
ARGS ?=

.PHONY: venv run test format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
# The face front end's model file (smilejax/face/model.py); an intact cached copy is kept without network.
	$(BIN)/python -m smilejax.face.model
	touch $(STAMP)

run: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bin/run_all_folds --config=configs/default.py $(ARGS)

# The formatter and linter first; then the suite with the huge-page malloc that bin/ sets for itself
# (smilejax/runtime.py: fewer page faults in XLA:CPU).
test: $(STAMP)
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $(BIN)/python -m pytest -q $(ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_auda.py
	$(BIN)/python benchmarks/bench_realsmilenet.py

clean:
	rm -rf $(VENV) workdirs .pytest_cache
