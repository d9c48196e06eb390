# Convenience wrapper around CMake: `make test` and `make bench` work on a fresh Debian box.
BUILD       ?= build
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 600

.PHONY: all deps build test unit bench asan tsan fuzz fuzz-build chaos format clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Every test: unit tests, integration tests against real Erlang nodes.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Sanitizer builds run the same suite (documented in README.md).
asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DGIRDER_ASAN=ON"
tsan:
	$(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DGIRDER_TSAN=ON"

# Build output goes to stderr so that stdout carries only the BENCH lines.
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

# Chaos testing against the compose cluster of docker/ (docs/chaos.md): root, Docker and
# debootstrap; not part of `make test`. CHAOS_ROUNDS (24), CHAOS_SEED, CHAOS_ARGS change the run.
chaos: build
	./docker/chaos.sh $(BUILD)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan build-fuzz
