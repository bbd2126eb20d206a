# The README's two commands: `make run` and `make test`. Both install what they need
# from Debian's repositories first (apt-get update only when something is missing).

# Node.js and npm run the docs tests' tools (tests/docs/package.json), which need Node.js
# 20.19 or later; Debian's packages are installed only when there is no node or no npm,
# since a Node.js installed otherwise (which ships its own npm) conflicts with them.
PACKAGES := build-essential cmake pkg-config curl ca-certificates \
	libcivetweb-dev civetweb libjansson-dev libsqlite3-dev sqlite3 libpq-dev \
	libcmocka-dev libcurl4-openssl-dev libssl-dev zlib1g-dev postgresql \
	clang clang-format clang-tidy python3 \
	nats-server libnats-dev \
	$(if $(shell command -v node),,nodejs) $(if $(shell command -v npm),,npm)

BUILD      := build
TEST_BUILD := build/test
JOBS       ?= $(shell nproc)

.PHONY: deps build run test bench lint format clean

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

# Builds the monolith on SQLite, applies migrations, seeds the demo catalog when empty,
# and serves on CLEAVE_LISTEN (default 127.0.0.1:8080) until SIGINT/SIGTERM.
run: build
	$(BUILD)/bin/cleave migrate
	$(BUILD)/bin/cleave seed --if-empty
	exec $(BUILD)/bin/cleave serve

# Builds with AddressSanitizer + UndefinedBehaviorSanitizer and runs every test.
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCLEAVE_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS)

# Benchmarks print figures measured side by side and their ratios; they never fail on timing.
# An optimised build of their own, with the tests' gateways the checkout bench needs.
BENCH_BUILD := build/bench
bench: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLEAVE_TESTS=ON >/dev/null
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target bench_binding bench_bus bench_db bench_checkout
	$(BENCH_BUILD)/bin/bench_binding
	$(BENCH_BUILD)/bin/bench_bus
	$(BENCH_BUILD)/bin/bench_db
	$(BENCH_BUILD)/bin/bench_checkout

# Format check and clang-tidy over our sources, tests included (their own compile database).
lint: deps
	cmake -S . -B build/lint -DCMAKE_BUILD_TYPE=Debug >/dev/null
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
	git ls-files 'platform/*.c' 'modules/*.c' 'app/*.c' 'tests/*.c' 'bench/*.c' | \
		xargs clang-tidy -p build/lint --quiet --warnings-as-errors='*'

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
