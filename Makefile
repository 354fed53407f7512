# Rampart: the two commands are `make demo` and `make test` (see README.md).
# Every target first runs scripts/setup.sh: installs missing apt packages (skipped when all are
# present), installs Rust if missing, reserves hugepages when it can.

SHELL := /bin/bash
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PATH := $(HOME)/.cargo/bin:$(PATH)
RAMPART := $(CARGO_TARGET_DIR)/release/rampart

.PHONY: all setup build release demo demo-netns test bench docker-check fmt clippy clean

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace

release: setup
	$(CARGO) build --release --bin rampart

# The firewall with the example policy between two memif ports, pktgen driving allowed,
# dropped and rejected traffic through it from a second process (~20 s; no NIC, no broker).
demo: setup
	$(CARGO) build --release -p rampart -p rampart-pktgen
	RAMPART=$(RAMPART) PKTGEN=$(CARGO_TARGET_DIR)/release/pktgen scripts/demo-firewall.sh

# The raw forwarder between two network namespaces with ping + iperf3 through it.
demo-netns: release
	RAMPART=$(RAMPART) scripts/demo.sh

# Every test: unit tests of all crates and the integration tests in tests/ (netns + veth,
# net_pcap exact counts, startup errors). Needs root (namespaces, af_packet, hugepages).
test: setup
	$(CARGO) build --workspace
	$(CARGO) test --workspace --no-fail-fast
	# The wire parser under libFuzzer for a bounded time, from the committed seed corpus.
	scripts/fuzz.sh 60 parse

# Benchmarks side by side in one run; results go to BENCHMARKS.md (sections: see scripts/bench.sh;
# `scripts/bench.sh appliance` runs one).
bench: setup
	$(CARGO) build --release -p rampart -p rampart-pktgen -p rampart-control
	RAMPART=$(RAMPART) PKTGEN=$(CARGO_TARGET_DIR)/release/pktgen \
	  RAMPARTCTL=$(CARGO_TARGET_DIR)/release/rampartctl scripts/bench.sh

# The container image built and run three ways (hugepages, --no-huge, firewall + rampartctl);
# needs a Docker daemon with BuildKit and the base images. Not part of `make test`.
docker-check:
	scripts/docker-check.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets

clean:
	$(CARGO) clean
