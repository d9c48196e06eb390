# Convenience wrapper around CMake: `make demo`, `make test` and `make bench` work on a fresh Debian box.
BUILD       ?= build
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 600
SOAK_SECONDS ?= 1800
RECONNECT_CYCLES ?= 10000

.PHONY: all deps build demo test unit bench asan tsan fuzz fuzz-build soak chaos format clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The README's first command: builds what the demo runs (the CLI, girderd with the workload
# module, the port mapper), then scripts/demo.sh starts a cluster, kills a node and checks
# the recovery (status 0 only when it was seen). The build runs outside make's recursion, so
# that gmake does not print its directories around every line of the demo's output.
demo: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS cmake --build $(BUILD) -j $(JOBS) --target girder girderd girder-epmd
	./scripts/demo.sh $(BUILD)/bin

# Every test: unit tests, integration tests against real Erlang nodes.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Sanitizer builds run the same suite (documented in README.md).
asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DGIRDER_ASAN=ON"
tsan:
	$(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DGIRDER_TSAN=ON"

# Build output goes to stderr so that stdout carries only the BENCH lines and the summary table.
bench:
	@$(MAKE) --no-print-directory build >&2
	@./scripts/run-bench.sh $(BUILD)

fuzz-build: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang-14 -DGIRDER_FUZZ=ON \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build-fuzz -j $(JOBS)

# Runs every fuzz target for FUZZ_SECONDS each (FUZZ_TARGETS to choose).
fuzz: fuzz-build
	@./scripts/run-fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The long reliability run: 30 minutes of honest traffic, churn and hostile peers against one
# girderd with memory, descriptors and threads sampled, then 10,000 reconnect races
# (docs/reliability.md). `make test` runs both briefly.
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) RECONNECT_CYCLES=$(RECONNECT_CYCLES) ./scripts/run-soak.sh $(BUILD)

# Chaos testing against the compose cluster of docker/ (docs/chaos.md): root, Docker and
# debootstrap; not part of `make test`. CHAOS_ROUNDS (24), CHAOS_SEED, CHAOS_ARGS change the run.
chaos: build
	./docker/chaos.sh $(BUILD)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan build-fuzz
