# The two front doors: `make run` and `make test`. Everything else is Meson.
BUILD ?= build
DATA ?= var
LISTEN ?= 127.0.0.1:8443

.PHONY: all deps build run test test-asan build-asan-clang bench bench-backup clean

all: build

deps:
	@./scripts/install-deps
	@./scripts/install-test-tools

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	meson compile -C $(BUILD)

run: build
	@./scripts/demo-run $(BUILD)/coffre $(DATA) $(LISTEN)

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

# Memory safety (issue 7): clang, AddressSanitizer + UndefinedBehaviorSanitizer, -O0, and no
# -ftrivial-auto-var-init (meson.build adds it for gcc only), so a variable used or freed before
# it is set shows up instead of reading as zero. A build-asan made by another compiler is redone.
ASAN_BUILD ?= build-asan
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1

test-asan: build-asan-clang
	$(SAN_ENV) meson test -C $(ASAN_BUILD) --suite unit --suite integration --print-errorlogs --num-processes 2 \
		--timeout-multiplier 3

build-asan-clang: deps
	@if [ -f $(ASAN_BUILD)/build.ninja ] && ! grep -q '^ command = clang ' $(ASAN_BUILD)/build.ninja; then \
		echo "$(ASAN_BUILD) was not made with clang: setting it up again"; rm -rf $(ASAN_BUILD); fi
	[ -f $(ASAN_BUILD)/build.ninja ] || CC=clang meson setup $(ASAN_BUILD) --buildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false -Dtest_hooks=true
	meson configure $(ASAN_BUILD) -Dtest_hooks=true  # the sandbox probes, also in an older build-asan
	meson compile -C $(ASAN_BUILD)

bench: build
	./bench/run $(BUILD)/coffre
	./bench/checkpoint_latency.py $(BUILD)/coffre 100
	$(BUILD)/bench/audit-bench

# coffre's backups against restic on the same data and disk (issue 12): 2 GiB + 1 GiB at
# SCALE=1; `make bench-backup SCALE=0.1` for a run of a few minutes on a small machine.
SCALE ?= 1
bench-backup: build
	./bench/backup_vs_restic.py $(BUILD)/coffre --scale $(SCALE)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
