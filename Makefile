# The two front doors: `make run` and `make test`. Everything else is Meson.
BUILD ?= build
DATA ?= var
LISTEN ?= 127.0.0.1:8443

.PHONY: all deps build run test test-asan bench clean

all: build

deps:
	@./scripts/install-deps

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	meson compile -C $(BUILD)

run: build
	@./scripts/demo-run $(BUILD)/coffre $(DATA) $(LISTEN)

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

test-asan: deps
	[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug -Dtest_hooks=true
	meson compile -C build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C build-asan --suite unit --suite integration --print-errorlogs --num-processes 2

bench: build
	./bench/run $(BUILD)/coffre
	./bench/checkpoint_latency.py $(BUILD)/coffre 100
	$(BUILD)/bench/audit-bench

clean:
	rm -rf $(BUILD) build-asan
