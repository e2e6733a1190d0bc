# Portico - the two commands a newcomer needs:
#   make run    set up, build (release) and start Portico with the example configuration
#   make test   set up, build (ASan+UBSan, warnings as errors) and run every test
# Other targets: build, debug, asan, unit, e2e, fuzz, valgrind, bench, format, clean.

BUILD       ?= build/release
BUILD_DEBUG ?= build/debug
BUILD_ASAN  ?= build/asan
BUILD_FUZZ  ?= build/fuzz
JOBS        ?= $(shell nproc)
PYTHON      ?= /usr/bin/python3
FUZZ_SECONDS ?= 30
CONFIG      ?= examples/portico.yaml

.PHONY: all setup build debug asan run test unit e2e fuzz fuzz-build valgrind bench format format-check clean

all: build

setup:
	@scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPT_TESTS=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

debug: setup
	cmake -S . -B $(BUILD_DEBUG) -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(BUILD_DEBUG) -j $(JOBS)

asan: setup
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DPT_ASAN=ON -DPT_WERROR=ON >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build
	scripts/run-example.sh $(BUILD)/portico $(CONFIG)

test: asan
	@echo "== unit tests (cmocka, ASan+UBSan)"
	cd $(BUILD_ASAN) && ctest --output-on-failure
	@echo "== end-to-end tests (pytest, real binary, ASan+UBSan)"
	$(MAKE) --no-print-directory e2e PORTICO_BIN=$(abspath $(BUILD_ASAN))/portico
	@echo "== fuzz targets ($(FUZZ_SECONDS) s each)"
	$(MAKE) --no-print-directory fuzz
	@echo "== valgrind smoke path"
	$(MAKE) --no-print-directory valgrind
	@echo "== clang-format"
	$(MAKE) --no-print-directory format-check
	@echo "== all tests passed"

unit: asan
	cd $(BUILD_ASAN) && ctest --output-on-failure

PORTICO_BIN ?= $(abspath $(BUILD_ASAN))/portico
e2e:
	PORTICO_BIN=$(PORTICO_BIN) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

fuzz-build: setup
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DPT_FUZZ=ON -DPT_TESTS=OFF -DPT_WERROR=ON >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS)

fuzz: fuzz-build
	scripts/fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

valgrind: debug
	scripts/valgrind-smoke.sh $(BUILD_DEBUG)/portico

bench: build
	bench/run.sh $(BUILD)/portico

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
