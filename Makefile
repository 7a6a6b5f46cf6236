# Two commands do everything (see README.md):
#   make book   install, execute every chapter, build _build/html (warnings are errors)
#   make test   install, pytest on tests/, nbval on every notebook in book/
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# One BLAS thread per process: the machine has two cores, and spinning BLAS
# threads slow the small dense factorisations down (see TOOLCHAIN.md).
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install book test pytest nbval bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build -W --keep-going .
	@test -f _build/html/index.html && echo "book written to _build/html/index.html"

test: pytest nbval

pytest: $(STAMP)
	$(BIN)/python -m pytest -q tests

nbval: $(STAMP)
	$(BIN)/python -m pytest -q --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg book

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.ddf

clean:
	rm -rf _build .pytest_cache
