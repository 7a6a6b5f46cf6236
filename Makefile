# Two commands do everything (see README.md):
#   make book   install, execute every chapter, build _build/html (warnings are errors)
#   make test   install, pytest on tests/ (with the browser test of the built book, if built),
#               nbval on every notebook in book/
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# One BLAS thread per process: the machine has two cores, and spinning BLAS
# threads slow the small dense factorisations down (see TOOLCHAIN.md).
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# The book is rebuilt (every chapter re-executed) whenever the package, a chapter or the
# configuration changed since the last build; otherwise `make book` has nothing to do.
BOOK_DEPS := $(shell find mmbook book -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null) \
             _config.yml _toc.yml pyproject.toml requirements.txt
BOOK_HTML := _build/html/index.html
# The published book: the deploy workflow sets MMBOOK_REPOSITORY=owner/name (launch buttons, repository link).
ifdef MMBOOK_REPOSITORY
BOOK_CONFIG := --config _config.deploy.yml
endif

.PHONY: install book test pytest nbval bench clean browser-deps

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(BIN)/python tools/quiet_kernel.py $(VENV)/share/jupyter/kernels/python3/kernel.json
	touch $(STAMP)

# Debian's Chromium for the browser test of the built book (installed when missing and we may).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed; the browser test of the built book will be skipped"; fi; }

book: $(BOOK_HTML)

$(BOOK_HTML): $(STAMP) $(BOOK_DEPS)
ifdef MMBOOK_REPOSITORY
	$(BIN)/python tools/book_config.py $(MMBOOK_REPOSITORY) > _config.deploy.yml
endif
	$(BIN)/jupyter-book build -W --keep-going --all $(BOOK_CONFIG) .
ifdef MMBOOK_REPOSITORY
	$(BIN)/python tools/install_cell.py --source "mmbook[book] @ git+https://github.com/$(MMBOOK_REPOSITORY)" \
	    $$(find _build/html/_sources -name '*.ipynb')
endif
	@test -f $(BOOK_HTML) && touch $(BOOK_HTML) && echo "book written to $(BOOK_HTML)"

test: pytest nbval

pytest: $(STAMP) browser-deps
	$(BIN)/python -m pytest -q tests

nbval: $(STAMP)
	$(BIN)/python -m pytest -q --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg book

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.ddf

clean:
	rm -rf _build .pytest_cache _config.deploy.yml
