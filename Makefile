# MeMS - build, install, test, demo, bench.
#
#   make                  libmems.a and libmems.so (build/)
#   make demo             build and run the examples
#   make check            build and run the Check suite
#   make check-asan       the suite under AddressSanitizer + UBSan
#   make check-tsan       the threaded tests under ThreadSanitizer
#   make bench            benchmarks, printed as ratios
#   make install PREFIX=DIR   (make uninstall PREFIX=DIR removes it)
#
# make MEMS_PAGE_SIZE=N sets the MeMS page size (a power of two, at least
# the OS page).

CC       ?= cc
PREFIX   ?= /usr/local
BUILD    ?= build
MEMS_PAGE_SIZE ?= 4096
VERSION  := 0.1.0
SOMAJOR  := 0

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Iinclude -Isrc \
	      -DMEMS_PAGE_SIZE=$(MEMS_PAGE_SIZE) -pthread $(if $(MEMS_DEBUG),-DMEMS_DEBUG)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LDLIBS   := -pthread -luring

SRCS     := src/mems.c src/ptr.c src/boot.c src/freelist.c src/meta.c src/span.c \
	    src/pager.c src/evict.c src/store.c src/check.c src/small.c src/purge.c src/fail.c src/trace.c src/stats.c src/options.c src/diag.c
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
HDRS     := $(wildcard include/*.h src/*.h)

LIBA     := $(BUILD)/libmems.a
LIBSO    := $(BUILD)/libmems.so.$(VERSION)
PRELOAD  := $(BUILD)/libmems-preload.so

TEST_SRCS := $(wildcard tests/check_*.c)
TEST_HELPERS := $(BUILD)/tests/user_helper $(BUILD)/tests/preload_edge \
	$(BUILD)/tests/preload_stress $(BUILD)/tests/preload_ctor $(BUILD)/tests/libpreload_dso.so
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

.PHONY: all deps demo check check-asan check-tsan check-debug check-pagesize fuzz check-valgrind warnings bench bench-misses install uninstall clean

TRACE_TOOL := $(BUILD)/tools/mems-trace

all: $(LIBA) $(BUILD)/libmems.so $(PRELOAD) $(TRACE_TOOL)

$(TRACE_TOOL): tools/mems-trace.c src/trace.h include/mems.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DMEMS_VERSION='"$(VERSION)"' -o $@ $< -lm

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<

$(LIBA): $(OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(LIBSO): $(OBJS)
	$(CC) -shared -Wl,-soname,libmems.so.$(SOMAJOR) -Wl,-Bsymbolic-functions -o $@ $^ $(LDLIBS)

# the malloc family on MeMS, for LD_PRELOAD
$(BUILD)/obj/preload.o: src/preload.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -fno-builtin -c -o $@ $<

$(PRELOAD): $(OBJS) $(BUILD)/obj/preload.o
	$(CC) -shared -Wl,-soname,libmems-preload.so -Wl,-Bsymbolic-functions -o $@ $^ $(LDLIBS)

$(BUILD)/libmems.so: $(LIBSO)
	ln -sf libmems.so.$(VERSION) $(BUILD)/libmems.so.$(SOMAJOR)
	ln -sf libmems.so.$(VERSION) $@

# Packages a fresh Debian machine lacks (check, liburing-dev): installed
# when missing, saying so.
deps:
	@sh tools/deps.sh

# ---------------------------------------------------------------- examples

$(BUILD)/examples/%: examples/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

demo: deps $(BUILD)/examples/example $(BUILD)/examples/sparse $(BUILD)/examples/capped \
		$(TRACE_TOOL) $(PRELOAD)
	@echo "== examples/example.c: the assignment's example =="
	$(BUILD)/examples/example
	@echo
	@echo "== examples/sparse.c: a large allocation touched sparsely =="
	$(BUILD)/examples/sparse
	@echo
	@echo "== examples/capped.c: 256 MiB under a 32 MiB resident cap =="
	$(BUILD)/examples/capped
	@echo
	@echo "== mems-trace: where and when sparse.c's heap faults =="
	$(TRACE_TOOL) --no-preload -o $(BUILD)/demo.trc --svg $(BUILD)/demo-trace.svg \
		--json $(BUILD)/demo-trace.json -- $(BUILD)/examples/sparse > /dev/null
	$(TRACE_TOOL) report $(BUILD)/demo.trc
	@echo
	@echo "heatmap: $(BUILD)/demo-trace.svg; Perfetto/chrome://tracing: $(BUILD)/demo-trace.json"

# ---------------------------------------------------------------- tests

$(BUILD)/tests/check_mems: $(TEST_SRCS) tests/testutil.h $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DMEMS_TEST_VERSION='"$(VERSION)"' -o $@ $(TEST_SRCS) $(LIBA) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tests/user_helper: tests/user_helper.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# Programs run under the preload library: plain builds, no MeMS linked in
# (mems.h for its types only: they find MeMS's functions with dlsym).
$(BUILD)/tests/preload_%: tests/preload_%.c include/mems.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra $(EXTRA_CFLAGS) -Iinclude -pthread -o $@ $< -ldl

$(BUILD)/tests/libpreload_dso.so: tests/preload_dso.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra $(EXTRA_CFLAGS) -shared -fPIC -o $@ $<

check: deps
	@$(MAKE) --no-print-directory $(BUILD)/tests/check_mems $(TEST_HELPERS) \
		$(BUILD)/examples/example $(BUILD)/examples/sparse $(PRELOAD) $(TRACE_TOOL)
	@sh tests/install_test.sh
	MEMS_TEST_BUILD=$(BUILD) $(if $(MEMS_EXCLUDE_SUITES),MEMS_EXCLUDE_SUITES="$(MEMS_EXCLUDE_SUITES)") \
		$(if $(MEMS_SUITES),MEMS_SUITES="$(MEMS_SUITES)") $(BUILD)/tests/check_mems

# The suite under ASan + UBSan.  An ASan-built preload library cannot be
# preloaded into programs built without ASan (and ASan's own malloc would
# win), so the suites that preload it run with the library under UBSan only.
check-asan: deps
	@$(MAKE) --no-print-directory check BUILD=build-asan MEMS_EXCLUDE_SUITES="preload trace evict-real" \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	@$(MAKE) --no-print-directory check BUILD=build-ubsan MEMS_SUITES="preload trace evict-real" \
		CFLAGS="-O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined"

# A debug build (mems_check() before every unlock of the allocator lock,
# abort on the first inconsistency) running the suites that drive the
# allocator directly; the real programs would take hours under it.
check-debug: deps
	@$(MAKE) --no-print-directory BUILD=build-debug MEMS_DEBUG=1 build-debug/tests/check_mems \
		build-debug/tests/user_helper build-debug/examples/example build-debug/examples/sparse
	MEMS_TEST_BUILD=build-debug MEMS_SUITES="freelist api scenario ptr check evict small" \
		CK_DEFAULT_TIMEOUT=600 build-debug/tests/check_mems

# The whole suite with MeMS pages of 16 KiB (four OS pages), as
# make MEMS_PAGE_SIZE=16384 builds it.
check-pagesize: deps
	@$(MAKE) --no-print-directory check BUILD=build-p16k MEMS_PAGE_SIZE=16384

# libFuzzer (clang): byte strings become calls on both APIs, checked against
# a reference model and mems_check() (tests/fuzz_mems.c).  Runs for
# FUZZ_SECONDS on a copy of the seed corpus in tests/fuzz-corpus/; to run
# longer: make fuzz FUZZ_SECONDS=3600 (new inputs go to build-fuzz/corpus).
FUZZ_SECONDS ?= 60
build-fuzz/fuzz_mems: tests/fuzz_mems.c $(SRCS) $(HDRS)
	@mkdir -p build-fuzz
	clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -Iinclude -Isrc -DMEMS_PAGE_SIZE=$(MEMS_PAGE_SIZE) \
		-pthread -o $@ tests/fuzz_mems.c $(SRCS) -luring

fuzz: deps build-fuzz/fuzz_mems
	@mkdir -p build-fuzz/corpus
	cp -n tests/fuzz-corpus/* build-fuzz/corpus/
	build-fuzz/fuzz_mems -max_total_time=$(FUZZ_SECONDS) -max_len=600 -print_final_stats=1 \
		-timeout=30 build-fuzz/corpus

# The assignment's example under valgrind memcheck, in the pager mode valgrind
# supports (kernel: valgrind knows nothing of userfaultfd) and with a span
# that fits valgrind's address space.
check-valgrind: $(BUILD)/examples/example $(BUILD)/examples/sparse
	MEMS_PAGER=kernel MEMS_SPAN_SIZE=2G valgrind -q --error-exitcode=1 --leak-check=full \
		--errors-for-leak-kinds=definite $(BUILD)/examples/example > /dev/null
	MEMS_PAGER=kernel MEMS_SPAN_SIZE=2G valgrind -q --error-exitcode=1 --leak-check=full \
		--errors-for-leak-kinds=definite $(BUILD)/examples/sparse > /dev/null
	@echo "valgrind: examples/example.c and examples/sparse.c clean"

check-tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan \
		CFLAGS="-O1 -g -fsanitize=thread" build-tsan/tests/check_mems build-tsan/tests/user_helper build-tsan/examples/example
	MEMS_TEST_BUILD=build-tsan CK_RUN_CASE=threads build-tsan/tests/check_mems

# Everything (library, tests, examples, bench) with gcc and clang, warnings
# as errors.
warnings: deps
	@for cc in gcc clang; do \
		echo "== $$cc -Wall -Wextra -Werror =="; \
		$(MAKE) --no-print-directory -s BUILD=build-$$cc CC=$$cc EXTRA_CFLAGS=-Werror \
			build-$$cc/libmems.so build-$$cc/libmems-preload.so build-$$cc/tests/check_mems \
			build-$$cc/tests/user_helper build-$$cc/tests/preload_edge build-$$cc/tests/preload_stress \
			build-$$cc/tests/preload_ctor build-$$cc/tests/libpreload_dso.so \
			build-$$cc/examples/example build-$$cc/examples/sparse build-$$cc/examples/capped \
			build-$$cc/bench/bench_core \
			build-$$cc/bench/bench_evict build-$$cc/bench/seed_loop \
			build-$$cc/bench/churn build-$$cc/bench/bench_real build-$$cc/bench/bench_report \
			|| exit 1; \
	done

# ---------------------------------------------------------------- bench

$(BUILD)/bench/%: bench/%.c bench/benchutil.h bench/seedpattern.h $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBA) $(LDLIBS) -lm

# plain programs, run under the preload library by bench_real
$(BUILD)/bench/churn: bench/churn.c bench/benchutil.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra $(EXTRA_CFLAGS) -pthread -o $@ $<

$(BUILD)/bench/bench_real: bench/bench_real.c bench/benchutil.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra $(EXTRA_CFLAGS) -o $@ $<

$(BUILD)/bench/bench_report: bench/bench_report.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra $(EXTRA_CFLAGS) -o $@ $<

# Every comparison in one run, then the table of targets and the JSON
# (build/bench/bench.json).  The peers (jemalloc, mimalloc, tcmalloc) are
# installed first when missing.
BENCH_RESULTS := $(BUILD)/bench/results.txt
bench: deps $(BUILD)/bench/bench_core $(BUILD)/bench/bench_evict $(BUILD)/bench/churn \
		$(BUILD)/bench/bench_real $(BUILD)/bench/bench_report $(PRELOAD)
	@sh tools/deps.sh bench
	@rm -f $(BENCH_RESULTS)
	MEMS_BENCH_RESULTS=$(BENCH_RESULTS) $(BUILD)/bench/bench_core
	@echo
	$(BUILD)/bench/bench_evict
	@echo
	MEMS_BENCH_RESULTS=$(BENCH_RESULTS) $(BUILD)/bench/bench_real $(BUILD)
	@echo
	$(BUILD)/bench/bench_report $(BENCH_RESULTS) $(BUILD)/bench/bench.json

# The seed-API scaling pattern counted under cachegrind: instructions and
# cache misses per operation (needs valgrind; not part of make bench)
bench-misses: $(BUILD)/bench/seed_loop
	sh tools/bench-misses.sh $(BUILD)

# ---------------------------------------------------------------- install

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(TRACE_TOOL) $(DESTDIR)$(PREFIX)/bin/
	sed 's/^#define MEMS_PAGE_SIZE 4096$$/#define MEMS_PAGE_SIZE $(MEMS_PAGE_SIZE)/' \
		include/mems.h > $(DESTDIR)$(PREFIX)/include/mems.h
	chmod 644 $(DESTDIR)$(PREFIX)/include/mems.h
	install -m 644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBSO) $(PRELOAD) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libmems.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libmems.so.$(SOMAJOR)
	ln -sf libmems.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libmems.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' mems.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/mems.pc

# removes what install put there (the directories stay)
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mems-trace $(DESTDIR)$(PREFIX)/include/mems.h \
		$(DESTDIR)$(PREFIX)/lib/libmems.a $(DESTDIR)$(PREFIX)/lib/libmems.so.$(VERSION) \
		$(DESTDIR)$(PREFIX)/lib/libmems.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libmems.so \
		$(DESTDIR)$(PREFIX)/lib/libmems-preload.so $(DESTDIR)$(PREFIX)/lib/pkgconfig/mems.pc

clean:
	rm -rf build build-asan build-ubsan build-tsan build-gcc build-clang build-debug build-p16k build-fuzz
