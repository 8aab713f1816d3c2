# Two commands do all set-up on a fresh machine: `make conform` and `make test`.
# The virtualenv is rebuilt only when pyproject.toml or constraints.txt change
# (the stamp file), so a second `make conform` installs nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= reports
ARGS   ?=

.PHONY: conform test bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[frameworks,test]'
	touch $(STAMP)

conform: $(STAMP)
	$(BIN)/conform run cases --out $(OUT) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/conform bench --out $(OUT) $(ARGS)

clean:
	rm -rf $(OUT) .pytest_cache
