# Two commands do all set-up on a fresh machine: `make conform` and `make test`.
# The virtualenv is rebuilt only when pyproject.toml or constraints.txt change
# (the stamp file), so a second `make conform` installs nothing. `conform backends --prepare` builds
# (with uv, cached under .conform/envs/) the pinned environments of backends that need their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= reports
ARGS   ?=

.PHONY: conform test bench setup clean browser report-scale quiet quiet-gradients

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[frameworks,test,ray]'
	$(BIN)/conform backends --prepare
	touch $(STAMP)

conform: $(STAMP)
	$(BIN)/conform run cases --mode both --out $(OUT) $(ARGS)

# Two pytest-xdist workers (the machine's two cores); tests that must not overlap, or share a module's
# fixture, share an xdist_group (tests/conftest.py). --no-loadscope-reorder: work goes out in collection
# order, longest first (tests/conftest.py), not xdist's default of the groups with most tests first.
test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25 $(ARGS)

# Headless Chromium for the report's browser test (tests/test_report_browser.py): Debian's
# package, driven by Playwright with executable_path (never `playwright install`). Idempotent;
# without root/apt the browser tests skip and say why.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium (Debian package) for the report browser test"; \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null \
	  || echo "warning: could not install chromium; the browser tests will be skipped" >&2; }

# Open time and size of a 10,000-result report.html in headless Chromium.
report-scale: $(STAMP) browser
	$(BIN)/python benchmarks/report_scale.py $(ARGS)

# Quietness at scale: 1,000 fuzz cases (seeds 1-4, all dtypes) on every installed backend with the
# project's registry; fails if any result is not pass/unsupported/skipped/xfail (benchmarks/quiet.py).
quiet: $(STAMP)
	$(BIN)/python benchmarks/quiet.py $(ARGS)

# Gradients at scale: 50 fuzz cases per seed (4 seeds) of every operator, forward and backward, every backend.
quiet-gradients: $(STAMP)
	$(BIN)/python benchmarks/quiet.py --ops conv2d_transpose,conv2d,avg_pool2d,max_pool2d --count 50 --mode both $(ARGS)

# Kernel timings against the frameworks, then whole-run throughput and the parent's memory (harness/throughput.py).
bench: $(STAMP)
	$(BIN)/conform bench --throughput --out $(OUT) $(ARGS)

clean:
	rm -rf $(OUT) .pytest_cache
