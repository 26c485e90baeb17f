# hub: every target installs what it needs and is safe to run twice.
SHELL := /bin/bash
PY_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HUB := $(VENV)/bin/hub
KAFKA_LIBS := .local/kafka/libs
STAMP := .local/stamps
WITH_KAFKA := deploy/local-kafka/with-kafka.sh
KUSTOMIZE_VERSION := v5.5.0

.PHONY: install deps kafka-libs promtool kustomize chromium kafka-start kafka-stop kafka-status test test-fast test-faults test-cluster demo bench bench-deps bench-quick bench-secure lint format clean

install: deps kafka-libs promtool kustomize chromium

deps: $(STAMP)/deps
$(STAMP)/deps: pyproject.toml
	@mkdir -p $(STAMP)
	@test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

kafka-libs: $(STAMP)/kafka-libs
$(STAMP)/kafka-libs: deploy/local-kafka/pom.xml
	@mkdir -p $(STAMP)
	rm -rf $(KAFKA_LIBS)
	mvn -q -f deploy/local-kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS)
	@touch $@

# promtool (Debian's prometheus package) checks and unit-tests deploy/prometheus/.
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v promtool >/dev/null && promtool --version | head -1

# kustomize (renders deploy/kubernetes in the tests): the pinned Go module, built with the machine's
# Go into .local/bin (about 4 min the first time on 2 cores).
kustomize: $(STAMP)/kustomize-$(KUSTOMIZE_VERSION)
$(STAMP)/kustomize-$(KUSTOMIZE_VERSION):
	@mkdir -p $(STAMP) .local/bin
	GOBIN=$(CURDIR)/.local/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@touch $@

# Headless chromium + its WebDriver (Debian's chromium, chromium-driver) for the browser tests of
# `hub serve-web` (tests/integration/test_web_browser.py, selenium).
chromium:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
	@chromium --version 2>/dev/null | head -1

kafka-start: deps kafka-libs
	$(HUB) kafka start

kafka-stop: deps
	$(HUB) kafka stop

kafka-status: deps
	$(HUB) kafka status

# Lint (ruff + mypy), then the whole suite against a real broker; stops the broker only if this
# run started it.
test: install lint
	$(WITH_KAFKA) $(VENV)/bin/pytest -q

# Fault scenarios (issue 12) on their own broker (localhost:19192, .local/kafka-faults), never the
# shared one; the table goes to stdout and .local/faults-report.md. Not part of `make test`;
# .ci/run runs it after `make test`. HUB_FAULTS_KEEP_FAILED=1 keeps a failed scenario's topics.
test-faults: install
	$(VENV)/bin/pytest -q -m faults tests/faults

# Fault scenarios (issue 16) on their own three-node cluster (localhost:19492-19494, controllers
# +100, .local/kafka-cluster-test; RF 3, min ISR 2), never the shared broker; the table goes to
# stdout and .local/cluster-report.md, worker logs in .local/cluster-tmp. Not part of `make test`
# (~20 min on 2 cores).
test-cluster: install
	$(VENV)/bin/pytest -q -m cluster tests/cluster --basetemp=.local/cluster-tmp

# Pure unit tests only: no broker, milliseconds each.
test-fast: deps kustomize
	$(VENV)/bin/pytest -q -m "not broker"

demo: install
	$(WITH_KAFKA) $(HUB) demo

# The Quix Streams peer of the benchmark runs in its own venv: quixstreams pins an older
# confluent-kafka than the hub's (pyproject's `bench` extra).
QUIX_VENV := .local/venv-quix
bench-deps: $(STAMP)/venv-quix
$(STAMP)/venv-quix: pyproject.toml
	@mkdir -p $(STAMP)
	@test -x $(QUIX_VENV)/bin/python || $(PY_BOOT) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q -e '.[bench]' --config-settings editable_mode=compat
	@touch $@

bench: install bench-deps
	$(WITH_KAFKA) $(PY) -m bench.run

bench-quick: install bench-deps
	$(WITH_KAFKA) $(PY) -m bench.run --quick

# The hub's throughput on the plaintext broker vs the local SASL_SSL broker in one run (issue 15).
bench-secure: install
	$(WITH_KAFKA) $(PY) -m bench.secure

lint: deps
	$(VENV)/bin/ruff check hub hubctl connectors tools bench tests
	$(VENV)/bin/ruff format --check hub hubctl connectors tools bench tests
	$(VENV)/bin/mypy

format: deps
	$(VENV)/bin/ruff format hub hubctl connectors tools bench tests
	$(VENV)/bin/ruff check --fix hub hubctl connectors tools bench tests

clean: kafka-stop
	rm -rf .local $(VENV)
