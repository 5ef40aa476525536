# cristack: make demo | make test | make test-fast | make bench | make proto | make tools | make tools-kubelet
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint proto tools tools-kubelet bench bench-quick soak clean

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cristack demo

tools:
	./scripts/install-tools.sh

# The real kubelet v1.36.3 for tests/e2e/test_real_kubelet.py: opt-in, because building it takes tens of
# minutes on 2 cores (cached under ~/.cache/cristack/kubelet-v1.36.3 afterwards).
tools-kubelet:
	./scripts/install-tools.sh kubelet

test: $(STAMP) tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# The fast tier: unit + in-process components (markers set by folder in tests/conftest.py), no tools needed.
# Only their folders are collected: importing the other tiers' modules only to deselect them cost CPU.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "unit or component" tests/unit tests/component

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Regenerates cristack/wire/pb from proto/ with the pinned grpcio-tools.
proto: $(STAMP)
	$(PY) -m cristack.wire.protogen

bench: $(STAMP) tools
	./scripts/install-tools.sh hotrod telemetrygen
	$(PY) -m bench.run

bench-quick: $(STAMP) tools
	$(PY) -m bench.run --quick --out /tmp/cristack-benchmarks-quick.md

# The full soak (1,000 pod lifecycles at concurrency 20); make test runs a short one.
soak: $(STAMP)
	CRISTACK_SOAK=1 $(PY) -m pytest -q tests/integration/test_soak.py

clean:
	rm -rf $(VENV) .tools .pytest_cache
