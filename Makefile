# Build, test and install the header-only websocket.hpp.  `make help` lists targets.
#
#   make test                      quick: default compiler, -O1 -g
#   make test CXX=clang++ STD=c++20
#   make check                     full CI suite (all variants, meson, install)
#   make install PREFIX=/usr DESTDIR=/tmp/stage

CXX     ?= g++
STD     ?= c++17
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= 2
OPT     ?= -O1 -g
# Extra compile+link flags of a variant, e.g. XFLAGS='-fno-exceptions -fno-rtti'.
XFLAGS  ?=
# Tests are built into $(BUILD)/$(VARIANT)/.
VARIANT ?= default
VERSION := 0.1.0

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror
ALL_CXXFLAGS = -std=$(STD) $(OPT) $(WARN) $(XFLAGS) $(CPPFLAGS) $(CXXFLAGS)

# Only read by sanitizer builds; harmless for the others.
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

TEST_SRCS    := $(wildcard tests/test_*.cpp)
TEST_BINS     = $(TEST_SRCS:tests/%.cpp=$(BUILD)/$(VARIANT)/%)
# Microbenchmarks (bench_*.cpp) run as programs; bench/run.sh builds and runs the echo suite.
BENCH_SRCS   := $(wildcard bench/bench_*.cpp)
BENCH_BINS   := $(BENCH_SRCS:bench/%.cpp=$(BUILD)/bench/%)
EXAMPLE_SRCS := $(wildcard examples/*.cpp)
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.cpp=$(BUILD)/%)

MAKEFLAGS += --no-print-directory
# Sub-makes build with -j$(JOBS), unless the user gave -j (then they share its
# jobserver; the recursive recipe lines start with '+' so they get it).
PAR = $(if $(findstring -j,$(MAKEFLAGS)),,-j$(JOBS))
RES := $(BUILD)/results

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help demo test check variant test-bins install uninstall bench bench-bins bench-peers \
        examples example-bins clean FORCE

help:
	@echo 'make demo      build the examples, run echo_server and wscat talking'
	@echo 'make test      build + run tests/test_*.cpp (CXX=$(CXX) STD=$(STD) OPT="$(OPT)") in $(BUILD)/$(VARIANT)/'
	@echo 'make check     full CI suite: gcc/clang, C++17/20, -fno-exceptions, ASan+UBSan, meson, install, portability'
	@echo 'make install   PREFIX=$(PREFIX) [DESTDIR=]: header + pkg-config file   (make uninstall)'
	@echo 'make bench     build + run bench/bench_*.cpp (-O2), then bench/run.sh (~15 min)'
	@echo 'make bench-peers  only bench/run.sh: echo_server vs raw TCP, Beast, websocketpp, lws, Node ws (BENCH_QUICK=1: ~2 min)'
	@echo 'make examples  build examples/*.cpp into $(BUILD)/'
	@echo 'make test-windows  the suites + examples built with MinGW-w64, run under Wine (both drivers, loopback, meson cross)'
	@echo 'make test-arm  the suites built for 32-bit ARM (armhf), run under qemu-arm'
	@echo 'make test-be   the suites built for big-endian s390x, run under qemu-s390x'
	@echo 'make matrix    g++/clang++ x libstdc++/libc++ x C++17/20/23 x -fno-exceptions/-Os compile checks'
	@echo 'make portability  the four above in one (make check'"'"'s step); PORT_QUICK=1: arm/s390x poll only, meson-windows test_platform only, no C++23 suites'
	@echo 'make size      footprint: stripped -Os client/server sizes (x86_64, armhf), compile time'
	@echo 'make clean     rm -rf $(BUILD)'

## ---------------------------------------------------------------- tests
# Every suite runs once per driver: poll() (default) and blocking sockets.
test:
	@bash tests/deps.sh doctest
	@rm -rf $(BUILD)/results-test && mkdir -p $(BUILD)/results-test
	+@$(MAKE) variant VARIANT=poll RESULTS=$(BUILD)/results-test/poll || true
	+@$(MAKE) variant VARIANT=blocking RESULTS=$(BUILD)/results-test/blocking XFLAGS='$(XFLAGS) -DWEBSOCKET_USE_BLOCKING' || true
	@set --; for f in $(BUILD)/results-test/*; do set -- "$$@" -r "$$f"; done; bash tests/summarize.sh "$$@"

# One configuration: build with -k (one broken test must not hide the others;
# the summarizer counts a test that did not build as failed), then run all.
# RESULTS=FILE records the per-suite results for `make check`'s grand total.
variant:
	@echo "==== $(VARIANT): $(CXX) $(ALL_CXXFLAGS)"
	+@$(MAKE) $(PAR) -k test-bins || true
	@bash tests/summarize.sh -p $(VARIANT)/ $(if $(RESULTS),-o $(RESULTS)) $(TEST_BINS)

test-bins: $(TEST_BINS)

# Each test is one translation unit: compile and link in one step.
$(BUILD)/$(VARIANT)/%: tests/%.cpp websocket.hpp $(BUILD)/$(VARIANT)/flags
	$(CXX) $(ALL_CXXFLAGS) -MMD -MP -MF $@.d -MT $@ -pthread -o $@ $< $(LDFLAGS) $(LDLIBS)

# Rewritten only when the compiler or flags change, so the tests rebuild then.
$(BUILD)/$(VARIANT)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CXX) $(ALL_CXXFLAGS)' | cmp -s - $@ || echo '$(CXX) $(ALL_CXXFLAGS)' > $@

-include $(wildcard $(BUILD)/$(VARIANT)/*.d)

## ---------------------------------------------------------------- check
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# ThreadSanitizer, on the suites that run threads (the blocking driver's per-connection threads,
# cross-thread Session sends, servers on their own thread); the others are single-threaded.
TSAN := -fsanitize=thread -fno-omit-frame-pointer
TSAN_TESTS ?= tests/test_net.cpp tests/test_hostile.cpp tests/test_conformance.cpp
export TSAN_OPTIONS ?= halt_on_error=1:second_deadlock_stack=1
# $(call run_variant,NAME,CXX,STD,OPT,XFLAGS): never stops `make check`.
run_variant = $(MAKE) variant VARIANT=$1 RESULTS=$(RES)/$1 CXX=$2 STD=$3 OPT='$4' XFLAGS='$5' || true

# Every step records result lines in $(RES)/ and keeps going on failure; the
# last step sums them all: the last line is the grand total "N passed, M failed".
check:
	@bash tests/deps.sh all
	@rm -rf $(RES) && mkdir -p $(RES)
	+@$(call run_variant,gcc-c++17-O2-poll,g++,c++17,-O2,)
	+@$(call run_variant,gcc-c++17-O2-blocking,g++,c++17,-O2,-DWEBSOCKET_USE_BLOCKING)
	+@$(call run_variant,clang-c++20-O2-poll,clang++,c++20,-O2,)
	+@$(call run_variant,gcc-c++17-noexcept-nortti,g++,c++17,-O1 -g,-fno-exceptions -fno-rtti)
	+@$(call run_variant,gcc-c++20-noexcept-nortti-blocking,g++,c++20,-O1 -g,-fno-exceptions -fno-rtti -DWEBSOCKET_USE_BLOCKING)
	+@$(call run_variant,clang-c++17-asan-ubsan-poll,clang++,c++17,-O1 -g,$(SANITIZE))
	+@$(call run_variant,clang-c++17-asan-ubsan-blocking,clang++,c++17,-O1 -g,$(SANITIZE) -DWEBSOCKET_USE_BLOCKING)
	+@$(MAKE) variant VARIANT=clang-c++17-tsan-poll RESULTS=$(RES)/clang-c++17-tsan-poll CXX=clang++ STD=c++17 OPT='-O1 -g' XFLAGS='$(TSAN)' TEST_SRCS='$(TSAN_TESTS)' || true
	+@$(MAKE) variant VARIANT=clang-c++17-tsan-blocking RESULTS=$(RES)/clang-c++17-tsan-blocking CXX=clang++ STD=c++17 OPT='-O1 -g' XFLAGS='$(TSAN) -DWEBSOCKET_USE_BLOCKING' TEST_SRCS='$(TSAN_TESTS)' || true
	+@$(MAKE) examples
	@bash tests/interop/run.sh $(RES)/interop || true
	@bash tests/interop/valgrind.sh $(RES)/valgrind || true
	@bash tests/fuzz/run.sh $(RES)/fuzz || true
	@bash tests/ci-checks.sh meson $(BUILD)/meson $(RES)/meson || true
	@bash tests/ci-checks.sh install $(RES)/install || true
	@bash tests/ci-checks.sh subproject $(RES)/subproject || true
	+@$(MAKE) portability-run PORTRES=$(RES) || true
	@echo "==== make check: all variants"
	@set --; for f in $(RES)/*; do set -- "$$@" -r "$$f"; done; bash tests/summarize.sh "$$@"

## ---------------------------------------------------------------- install
# Header-only: no Libs on Linux. Windows (MinGW) consumers must add -lws2_32 -lbcrypt.
define WEBSOCKET_PC
# Header-only. Windows (MinGW) consumers must also link -lws2_32 -lbcrypt.
prefix=$(PREFIX)
includedir=$${prefix}/include

Name: websocket
Description: Single-header C++17 WebSocket library
Version: $(VERSION)
Cflags: -I$${includedir}
Libs:
endef
export WEBSOCKET_PC

install:
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 websocket.hpp $(DESTDIR)$(PREFIX)/include/websocket.hpp
	printf '%s\n' "$$WEBSOCKET_PC" > $(DESTDIR)$(PREFIX)/lib/pkgconfig/websocket.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/websocket.hpp $(DESTDIR)$(PREFIX)/lib/pkgconfig/websocket.pc

## ---------------------------------------------------------------- bench, examples
bench:
ifeq ($(BENCH_SRCS),)
	@echo 'make bench: no bench/*.cpp yet, nothing to do'
else
	+@$(MAKE) $(PAR) bench-bins
	@set -e; for b in $(BENCH_BINS); do echo "---- $$b"; ./$$b; done
endif
	@bash bench/run.sh

# The echo benchmark alone (writes $(BUILD)/bench/results.md and results.png).
bench-peers:
	@bash bench/run.sh

bench-bins: $(BENCH_BINS)

$(BUILD)/bench/%: bench/%.cpp websocket.hpp
	@mkdir -p $(@D)
	$(CXX) -std=$(STD) -O2 $(WARN) $(CPPFLAGS) $(CXXFLAGS) -pthread -o $@ $< $(LDFLAGS) $(LDLIBS)

examples:
ifeq ($(EXAMPLE_SRCS),)
	@echo 'make examples: no examples/*.cpp yet, nothing to do'
else
	+@$(MAKE) $(PAR) example-bins
endif

example-bins: $(EXAMPLE_BINS) $(EXAMPLE_SRCS:examples/%.cpp=$(BUILD)/blocking/%)

# The same examples on the blocking driver, for the interop tests.
$(BUILD)/blocking/%: examples/%.cpp websocket.hpp
	@mkdir -p $(@D)
	$(CXX) -std=$(STD) -O2 $(WARN) -DWEBSOCKET_USE_BLOCKING $(CPPFLAGS) $(CXXFLAGS) -pthread -o $@ $< $(LDFLAGS) $(LDLIBS)

# The main job: a server and a client talking.
demo:
	@bash tests/deps.sh build
	+@$(MAKE) examples
	@bash examples/demo.sh

$(BUILD)/%: examples/%.cpp websocket.hpp
	@mkdir -p $(@D)
	$(CXX) -std=$(STD) -O2 $(WARN) $(CPPFLAGS) $(CXXFLAGS) -pthread -o $@ $< $(LDFLAGS) $(LDLIBS)

clean:
	rm -rf $(BUILD)

FORCE:

# fuzz
.PHONY: fuzz
fuzz:
	@bash tests/deps.sh clang
	@bash tests/fuzz/run.sh

## ---------------------------------------------------------------- portability
# Cross builds run under an emulator (tests/platform.sh): Windows (MinGW-w64, Winsock) under
# Wine, 32-bit ARM (32-bit size_t) and big-endian s390x under qemu-user. Every suite once per
# driver, and the examples built for the platform talking to the native ones over loopback.
.PHONY: test-windows test-arm test-be platform xvariant xbins matrix matrix-run size portability \
        portability-run
WIN_CXX ?= x86_64-w64-mingw32-g++-posix
ARM_CXX ?= arm-linux-gnueabihf-g++
BE_CXX  ?= s390x-linux-gnu-g++
windows_CXX     = $(WIN_CXX)
windows_LDFLAGS = -static
windows_LDLIBS  = -lws2_32 -lbcrypt
windows_EXE     = .exe
arm_CXX         = $(ARM_CXX)
# -Wno-psabi: GCC's note that the ARM ABI for some std types changed in GCC 7.1 (not our code).
arm_XFLAGS      = -Wno-psabi
be_CXX          = $(BE_CXX)
# A cross compiler does not search /usr/include: it sees doctest, and only doctest, here.
DOCTEST_DIR ?= /usr/include/doctest
XINC        := $(BUILD)/cross-include
# -O0: compile time dominates a cross run (the native variants test the optimizers).
XOPT        ?= -O0
# The blocking variant rebuilds only the suites that use a driver (the others do no I/O).
XBLOCKING_TESTS ?= $(wildcard tests/test_net.cpp tests/test_hostile.cpp tests/test_conformance.cpp tests/test_platform.cpp)
# Windows gets every example; the loopback test needs only these two.
windows_EXAMPLES = $(EXAMPLE_SRCS)
XEXAMPLES    = $(or $($(PLATFORM)_EXAMPLES),examples/echo_server.cpp examples/wscat.cpp)
XTEST_BINS   = $(TEST_SRCS:tests/%.cpp=$(BUILD)/$(VARIANT)/%$($(PLATFORM)_EXE))
XEX_BINS     = $(XEXAMPLES:examples/%.cpp=$(BUILD)/$(VARIANT)/%$($(PLATFORM)_EXE))

test-windows: PLATFORM = windows
test-arm: PLATFORM = arm
test-be: PLATFORM = be
test-windows test-arm test-be:
	@bash tests/deps.sh doctest build $(PLATFORM)
	@rm -rf $(BUILD)/results-$(PLATFORM) && mkdir -p $(BUILD)/results-$(PLATFORM)
	+@$(MAKE) platform PLATFORM=$(PLATFORM) PRES=$(BUILD)/results-$(PLATFORM)
	@set --; for f in $(BUILD)/results-$(PLATFORM)/*; do set -- "$$@" -r "$$f"; done; bash tests/summarize.sh "$$@"

# One platform: each driver of XDRIVERS, loopback, meson (Windows; XMESON_TESTS: only these
# tests, default all); result lines in $(PRES)/.
XDRIVERS     ?= poll blocking
XMESON_TESTS ?=
platform:
	@mkdir -p $(XINC) && ln -sfn $(DOCTEST_DIR) $(XINC)/doctest
	$(if $(filter poll,$(XDRIVERS)),+@$(MAKE) xvariant VARIANT=$(PLATFORM)-poll RESULTS=$(PRES)/$(PLATFORM)-poll OPT='$(XOPT)' || true)
	$(if $(filter blocking,$(XDRIVERS)),+@$(MAKE) xvariant VARIANT=$(PLATFORM)-blocking RESULTS=$(PRES)/$(PLATFORM)-blocking OPT='$(XOPT)' \
	    XFLAGS='$(XFLAGS) -DWEBSOCKET_USE_BLOCKING' TEST_SRCS='$(XBLOCKING_TESTS)' || true)
	+@$(MAKE) examples || true
	@for d in $(XDRIVERS); do \
	    BUILD=$(BUILD) bash tests/platform.sh loopback $(PLATFORM) $(BUILD)/$(PLATFORM)-$$d $(PRES)/$(PLATFORM)-$$d-loopback; \
	done || true
	@if [ $(PLATFORM) = windows ]; then BUILD=$(BUILD) MESON_TESTS='$(XMESON_TESTS)' bash tests/platform.sh meson windows $(BUILD)/meson-windows $(PRES)/meson-windows || true; fi
	@BUILD=$(BUILD) bash tests/platform.sh stop $(PLATFORM)

xvariant:
	@echo "==== $(VARIANT): $($(PLATFORM)_CXX) $(ALL_CXXFLAGS) $($(PLATFORM)_XFLAGS) $($(PLATFORM)_LDFLAGS) $($(PLATFORM)_LDLIBS)"
	+@$(MAKE) $(PAR) -k xbins CXX=$($(PLATFORM)_CXX) CPPFLAGS='-I$(XINC) $(CPPFLAGS)' TEST_SRCS='$(TEST_SRCS)' \
	    XFLAGS='$(XFLAGS) $($(PLATFORM)_XFLAGS)' LDFLAGS='$($(PLATFORM)_LDFLAGS) $(LDFLAGS)' \
	    LDLIBS='$($(PLATFORM)_LDLIBS) $(LDLIBS)' || true
	@BUILD=$(BUILD) bash tests/platform.sh suite $(PLATFORM) $(VARIANT)/ $(RESULTS) $(XTEST_BINS)

xbins: $(XTEST_BINS) $(XEX_BINS)

# The cross rules exist only in a cross build (PLATFORM set), so the native ones stay as they are.
ifneq ($(PLATFORM),)
$(BUILD)/$(VARIANT)/%$($(PLATFORM)_EXE): tests/%.cpp websocket.hpp $(BUILD)/$(VARIANT)/flags
	$(CXX) $(ALL_CXXFLAGS) -MMD -MP -MF $@.d -MT $@ -pthread -o $@ $< $(LDFLAGS) $(LDLIBS)
$(BUILD)/$(VARIANT)/%$($(PLATFORM)_EXE): examples/%.cpp websocket.hpp $(BUILD)/$(VARIANT)/flags
	$(CXX) $(ALL_CXXFLAGS) -MMD -MP -MF $@.d -MT $@ -pthread -o $@ $< $(LDFLAGS) $(LDLIBS)
endif

# Compilers x standards x flags (tests/matrix.sh): compile checks, one result line each,
# and one suite run where it adds something: clang with libc++, at -Os.
matrix:
	@bash tests/deps.sh doctest build clang libcxx
	@rm -rf $(BUILD)/results-matrix && mkdir -p $(BUILD)/results-matrix
	+@$(MAKE) matrix-run MRES=$(BUILD)/results-matrix
	@set --; for f in $(BUILD)/results-matrix/*; do set -- "$$@" -r "$$f"; done; bash tests/summarize.sh "$$@"

matrix-run:
	@BUILD=$(BUILD) bash tests/matrix.sh $(MRES)/matrix || true
	+@$(MAKE) variant VARIANT=clang-libc++-c++20-Os-poll RESULTS=$(MRES)/clang-libc++-c++20-Os-poll CXX=clang++ STD=c++20 OPT=-Os XFLAGS='-stdlib=libc++ -Wsign-conversion' || true

# `make check`'s portability step: test-windows, test-arm, test-be and matrix in one, every run
# of each, result lines in $(PORTRES)/ (~8.5 min on 2 cores). PORT_QUICK=1 takes the cheapest
# cuts (~6 min), should CI time need them:
#   - arm and s390x: the poll driver only (the blocking driver's own code is the same POSIX
#     code that runs natively under every sanitizer; the byte order and 32-bit size_t are in
#     the Connection code both drivers share, which the poll runs cover);
#   - Windows: both drivers (Winsock is where the drivers differ), but the meson cross build
#     builds and runs test_platform only (the suites already ran under Wine from the make build);
#   - matrix: the "full" combinations (C++23) compile the header and the examples, not the suites.
PORTRES    ?= $(BUILD)/results-portability
PORT_QUICK ?=
portability:
	@bash tests/deps.sh doctest build clang windows arm be libcxx
	@rm -rf $(PORTRES) && mkdir -p $(PORTRES)
	+@$(MAKE) portability-run
	@set --; for f in $(PORTRES)/*; do set -- "$$@" -r "$$f"; done; bash tests/summarize.sh "$$@"

portability-run:
	+@$(MAKE) platform PLATFORM=windows PRES=$(PORTRES) $(if $(filter 1,$(PORT_QUICK)),XMESON_TESTS=test_platform) || true
	+@$(MAKE) platform PLATFORM=arm PRES=$(PORTRES) $(if $(filter 1,$(PORT_QUICK)),XDRIVERS=poll) || true
	+@$(MAKE) platform PLATFORM=be PRES=$(PORTRES) $(if $(filter 1,$(PORT_QUICK)),XDRIVERS=poll) || true
	+@$(if $(filter 1,$(PORT_QUICK)),MATRIX_FULL=0) $(MAKE) matrix-run MRES=$(PORTRES) || true

# Footprint: stripped -Os sizes of a minimal client and echo server (x86_64, armhf) and the
# compile time of a TU that includes the header (tests/size.sh; numbers in README.md).
size:
	@bash tests/deps.sh build arm
	@BUILD=$(BUILD) bash tests/size.sh
