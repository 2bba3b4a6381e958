# facecap: two commands do everything on a fresh machine (Python 3.11, no GPU):
#   make book   environment, every notebook executed with papermill, HTML book in book/_build/html
#   make test   environment, unit tests and every notebook in smoke mode
# Other targets: env, java, notebooks, smoke, lab, lint, lavis-check, clean, distclean.
#   make lavis-check   facecap's LAVIS checkpoint conversion against the real LAVIS 1.0.2, both ways
#   make lab    JupyterLab on the chapters, with the book's work folder and environment

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

# Nothing in this project may reach for a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: all env java notebooks smoke lab book test lint lavis-check clean distclean

all: book

env: $(STAMP)

# The environment is rebuilt only when the dependency files change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"facecap needs Python >= 3.11, found {sys.version.split()[0]} at {sys.executable}"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# METEOR (chapter 5) runs on Java; everything else works without it.
java:
	@if command -v java >/dev/null 2>&1; then \
		echo "java: $$(java -version 2>&1 | head -n 1)"; \
	else \
		echo "WARNING: no Java runtime found; METEOR scores need one." >&2; \
		echo "  Debian/Ubuntu: sudo apt-get install default-jre-headless" >&2; \
		echo "  conda:         conda install -c conda-forge openjdk=17" >&2; \
		echo "  macOS:         brew install openjdk@17" >&2; \
	fi

notebooks: env java
	$(BIN)/facecap notebooks run

smoke: env java
	$(BIN)/facecap notebooks run --smoke

lab: env
	$(BIN)/facecap lab

book: notebooks
	$(BIN)/facecap book build --book book

test: env java
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; fi; \
	exit $$rc

# LAVIS lives in its own environment (tests/lavis_check/requirements.txt says why).
LAVIS_VENV  := build/lavis-venv
LAVIS_STAMP := $(LAVIS_VENV)/.installed
LAVIS_REQS  := tests/lavis_check/requirements.txt tests/lavis_check/requirements-nodeps.txt

$(LAVIS_STAMP): $(LAVIS_REQS)
	@test -x $(LAVIS_VENV)/bin/python || $(PYTHON) -m venv $(LAVIS_VENV)
	$(LAVIS_VENV)/bin/python -m pip install --quiet -r tests/lavis_check/requirements.txt
	$(LAVIS_VENV)/bin/python -m pip install --quiet --no-deps -r tests/lavis_check/requirements-nodeps.txt
	@touch $@

lavis-check: env $(LAVIS_STAMP)
	$(BIN)/python tests/lavis_check/check.py --lavis-python $(LAVIS_VENV)/bin/python

lint: env
	$(BIN)/ruff check facecap_lib tests notebooks
	$(BIN)/ruff format --check facecap_lib tests

clean:
	rm -rf build book/_build book/chapters .pytest_cache

distclean: clean
	rm -rf $(VENV) *.egg-info
