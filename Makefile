# licvault — two commands: `make run` and `make test` (see README.md).
#
# The cargo target directory lives outside the clone so that CI and fresh clones on the same
# machine reuse one build. RocksDB comes from Debian (librocksdb-dev): see ARCHITECTURE.md.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/licvault/target
export LICVAULT_VENV ?= $(HOME)/.cache/licvault/venv
MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
export ROCKSDB_LIB_DIR ?= /usr/lib/$(MULTIARCH)
BIN := $(CARGO_TARGET_DIR)/debug/licvault
LISTEN ?= 127.0.0.1:8080
DATA ?= data/licvault

.PHONY: help run test fuzz deps build lint keys-perms bench bench-audit bench-scale demo-federation clean-data

help:
	@echo "make run    build and start the server on the demo data (http://$(LISTEN))"
	@echo "make test   everything CI checks: fmt, clippy, unit, API, interop, crash tests and the OpenAPI fuzzer"
	@echo "make fuzz   the OpenAPI fuzzer alone (EXAMPLES=200 for more examples per operation)"
	@echo "make bench  release build; raw limits and HTTP throughput, with ratios; issuers (batch import, listings)"
	@echo "make bench-audit  a million-leaf log: audit export and verify, proofs and tiles, with ratios"
	@echo "make bench-scale  10 million licences: flat costs, restart, bytes per licence, memory (CSV and plot)"

deps:
	@scripts/deps.sh

# git keeps no permission bits but the executable one: private keys come out of a clone 0644,
# and licvault refuses keys that group or others can read.
keys-perms:
	@chmod 600 keys/*.key.pem keys/root-ca/*.key.pem keys/departments/*.key.pem keys/commitment.key

build: deps
	cargo build --bins

run: build keys-perms
	$(BIN) serve --demo --listen $(LISTEN) --data $(DATA) --keys keys --fixtures fixtures

lint: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

# Unit tests, the API tests against the real server, the kill -9 crash test, the pycose interop
# test and the Prometheus parser (LICVAULT_PYTHON points at the test virtualenv), then the
# OpenAPI fuzzer (schemathesis, seed 1, 25 examples per operation) against a scratch server.
test: lint keys-perms
	@scripts/deps.sh --python
	LICVAULT_PYTHON=$(LICVAULT_VENV)/bin/python cargo test --lib --bins --tests
	scripts/fuzz_server.sh $(BIN)

# The fuzzer alone, with more examples: make fuzz EXAMPLES=200
EXAMPLES ?= 25
fuzz: build keys-perms
	@scripts/deps.sh --python
	scripts/fuzz_server.sh $(BIN) --max-examples $(EXAMPLES)

bench: deps keys-perms
	@scripts/deps.sh --python
	@command -v wrk >/dev/null || (sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get install -y -qq wrk)
	cargo bench --bench throughput
	cargo bench --bench issuers
	cargo bench --bench federation

# Auditors' reads on a log of a million leaves (BENCH_LEAVES): export, offline verification,
# inclusion proofs and tiles, against raw SHA-256 and CBOR decoding measured in the same run.
bench-audit: deps keys-perms
	@command -v wrk >/dev/null || (sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get install -y -qq wrk)
	cargo bench --bench audit

# One node at city scale (issue 11): a store built through the batch endpoint to BENCH_SCALE
# licences (default 10,000,000; about an hour on two cores), measured at 10,000, 1,000,000 and
# the full size; writes benches/results/scale.csv and the plot scale.png (labels in DejaVu Sans).
bench-scale: deps keys-perms
	@scripts/deps.sh --plot
	cargo bench --bench scale

# Three levels of platforms on loopback (issue 10): a national node, two provinces and three
# cities, each with its own keys and departments; a cross-province verification and lookup.
demo-federation: build
	scripts/demo_federation.sh $(BIN)

clean-data:
	rm -rf $(DATA)
