# The project's commands. On a fresh Debian 12 machine (as root):
#   make run    install what is missing, build (release), run the main job
#   make test   install what is missing, build, run every test label CI runs
#               (and the unit + integration tests again under ASan+UBSan)
#   make bench  build and run the end-to-end benchmarks, printing their result lines
SHELL := /bin/bash
JOBS ?= 2
CMAKE_COMMON := -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
BUILD ?= build
RUN_DIR ?= data/standalone
LISTEN ?= 127.0.0.1:4180
NODE_LISTEN ?= 127.0.0.1:4181
METRICS ?= 127.0.0.1:9464
BROKER_LISTEN ?= 127.0.0.1:6650
# Labels CI runs (scale and soak runs are opt-in).
TEST_LABELS ?= unit|integration|fault|fuzz
ASAN_LABELS ?= unit|integration

.PHONY: deps build build-release run test test-release test-asan bench format clean

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_COMMON) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDLOG_FAILPOINTS=ON

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

build-release: deps
	@[ -f build-release/build.ninja ] || cmake -S . -B build-release $(CMAKE_COMMON) \
	    -DCMAKE_BUILD_TYPE=Release -DDLOG_FAILPOINTS=OFF -DDLOG_FUZZ=OFF
	cmake --build build-release -j $(JOBS) --target dlogd dlog

# dlogd standalone formats its data dir on the first run by itself.
run: build-release
	@mkdir -p $(RUN_DIR)
	exec ./build-release/server/dlogd standalone --data-dir $(RUN_DIR) --listen $(LISTEN) \
	    --broker-listen $(BROKER_LISTEN) --node-listen $(NODE_LISTEN) --metrics-listen $(METRICS)

# Every label CI runs, then the unit and integration tests again under ASan+UBSan.
test: test-release test-asan

test-release: build
	cd $(BUILD) && ctest -L '$(TEST_LABELS)' --output-on-failure -j 1

test-asan: deps
	@[ -f build-asan/build.ninja ] || cmake -S . -B build-asan $(CMAKE_COMMON) \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDLOG_SANITIZE=ON -DDLOG_FUZZ=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && DLOG_TEST_TIME_SCALE=3 ctest -L '$(ASAN_LABELS)' --output-on-failure -j 1

bench: build
	@bash benchmarks/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build build-release build-asan
