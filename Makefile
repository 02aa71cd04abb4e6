# The platform's commands: see README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test test-fast lint-imports lint bench constraints clean

install: $(STAMP)

# Reinstalls when the dependency pins change; a fresh clone needs nothing else.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,production]"
	touch $(STAMP)

dev: install
	$(BIN)/mining-platform dev

# The import contracts (pyproject.toml [tool.importlinter]) and ruff ([tool.ruff]), then every test.
test: install lint-imports lint
	$(BIN)/python -m pytest

# The contracts and the pure tests only (no MongoDB, MLflow or endpoint): seconds.
test-fast: install lint-imports lint
	$(BIN)/python -m pytest -m fast

lint-imports: install
	$(BIN)/lint-imports

lint: install
	$(BIN)/ruff check .

bench: install
	@for bench in bench/[a-z]*.py; do echo "== $$bench"; $(BIN)/python -m bench.$$(basename $$bench .py) || exit 1; done

# Re-pin every installed package after a deliberate upgrade in pyproject.toml.
constraints: install
	{ echo "# Every package of a working install, pinned: make install uses this as pip constraints."; \
	  echo "# Regenerate after changing pyproject.toml: make constraints"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^mining-platform'; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
