# coterie developer entry points. `make demo` and `make test` work on a fresh
# machine: each first runs `make setup`, which installs what is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.coterie-installed

.PHONY: setup native demo test lint bench bench-smoke clean mutation fuzz dist

$(STAMP): pyproject.toml hatch_build.py interop/package-lock.json scripts/system-deps.sh scripts/node-deps.sh
	bash scripts/system-deps.sh
	$(PY) -m venv $(VENV)
	bash scripts/quiet-pip.sh $(BIN)/pip install -q --upgrade pip
	bash scripts/quiet-pip.sh $(BIN)/pip install -q -e '.[all,sockend]' --group dev
	bash scripts/node-deps.sh interop
	touch $(STAMP)

setup: $(STAMP)

# Rebuild the mypyc-compiled request path (hatch_build.py) after editing one of
# its modules: until then that module runs as pure Python (coterie/_native.py).
native: $(STAMP)
	bash scripts/quiet-pip.sh $(BIN)/pip install -q --no-deps -e .
	$(BIN)/coterie --version

# Options pass through: make demo ARGS="--mesh-port 4003 --no-nginx" (--help lists them).
demo: $(STAMP)
	COTE_BROADCAST_ADDRESS=$${COTE_BROADCAST_ADDRESS:-127.255.255.255} $(BIN)/python -m examples.payment.demo $(ARGS)

# The whole suite runs twice: as pure Python (COTERIE_NO_EXTENSIONS=1), under
# coverage (compiled modules have none), then on the compiled build (CI sets
# COTERIE_REQUIRE_EXTENSIONS=1, so a build without its compiled modules fails).
# scripts/check_native.py fails a compiled build older than its sources (run
# `make native`); with no build at all (no C compiler) the last run is pure.
test: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy
	$(BIN)/mypy --strict examples
	$(BIN)/mypy tests
	COTERIE_NO_EXTENSIONS=1 $(BIN)/python -m coverage run --data-file=.coverage.protocol -m pytest -q -p no:cacheprovider tests/protocol
	$(BIN)/python -m coverage report --data-file=.coverage.protocol --include='*/coterie/protocol/*' --fail-under=100
	COTERIE_NO_EXTENSIONS=1 $(BIN)/coterie --version
	COTERIE_NO_EXTENSIONS=1 $(BIN)/python -m coverage run -m pytest -q
	$(BIN)/python scripts/coverage_packages.py
	$(BIN)/python scripts/check_native.py
	$(BIN)/python -m pytest -q

# The bench refuses a stale compiled build (coterie._native.stale) and
# prints which build it measures.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke

# Mutation testing of every module that holds a rule against its own tests
# (configured in pyproject.toml [tool.mutmut]); slow, so not part of
# `make test` or CI. Survivors: `$(BIN)/mutmut results`, `$(BIN)/mutmut show NAME`.
# COTERIE_TEST_NETNS=0: the pure tests need no private network namespace.
mutation: $(STAMP)
	$(BIN)/pip install -q 'mutmut>=3.8,<4'
	rm -rf mutants
	COTERIE_TEST_NETNS=0 $(BIN)/mutmut run
	$(BIN)/mutmut results

# Fuzz every decoder longer than CI does (tests/fuzz, docs/security.md "Fuzzing"):
# COTERIE_FUZZ_EXAMPLES examples per target, 20000 by default (about an hour).
fuzz: $(STAMP)
	COTERIE_FUZZ_EXAMPLES=$${COTERIE_FUZZ_EXAMPLES:-20000} $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 --hypothesis-show-statistics tests/fuzz

# An sdist and a wheel (mypyc-compiled when a C compiler is there) in dist/,
# then scripts/check-dist.sh installs the wheel into a fresh venv and runs a
# smoke test (import, `coterie --version`, one request in host scope); then the
# same for a wheel on Python 3.12 and 3.13 where they are installed.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	bash scripts/check-dist.sh dist
	bash scripts/dist-pythons.sh dist

clean:
	rm -rf $(VENV) interop/node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* src/coterie/_compiled
