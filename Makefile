# enchufe - a small TCP application server in C.
#
#   make          build bin/enchufe-server, bin/enchufe-cli and bin/enchufe-bench
#   make run      build and start the server in the foreground
#   make test     build and run every test (also under ASan/UBSan and TSan)
#   make lint     static analysis; make fuzz: a bounded libFuzzer pass
#   make bench    the benchmark matrix against Redis (a few minutes)
#   make install  PREFIX=/usr/local (DESTDIR for staging)
#
# Missing build dependencies are installed with apt-get when run as root.

SHELL   := /bin/bash
CC      ?= cc
CSTD    := -std=c11 -D_GNU_SOURCE
# Warnings are errors when testing (make test, CI), not in a user's plain
# build: the next compiler's new warnings must not break it.
WERROR  := $(if $(filter test test-% lint fuzz%,$(MAKECMDGOALS)),-Werror)
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes $(WERROR)
OPT     ?= -O2 -g
PKGS    := jansson yajl libmicrohttpd libsystemd openssl
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) -Iinclude $(shell pkg-config --cflags $(PKGS)) $(CPPFLAGS) $(CFLAGS)
LIBS    = $(shell pkg-config --libs $(PKGS)) -lpthread -lm
TESTLIBS = $(shell pkg-config --libs criterion)

ASAN    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN    := -fsanitize=thread

LIB_SRC := $(filter-out src/server_main.c src/cli_main.c,$(wildcard src/*.c))
TEST_SRC := $(wildcard test/test_*.c) test/support.c test/json_agree.c
STRESS  := stress_queue stress_server stress_hostile stress_reload
# Counts a process's heap allocations under LD_PRELOAD (rule below).
ALLOC_COUNT := build/alloc_count.so

OBJ      := $(LIB_SRC:src/%.c=build/obj/%.o)
ASAN_OBJ := $(LIB_SRC:src/%.c=build/asan/%.o)
TSAN_OBJ := $(LIB_SRC:src/%.c=build/tsan/%.o)

# Every object depends on the flags it was built with (rule at the end).
FLAGS_STAMP := build/flags.stamp

SERVER_ARGS ?=
# V=1 shows every compiler command.
Q := $(if $(V),,@)

.PHONY: all run test test-unit test-asan test-tsan test-python test-install install uninstall \
        test-dissector deps-dissector test-multihost deps deps-test clean \
        fuzz fuzz-build lint deps-fuzz deps-lint bench deps-bench deb deps-deb test-systemd \
        deps-systemd json-libs deps-json-libs
.DELETE_ON_ERROR:
.SECONDARY:

all: bin/enchufe-server bin/enchufe-cli bin/enchufe-bench

run: all
	./bin/enchufe-server $(SERVER_ARGS)

test: deps-test all build/tests build/asan/tests $(STRESS:%=build/tsan/%) $(ALLOC_COUNT)
	$(MAKE) --no-print-directory test-unit test-asan test-tsan test-python test-install \
	  test-dissector test-multihost test-systemd

# A throwaway PKI for the TLS tests, made at test time (tools/make_test_certs.sh).
TLS_CERTS := build/tls/server.pem
$(TLS_CERTS): tools/make_test_certs.sh
	@tools/make_test_certs.sh build/tls

test-unit: build/tests all $(TLS_CERTS) $(ALLOC_COUNT)
	ENCHUFE_BIN=bin tools/run_suites.sh build/tests build/tests.log --jobs=2

test-asan: build/asan/tests all $(TLS_CERTS) $(ALLOC_COUNT)
	ENCHUFE_BIN=bin UBSAN_OPTIONS=print_stacktrace=1 \
	  tools/run_suites.sh --sanitized build/asan/tests build/asan/tests.log --jobs=2

# Criterion itself aborts under TSan, so these are plain programs that
# exit non-zero on any failed check or reported race.
test-tsan: $(STRESS:%=build/tsan/%) $(TLS_CERTS)
	@for t in $(STRESS); do echo "== $$t (ThreadSanitizer)"; \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" ./build/tsan/$$t || exit 1; done

# The integration tests in Python (test/python), under Debian's pytest:
# the tutorial's programs against ours, TLS against openssl and stunnel4,
# a real Prometheus, socket activation, HAProxy and --reuseport in network
# namespaces, and the help against the man pages and the README.
test-python: all $(TLS_CERTS)
	pytest-3 -v -rA test/python --bin bin --certs build/tls

test-install: all
	tools/test_install.sh

# The package under a real systemd, booted with systemd-nspawn
# (tools/test_systemd.sh): install, restart and reload under load, the
# watchdog, the hardening score, then an upgrade to a package one step
# up, remove and purge.
test-systemd: deps-systemd deb
	tools/build_deb.sh build/deb-newer "$$(dpkg-parsechangelog -S Version)+1"
	tools/test_systemd.sh build/deb/enchufe_*_amd64.deb build/deb-newer/enchufe_*_amd64.deb

test-dissector: deps-dissector all $(TLS_CERTS)
	ENCHUFE_BIN=bin ENCHUFE_TLS_DIR=build/tls tools/wireshark/test_dissector.sh

# A name with several addresses, in a private /etc/hosts (mount namespace).
test-multihost: all
	tools/test_multihost.sh bin

deps-dissector:
	@tools/deps.sh dissector

# --- install ----------------------------------------------------------------

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
MANDIR  := $(DESTDIR)$(PREFIX)/share/man/man1
DATADIR := $(DESTDIR)$(PREFIX)/share/enchufe
PROGRAMS := enchufe-server enchufe-cli enchufe-bench

# The systemd units go beside the other examples, to be copied, unless
# UNITDIR says where (a package: /lib/systemd/system); their paths are
# made to match PREFIX.
UNITS      := enchufe.service enchufe.socket enchufe-tls.socket
LIBEXECDIR := $(DESTDIR)$(PREFIX)/libexec/enchufe
UNITDIR    ?= $(PREFIX)/share/enchufe/contrib

install: all
	install -d $(BINDIR) $(MANDIR) $(DATADIR)/wireshark $(DATADIR)/contrib/haproxy \
	  $(LIBEXECDIR) $(DESTDIR)$(UNITDIR)
	install -m 755 $(PROGRAMS:%=bin/%) $(BINDIR)/
	install -m 644 $(PROGRAMS:%=man/%.1) $(MANDIR)/
	install -m 755 contrib/enchufe-reload $(LIBEXECDIR)/
	install -m 644 tools/wireshark/enchufe.lua $(DATADIR)/wireshark/
	for u in $(UNITS); do \
	  sed 's|/usr/local/|$(PREFIX)/|g' contrib/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	install -m 644 contrib/enchufe.default $(DATADIR)/contrib/
	install -m 644 contrib/haproxy/enchufe.cfg $(DATADIR)/contrib/haproxy/

# The Debian package (build/deb/enchufe_VERSION_ARCH.deb, and its
# -dbgsym), built from a copy of the tree; lintian must find no error and
# no warning (tools/build_deb.sh).
deb: deps deps-deb
	tools/build_deb.sh build/deb

uninstall:
	rm -f $(PROGRAMS:%=$(BINDIR)/%) $(PROGRAMS:%=$(MANDIR)/%.1) $(LIBEXECDIR)/enchufe-reload
	rm -f $(UNITS:%=$(DESTDIR)$(UNITDIR)/%)
	rm -f $(DATADIR)/wireshark/enchufe.lua $(DATADIR)/contrib/enchufe.default \
	  $(DATADIR)/contrib/haproxy/enchufe.cfg
	-rmdir $(LIBEXECDIR) $(DATADIR)/wireshark $(DATADIR)/contrib/haproxy $(DATADIR)/contrib \
	  $(DATADIR) 2>/dev/null

# --- dependencies -----------------------------------------------------------

deps:
	@tools/deps.sh build

deps-test:
	@tools/deps.sh test

deps-deb:
	@tools/deps.sh deb

deps-systemd: deps-deb
	@tools/deps.sh systemd

# --- build ------------------------------------------------------------------

build/obj/%.o: src/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

build/asan/%.o: src/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(ASAN) -MMD -MP -c $< -o $@

build/tsan/%.o: src/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(TSAN) -MMD -MP -c $< -o $@

# Made afresh, so that the object of a source file removed since is not
# left in it.
build/libenchufe.a: $(OBJ)
	rm -f $@
	$(AR) rcs $@ $^

bin/enchufe-server: build/obj/server_main.o build/libenchufe.a
	@mkdir -p bin
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) $^ $(LIBS) -o $@

BENCH_LIB_SRC := $(filter-out bench/bench_main.c,$(wildcard bench/*.c))
BENCH_OBJ := $(BENCH_LIB_SRC:bench/%.c=build/obj/bench/%.o)
ASAN_BENCH_OBJ := $(BENCH_LIB_SRC:bench/%.c=build/asan/bench/%.o)

build/obj/bench/%.o: bench/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Ibench -MMD -MP -c $< -o $@

build/asan/bench/%.o: bench/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(ASAN) -Ibench -MMD -MP -c $< -o $@

bin/enchufe-bench: build/obj/bench/bench_main.o $(BENCH_OBJ) build/libenchufe.a
	@mkdir -p bin
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) $^ $(LIBS) -o $@

bin/enchufe-cli: build/obj/cli_main.o build/libenchufe.a
	@mkdir -p bin
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) $^ $(LIBS) -o $@

build/obj/test/%.o: test/%.c $(FLAGS_STAMP) | deps-test
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Itest -Ibench -MMD -MP -c $< -o $@

build/asan/test/%.o: test/%.c $(FLAGS_STAMP) | deps-test
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(ASAN) -Itest -Ibench -MMD -MP -c $< -o $@

build/tsan/test/%.o: test/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(TSAN) -Itest -Ibench -MMD -MP -c $< -o $@

build/tsan/bench/%.o: bench/%.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ALL) $(TSAN) -Ibench -MMD -MP -c $< -o $@

build/tests: $(TEST_SRC:test/%.c=build/obj/test/%.o) $(BENCH_OBJ) $(OBJ)
	$(CC) $(CFLAGS_ALL) $^ $(TESTLIBS) $(LIBS) -o $@

build/asan/tests: $(TEST_SRC:test/%.c=build/asan/test/%.o) build/asan/test/asan_main.o \
                  $(ASAN_BENCH_OBJ) $(ASAN_OBJ)
	$(CC) $(CFLAGS_ALL) $(ASAN) $^ $(TESTLIBS) $(LIBS) -o $@

# The hostile clients of enchufe-bench --hostile (bench/siege.c) attack
# the server in stress_hostile.
build/tsan/stress_%: build/tsan/test/stress_%.o build/tsan/test/support.o \
                     build/tsan/bench/siege.o $(TSAN_OBJ)
	$(CC) $(CFLAGS_ALL) $(TSAN) $^ $(LIBS) -o $@

# Counts a process's heap allocations under LD_PRELOAD: bench/cost.py and
# test_alloc.c measure allocations per request with it.
$(ALLOC_COUNT): tools/alloc_count.c $(FLAGS_STAMP) | deps
	@mkdir -p $(@D)
	$(Q)$(CC) $(CSTD) $(WARN) -O2 -fPIC -shared $< -o $@ -ldl

# --- benchmarks -------------------------------------------------------------

deps-bench:
	@tools/deps.sh bench

# The matrix against enchufe-server and Redis, a few minutes in all
# (BENCH_SECONDS per row); results land in bench/results/.
BENCH_SECONDS ?= 5
bench: all deps-bench $(TLS_CERTS) $(ALLOC_COUNT)
	python3 bench/run.py --seconds $(BENCH_SECONDS) --certs build/tls

# The C JSON libraries Debian packages, on the tutorial's request: ns and
# heap allocations per read, and which hostile inputs each refuses.
JSON_LIBS := JANSSON:-ljansson JANSSON_ARENA:-ljansson JSON_C:-ljson-c CJSON:-lcjson \
             YAJL:-lyajl YAJL_ARENA:-lyajl JSONPARSER:-ljsonparser JSMN:
json-libs: deps deps-json-libs
	@mkdir -p build/json-libs
	@for lib in $(JSON_LIBS); do name=$${lib%%:*}; \
	  $(CC) -std=gnu11 -O2 -DJSON_LIB_$$name -I/usr/include/json-c bench/json_libs/json_libs.c \
	    -o build/json-libs/$$name $${lib#*:} || exit 1; done
	@echo "library | ns per read | heap allocations per read | duplicate key | invalid UTF-8 |" \
	  "trailing bytes | escaped NUL | 23-digit integer | 100,000 levels"
	@for lib in $(JSON_LIBS); do build/json-libs/$${lib%%:*} 200000 | \
	  awk -F'\t' '{printf "%s%s", (NR > 1 ? " | " : ""), $$2} END {print ""}'; done

deps-json-libs:
	@tools/deps.sh json-libs

# --- fuzzing (libFuzzer) and static analysis --------------------------------

FUZZ_TARGETS := fuzz_frame fuzz_request fuzz_request_json
FUZZ_SECONDS ?= 30
# The codec and the handlers alone: no socket code is linked in.
FUZZ_SRC := src/frame.c src/app.c src/protocol.c src/answers.c src/swap.c src/json_alloc.c \
            src/request_json.c src/json_text.c src/utf8.c test/json_agree.c
FUZZ_CFLAGS = $(CSTD) -g -O1 -Iinclude -Itest -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all $(shell pkg-config --cflags jansson yajl)

deps-fuzz:
	@tools/deps.sh fuzz

build/fuzz/%: test/fuzz/%.c $(FUZZ_SRC) | deps-fuzz
	@mkdir -p $(@D)
	@echo "  FUZZCC  $@"
	$(Q)clang $(FUZZ_CFLAGS) $^ $(LIBS) -o $@

fuzz-build: $(FUZZ_TARGETS:%=build/fuzz/%)

# Each target runs FUZZ_SECONDS (default 30, so 60 s in all) on a copy of
# its seed corpus; a crash leaves its input in build/fuzz/ and fails.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  c=build/fuzz/corpus-$${t#fuzz_}; mkdir -p $$c; cp -n test/fuzz/corpus/$${t#fuzz_}/* $$c/; \
	  echo "== $$t for $(FUZZ_SECONDS) s"; \
	  ./build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=70000 -timeout=10 \
	    -artifact_prefix=build/fuzz/$$t- -print_final_stats=1 $$c 2>&1 | \
	    grep -E '^(stat::number_of_executed_runs|==|SUMMARY|Done)' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

deps-lint:
	@tools/deps.sh lint

# A small, deliberate check set: real bugs and unsafe calls, not style.
# valist.Uninitialized misreads a va_list handed on to vsnprintf (log.c).
TIDY_CHECKS := -*,clang-analyzer-*,bugprone-*,cert-err34-c,-bugprone-easily-swappable-parameters,\
-clang-analyzer-valist.Uninitialized,\
-bugprone-reserved-identifier,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,\
-bugprone-narrowing-conversions,-bugprone-assignment-in-if-condition

# The module graph must have no cycle (tools/module_graph.py prints it).
lint: deps-lint
	python3 tools/module_graph.py >/dev/null
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -D_GNU_SOURCE -Iinclude -Ibench src bench
	clang-tidy --quiet --warnings-as-errors='*' --checks='$(TIDY_CHECKS)' src/*.c bench/*.c -- \
	  $(CSTD) -Iinclude -Ibench $(shell pkg-config --cflags $(PKGS))

clean:
	rm -rf build bin

-include $(wildcard build/*/*.d build/*/test/*.d build/*/bench/*.d)

# Objects are rebuilt when the compiler flags change (a plain make, then
# make test with -Werror).
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS_ALL)' | cmp -s - $@ 2>/dev/null || echo '$(CC) $(CFLAGS_ALL)' > $@
.PHONY: FORCE
FORCE:
