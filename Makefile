# The front door: `make demo`, `make test`, `make bench`, `make image`.

TARGET  := x86_64-unknown-linux-gnu
BIN     := target/$(TARGET)/release/s3-cloudfront-deploy
VENV    := .venv
PY      := $(VENV)/bin/python
# One build serves the tests, the benchmark and the image: a static release
# binary. `--target` keeps RUSTFLAGS off proc-macro crates.
export RUSTFLAGS := -C target-feature=+crt-static
CARGO_FLAGS := --release --target $(TARGET) --locked

DEMO_PORT ?= 5000
DEMO_ENDPOINT := http://127.0.0.1:$(DEMO_PORT)

.PHONY: build test unit integration lint demo stop bench image clean

$(VENV)/.installed: test/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r test/requirements.txt
	touch $@

build:
	cargo build $(CARGO_FLAGS)

## All the tests: unit tests, then integration tests against a moto server
## they start on 127.0.0.1, then the container image run as Bitbucket runs it.
test: $(VENV)/.installed image
	cargo test $(CARGO_FLAGS)
	$(PY) -m pytest test -q -p no:cacheprovider

lint:
	cargo fmt --check
	cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings

## Deploys example/site to a local S3 emulator twice; the second run uploads nothing.
demo: $(VENV)/.installed build
	@scripts/demo.sh "$(BIN)" "$(DEMO_ENDPOINT)" "$(PY)"

## Stops the emulator `make demo` left running.
stop:
	@scripts/emulator.sh stop "$(DEMO_ENDPOINT)"

## This pipe against aws s3 sync, s5cmd and rclone on one local server, same
## run, same site: with no added latency, then with 100 ms a request; listing
## 100,000 objects at 100 ms; planning 1,000,000 files in memory; then the
## container's cold start against the bare binary's.
bench: $(VENV)/.installed image
	cargo build $(CARGO_FLAGS) --example latency_proxy
	@command -v rclone >/dev/null || (apt-get update -qq && apt-get install -y -qq rclone >/dev/null)
	@command -v /usr/bin/time >/dev/null || (apt-get update -qq && apt-get install -y -qq time >/dev/null)
	$(PY) scripts/bench.py --bin "$(BIN)" $(BENCH_ARGS)
	$(PY) scripts/bench.py --bin "$(BIN)" --latency-ms 100 $(BENCH_ARGS)
	$(PY) scripts/bench_list.py --bin "$(BIN)" --keys 100000 --latency-ms 100
	cargo test $(CARGO_FLAGS) -- --ignored --nocapture --exact tests::scale::no_change
	cargo test $(CARGO_FLAGS) -- --ignored --nocapture --exact tests::scale::one_percent_changed
	$(PY) scripts/coldstart.py --bin "$(BIN)" --image "$(IMAGE)"

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE   := s3-cloudfront-deploy:local

## The pipe's image, built offline from the release binary (no image pull).
image: build
	@scripts/image.sh "$(BIN)" "$(IMAGE)" "$(VERSION)"

clean:
	rm -rf target $(VENV) .demo .bench
