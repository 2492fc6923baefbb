# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
PY := .venv/bin

.PHONY: setup test lint demo demo-down cluster-up cluster-down crds e2e-kind

setup:
	scripts/setup

lint: setup
	$(PY)/ruff check .
	$(PY)/ruff format --check .
	$(PY)/mypy
	$(PY)/stereo-crdgen --check
	$(PY)/stereo-docgen --check
	scripts/sync-chart-crds --check

test: lint
	$(PY)/pytest -q -p no:cacheprovider --durations=25

demo: setup
	scripts/demo

demo-down:
	$(PY)/stereoctl --config .state/demo/stereoctl.yaml dev down --state-dir .state

cluster-up: setup
	$(PY)/stereo-cluster up

cluster-down:
	$(PY)/stereo-cluster down

crds: setup
	$(PY)/stereo-crdgen
	scripts/sync-chart-crds
	$(PY)/stereo-docgen

# The e2e suite on a kind cluster (Docker, Go; see e2e/README.md, "The kind path").
e2e-kind:
	e2e/kind/up
	e2e/kind/test
