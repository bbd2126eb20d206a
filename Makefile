# The README's two commands: `make run` and `make test`. Both install what they need
# from Debian's repositories first (apt-get update only when something is missing).

# Node.js and npm run the docs tests' tools (tests/docs/package.json), which need Node.js
# 20.19 or later; Debian's packages are installed only when there is no node or no npm,
# since a Node.js installed otherwise (which ships its own npm) conflicts with them.
# prometheus ships promtool, which checks /metrics and deploy/monitoring in the tests.
# iptables: podman's netavark sets up every container network with it (a RUN step of an
# image build included); it is only a Recommends of podman, which apt skips here.
PACKAGES := build-essential cmake pkg-config curl ca-certificates openssl \
	libcivetweb-dev civetweb libjansson-dev libsqlite3-dev sqlite3 libpq-dev \
	libcmocka-dev libcurl4-openssl-dev libssl-dev zlib1g-dev postgresql \
	clang clang-format clang-tidy python3 gdb libargon2-dev nettle-dev libgmp-dev \
	nats-server libnats-dev wrk prometheus libhiredis-dev redis-server \
	nginx-light podman runc debootstrap uidmap netavark aardvark-dns iptables \
	$(if $(shell command -v node),,nodejs) $(if $(shell command -v npm),,npm)

BUILD      := build
TEST_BUILD := build/test
JOBS       ?= $(shell nproc)

.PHONY: deps build run test tsan fuzz bench lint format clean image

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# EXTRACT=catalog (a ;-separated list) leaves modules out of the cleave host (ADR 0010).
EXTRACT ?=

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLEAVE_TESTS=OFF \
		-DCLEAVE_EXTRACT="$(EXTRACT)" >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Container images (deploy/container, docs/adr/0037-images-and-edge-proxy.md) with podman, or docker where present:
# MODULES="catalog inventory payments" builds cleave:host without them and cleave:<m> for
# each; no MODULES builds cleave:monolith. TESTBED=1 also builds cleave-testbed:bookworm
# (PostgreSQL, NATS, nginx for the container topology test).
# IMAGE_JOBS bounds the compiler inside the build.
MODULES    ?=
TESTBED    ?=
IMAGE_JOBS ?= 2
image: deps
	JOBS=$(IMAGE_JOBS) deploy/container/build-images.sh \
		$(if $(TESTBED),--testbed) $(MODULES)

# Builds the monolith on SQLite, applies migrations, seeds the demo catalog when empty,
# and serves on CLEAVE_LISTEN (default 127.0.0.1:8080) until SIGINT/SIGTERM.
run: build
	$(BUILD)/bin/cleave migrate
	$(BUILD)/bin/cleave seed --if-empty
	@echo "a token for the demo customer (README, Walkthrough): curl -s localhost:8080/oauth2/token" \
		"-u cleave-demo:cleave-demo-secret-for-make-run-only -d grant_type=password" \
		"-d username=alice -d password=alice-customer-pw"
	exec $(BUILD)/bin/cleave serve

# Builds with AddressSanitizer + UndefinedBehaviorSanitizer and runs every test.
# Warnings are errors here (CLEAVE_WERROR), as in lint, bench and tsan; never in build/run.
# Among the tests, a short real run of every fuzz target in a clang build (ADR 0026).
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCLEAVE_SANITIZE=ON \
		-DCLEAVE_WERROR=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer over the threaded parts, in a build of its own: the HTTP server, its drain
# and its shutdown, the metrics registry's concurrent recording, the connection pools (SQLite and
# PostgreSQL drivers), logging and migrations from many threads, the bus (relays and consumers, in process and over NATS), the payments
# store's concurrent appends, long-running operations across restarts and a backlog of them
# run by two runners, and the checkout saga's happy path and 20 parallel checkouts, each on
# SQLite and PostgreSQL. Every binary
# those tests start is built with TSan too; a report fails the test (halt_on_error).
TSAN_BUILD := build/tsan
TSAN_TESTS := ^(test_http_server|test_drain|test_metrics|test_cache(_redis)?|test_trace|test_jwt|(inventory|orders)_contract_twins(_pg)?|orders_wait|test_inventory_expiry(_pg)?|test_events.*|test_http_shutdown|test_db_sqlite|test_log|test_migrate|test_pg_driver|test_bus_order.*|test_bus_cleanup(_pg)?|test_payments_store.*|messaging_operation_survives_.*|test_operation_backlog(_pg)?|saga_.*_(happy|concurrency)(_pg)?)$$
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCLEAVE_TSAN=ON \
		-DCLEAVE_WERROR=ON >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 \
		suppressions=$(CURDIR)/tests/tsan.supp" ctest --output-on-failure -j $(JOBS) \
		-R '$(TSAN_TESTS)'

# libFuzzer over every parser of outside input (tests/fuzz, ADR 0026), in a clang build of
# its own with ASan and UBSan: each target runs FUZZ_SECONDS, JOBS at a time, and prints its
# executions; a crash fails, leaving the input in build/fuzz/fuzz-crashes/<target>/.
# FUZZ_TARGETS picks some (FUZZ_TARGETS="codec router").
FUZZ_BUILD   := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCLEAVE_FUZZ=ON -DCLEAVE_TESTS=OFF -DCLEAVE_WERROR=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target cleave_fuzz_targets
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(JOBS) $(FUZZ_TARGETS)

# Benchmarks print figures measured side by side and their ratios; they never fail on timing.
# An optimised build of their own, with the tests' gateways the checkout bench needs. Each
# runs under bench/host.sh, which prints the share of CPU time the hypervisor stole meanwhile.
BENCH_BUILD := build/bench
# Seconds of load in bench_footprint's RSS samples; TARGETS.md's soak is `make bench FOOTPRINT_SECONDS=600`.
FOOTPRINT_SECONDS ?= 60
bench: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLEAVE_TESTS=ON \
		-DCLEAVE_WERROR=ON >/dev/null
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target bench_binding bench_bus bench_db bench_checkout \
		bench_gateway bench_trace bench_advise bench_peers cleave_bench_peers bench_router \
		bench_footprint
	bench/host.sh $(BENCH_BUILD)/bin/bench_router
	bench/host.sh $(BENCH_BUILD)/bin/bench_binding
	bench/host.sh $(BENCH_BUILD)/bin/bench_bus both 5
	bench/host.sh $(BENCH_BUILD)/bin/bench_db
	bench/host.sh $(BENCH_BUILD)/bin/bench_checkout
	bench/host.sh $(BENCH_BUILD)/bin/bench_gateway
	bench/host.sh $(BENCH_BUILD)/bin/bench_trace
	bench/host.sh $(BENCH_BUILD)/bin/bench_advise
	bench/host.sh $(BENCH_BUILD)/bin/bench_peers
	bench/host.sh $(BENCH_BUILD)/bin/bench_footprint $(FOOTPRINT_SECONDS)

# Format check and clang-tidy over our sources, tests included (their own compile database),
# but the out-of-tree app of tests/install, which its test builds against the installed platform.
lint: deps
	cmake -S . -B build/lint -DCMAKE_BUILD_TYPE=Debug -DCLEAVE_WERROR=ON >/dev/null
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
	git ls-files 'platform/*.c' 'modules/*.c' 'app/*.c' 'tests/*.c' 'bench/*.c' \
		':!tests/install/app' | xargs clang-tidy -p build/lint --quiet --warnings-as-errors='*'

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
