# Developer and CI entry points. `make test` is the README's test command and what .ci/run runs.
# Integration tests start the devstack themselves (tests/conftest.py); `test` only pre-fetches it
# so that a first run's Maven download shows up as its own step instead of inside a test.

PYTHON ?= python3

.PHONY: install demo test wheel-smoke devstack-fetch devstack-up devstack-down devstack-status bench

install:
	$(PYTHON) -m pip install -e ".[test]"

demo: install
	$(PYTHON) -m connector demo

test: install devstack-fetch
	$(PYTHON) -m pytest -q

# The built wheel in a fresh venv runs the demo deployment (what .ci/run checks last).
wheel-smoke:
	PYTHON=$(PYTHON) bash .ci/wheel_smoke.sh

devstack-fetch:
	$(PYTHON) -m connector devstack fetch

devstack-up:
	$(PYTHON) -m connector devstack up

devstack-down:
	$(PYTHON) -m connector devstack down

devstack-status:
	$(PYTHON) -m connector devstack status

# Benchmarks (not part of the test suite): simulator -> connector -> Kafka, ceilings, cost.
# Runs unattended in about 6 minutes and appends its tables to BENCHMARKS.md.
bench:
	$(PYTHON) -m bench --record --wait-load 0.8 --wait-load-timeout 120
