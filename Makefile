# kiln - one Makefile for everything.
#
#   make            optimised build: bin/kiln
#   make deps       install the Debian 12 packages kiln and its tests need (only missing ones)
#   make run        deps + build + run kiln in the foreground (embedded default config)
#   make check      deps + lint + builds + unit, promql, conformance and integration tests (against
#                   build/asan/kiln and bin/kiln); ends "N passed, N failed, N skipped" and fails on a
#                   failure or on a skip tests/skips.txt does not list
#   make conformance  Prometheus' PromQL test scripts only ($KILN_PROMQL_TESTS or ../shared/promql-tests)
#   make lint       fails when a C file differs from .clang-format (make format applies it)
#   make fuzz       libFuzzer harnesses (clang) into build/fuzz/
#   make bench      benchmark tools into build/opt/tests/bench/
#   make clean
#
# Sources are found by wildcard: a new file in a subsystem folder, a new
# tests/unit/test_*.c or tests/fuzz/fuzz_*.c is picked up without editing this file.

CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
CLANG ?= clang

DIRS := util config storage query scrape api rules remote
LIB_SRCS := $(foreach d,$(DIRS),$(wildcard $(d)/*.c))
PROTOS := $(foreach d,$(DIRS),$(wildcard $(d)/*.proto))
PROTO_SRCS := $(patsubst %.proto,build/gen/%.pb-c.c,$(PROTOS))
PROTO_HDRS := $(PROTO_SRCS:.c=.h)
# generated sources are kept (not intermediate files make would delete)
.SECONDARY: $(PROTO_SRCS) $(PROTO_HDRS)
MAIN_SRC := cmd/kiln/main.c
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.1.0)
REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS_ALL := -D_GNU_SOURCE -I. -Ibuild/gen -DKILN_VERSION='"$(VERSION)"' \
	-DKILN_REVISION='"$(REVISION)"' -DKILN_BRANCH='"$(BRANCH)"'
CFLAGS_ALL := -std=c11 $(WARN) -g -MMD -MP -pthread
LIBS := -Wl,--as-needed -luv -lhttp_parser -lcurl -lprotobuf-c -lsnappy -lzstd -lz -lyaml -lpcre2-8 \
	-lxxhash -lcares -lssl -lcrypto -lcrypt -lm -lpthread
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -pthread)

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

OPT_FLAGS := -O2
ASAN_FLAGS := -O1 $(SAN) -DKILN_LOCK_DEBUG

.PHONY: all web deps run check test fuzz fuzz-smoke bench clean format lint conformance
.DELETE_ON_ERROR:

all: bin/kiln

# ---- generated protobuf code --------------------------------------------

build/gen/%.pb-c.c build/gen/%.pb-c.h: %.proto
	@mkdir -p build/gen
	protoc-c --c_out=build/gen $<

# ---- variants: build/opt (optimised) and build/asan (sanitizers) -----------

define variant
$(1)_OBJS := $$(patsubst %.c,build/$(1)/%.o,$$(LIB_SRCS) $$(PROTO_SRCS:build/gen/%=%))
$(1)_LIB := build/$(1)/libkiln.a

build/$(1)/%.o: %.c $$(PROTO_HDRS)
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS_ALL) $$(CFLAGS_ALL) $(2) -c $$< -o $$@

build/$(1)/%.pb-c.o: build/gen/%.pb-c.c
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS_ALL) -std=c11 -g -pthread $(2) -c $$< -o $$@

$$($(1)_LIB): $$($(1)_OBJS)
	@mkdir -p $$(@D)
	rm -f $$@
	ar rcs $$@ $$^

build/$(1)/web/ui_assets.o: build/web/ui_assets.c
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS_ALL) -std=c11 $(2) -c $$< -o $$@

build/$(1)/kiln: build/$(1)/cmd/kiln/main.o build/$(1)/web/ui_assets.o $$($(1)_LIB)
	$$(CC) $(2) -pthread -o $$@ $$^ $$(LIBS)

-include $$($(1)_OBJS:.o=.d) build/$(1)/cmd/kiln/main.d
endef

$(eval $(call variant,opt,$(OPT_FLAGS)))
$(eval $(call variant,asan,$(ASAN_FLAGS)))

# ---- the web UI: web/src bundled by esbuild (npm), embedded as C arrays ----

WEB_SRCS := $(wildcard web/src/*) web/build.mjs

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

build/web/dist/app.js: $(WEB_SRCS) web/node_modules/.package-lock.json
	node web/build.mjs build/web/dist

build/web/ui_assets.c: build/web/dist/app.js web/embed.py
	@mkdir -p $(@D)
	python3 web/embed.py build/web/dist $@

web: build/web/ui_assets.c

bin/kiln: build/opt/kiln
	@mkdir -p bin
	cp $< $@.tmp && mv -f $@.tmp $@

# ---- unit tests (Check), always with sanitizers -------------------------

UNIT_BINS := $(patsubst tests/unit/%.c,build/asan/tests/unit/%,$(UNIT_SRCS))

build/asan/tests/unit/%: tests/unit/%.c tests/unit/testutil.h $(asan_LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(ASAN_FLAGS) -o $@ $< $(asan_LIB) $(CHECK_LIBS) $(LIBS)

# The storage stress test again under ThreadSanitizer (storage + util only).
TSAN_BIN := build/asan/tests/unit/test_storage_tsan

$(TSAN_BIN): tests/unit/test_storage.c tests/unit/testutil.h $(wildcard storage/*.c storage/*.h util/*.c util/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -O1 -fsanitize=thread -o $@ tests/unit/test_storage.c \
		$(wildcard storage/*.c) $(wildcard util/*.c) $(CHECK_LIBS) $(LIBS)

# ---- PromQL .test runner (sanitized; one binary from tests/promql/*.c) ---

PROMQL_SRCS := $(wildcard tests/promql/*.c)
PROMQL_BIN := $(if $(PROMQL_SRCS),build/asan/tests/promql/promqltest)

build/asan/tests/promql/promqltest: $(PROMQL_SRCS) $(asan_LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(ASAN_FLAGS) -o $@ $(PROMQL_SRCS) $(asan_LIB) $(LIBS)

# ---- benchmarks ---------------------------------------------------------

BENCH_BINS := $(patsubst tests/bench/%.c,build/opt/tests/bench/%,$(BENCH_SRCS))

build/opt/tests/bench/%: tests/bench/%.c $(opt_LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(OPT_FLAGS) -o $@ $< $(opt_LIB) $(LIBS)

bench: $(BENCH_BINS) bin/kiln

# ---- fuzzing (clang + libFuzzer) -----------------------------------------

FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
fuzz_OBJS := $(patsubst %.c,build/fuzz/%.o,$(LIB_SRCS) $(PROTO_SRCS:build/gen/%=%))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))

build/fuzz/%.o: %.c $(PROTO_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(FUZZ_FLAGS) -c $< -o $@

build/fuzz/%.pb-c.o: build/gen/%.pb-c.c
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS_ALL) -std=c11 -g $(FUZZ_FLAGS) -c $< -o $@

build/fuzz/libkiln.a: $(fuzz_OBJS)
	rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libkiln.a
	$(CLANG) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o $@ $< \
		build/fuzz/libkiln.a $(LIBS)

fuzz: $(FUZZ_BINS)

-include $(fuzz_OBJS:.o=.d)

# ---- top-level commands -------------------------------------------------

deps:
	@sh tests/deps.sh
	@[ tests/otlp/node_modules/.package-lock.json -nt tests/otlp/package-lock.json ] || \
		npm ci --prefix tests/otlp --no-audit --no-fund
	@$(MAKE) --no-print-directory web/node_modules/.package-lock.json

run: deps
	@$(MAKE) --no-print-directory bin/kiln
	./bin/kiln

# check: deps first in its own make so the rest sees the installed tools.
check: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test

test: $(UNIT_BINS) $(TSAN_BIN) $(PROMQL_BIN) build/asan/kiln bin/kiln $(BENCH_BINS) fuzz-smoke
	@python3 tests/run.py --unit build/asan/tests/unit --kiln build/asan/kiln --kiln-opt bin/kiln \
		--promql-bin build/asan/tests/promql/promqltest

# The fuzz harnesses must at least build and run their seed corpus.
fuzz-smoke: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
		n=$$(basename $$f); d=tests/fuzz/corpus/$${n#fuzz_}; \
		if [ -d $$d ]; then $$f -runs=0 $$d >/dev/null 2>&1 || { echo "fuzz seed run failed: $$f"; exit 1; }; fi; \
	done

conformance: build/asan/tests/promql/promqltest
	@python3 tests/run.py --conformance --promql-bin build/asan/tests/promql/promqltest

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')

format:
	clang-format -i $(FORMAT_SRCS)

lint:
	@clang-format --dry-run --Werror $(FORMAT_SRCS) || { echo "lint: run 'make format'"; exit 1; }

clean:
	rm -rf build bin
