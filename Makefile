# libcebra: build, test, demo and install.
#
#   make build                 release library (target/release/libcebra.so, .a), include/cebra.h, CLI
#   make test                  everything CI runs (Rust tests, doc tests, header check, C tests, install test)
#   make demo                  the registry and a synthetic recording embedded by a fresh offset10-model
#   make install PREFIX=/opt/cebra    library, header, pkg-config file and CMake package
#   make install-test          install into a temporary prefix and build/run the C example against it
#   make clean | make fuzz | make help
#
# libtorch: LIBTORCH (environment or command line) names an existing libtorch 2.13; otherwise
# tools/fetch-libtorch.sh downloads a CPU build into ~/.cache/cebra/libtorch-2.13.0-cpu once.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:

CARGO   ?= cargo
CC      ?= cc
PREFIX  ?= /usr/local
VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)

# Where cargo puts its outputs (CARGO_TARGET_DIR is honoured, as cargo does).
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
RELEASE    := $(TARGET_DIR)/release

# The C test suite's goals (bindings/c/tests/Makefile), run against the release library.
C_TEST_GOALS ?= header test valgrind asan

# libtorch, fetched (or found) only for goals that compile or run something.
NO_TORCH_GOALS := clean help readme-check
ifneq ($(filter-out $(NO_TORCH_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
  ifneq ($(origin LIBTORCH),command line)
    LIBTORCH := $(shell bash tools/fetch-libtorch.sh)
    ifneq ($(.SHELLSTATUS),0)
      $(error tools/fetch-libtorch.sh failed (see its messages above); set LIBTORCH to an existing libtorch 2.13 to skip the download)
    endif
  endif
  ifeq ($(wildcard $(LIBTORCH)/lib/libtorch_cpu.so),)
    $(error LIBTORCH='$(LIBTORCH)' has no lib/libtorch_cpu.so)
  endif
  export LIBTORCH
endif

.PHONY: all build test cargo-test header-check readme-check c-test install install-test demo fuzz clean help

all: build

build:
	$(CARGO) build --release
	@for f in libcebra.so libcebra.a cebra; do \
	  test -f "$(RELEASE)/$$f" || { echo "build: $(RELEASE)/$$f is missing" >&2; exit 1; }; \
	done
	@echo "built $(RELEASE)/libcebra.so, $(RELEASE)/libcebra.a, include/cebra.h and $(RELEASE)/cebra"

# The steps run one after the other (also under make -j), each reporting its own failure.
test: build
	$(MAKE) --no-print-directory cargo-test
	$(MAKE) --no-print-directory header-check
	$(MAKE) --no-print-directory readme-check
	$(MAKE) --no-print-directory c-test
	$(MAKE) --no-print-directory install-test
	@echo "make test: all steps passed"

cargo-test:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# The build regenerates include/cebra.h from src/ffi (build.rs); the committed header must match it.
header-check: build
	@git_() { git -c safe.directory="$(CURDIR)" "$$@"; }; \
	if [ "$$(git_ rev-parse --show-toplevel 2>/dev/null)" != "$(CURDIR)" ]; then \
	  echo "header-check: WARNING: not a git checkout, cannot check that include/cebra.h is up to date" >&2; \
	elif ! git_ ls-files --error-unmatch include/cebra.h >/dev/null 2>&1; then \
	  echo "header-check: include/cebra.h is not committed: commit the header the build generated" >&2; exit 1; \
	elif ! git_ diff --exit-code -- include/cebra.h; then \
	  echo "header-check: include/cebra.h is STALE: the build regenerated it from src/ffi and it differs" >&2; \
	  echo "header-check: from the committed header (diff above). Review and commit the regenerated include/cebra.h." >&2; \
	  exit 1; \
	else \
	  echo "header-check: include/cebra.h matches the committed header"; \
	fi

# The README's "Using it from C" program is bindings/c/examples/embed.c, verbatim.
readme-check:
	@awk '/^## Using it from C/ { s = 1 } s == 1 && /^```c$$/ { s = 2; next } s == 2 && /^```$$/ { exit } s == 2' \
	  README.md | diff -u bindings/c/examples/embed.c - \
	  || { echo "readme-check: the C program in README.md differs from bindings/c/examples/embed.c" >&2; exit 1; }
	@echo "readme-check: README.md shows bindings/c/examples/embed.c verbatim"

c-test: build
	@if [ -f bindings/c/tests/Makefile ]; then \
	  $(MAKE) --no-print-directory -C bindings/c/tests LIBDIR="$(RELEASE)" $(C_TEST_GOALS); \
	else \
	  echo "c-test: no bindings/c/tests/Makefile, nothing to run"; \
	fi

install: build
	@case "$(PREFIX)" in /*) ;; *) echo "install: PREFIX must be an absolute path, got '$(PREFIX)'" >&2; exit 1;; esac
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/include" \
	  "$(DESTDIR)$(PREFIX)/lib/pkgconfig" "$(DESTDIR)$(PREFIX)/lib/cmake/cebra"
	install -m 0755 "$(RELEASE)/libcebra.so" "$(DESTDIR)$(PREFIX)/lib/libcebra.so"
	install -m 0644 "$(RELEASE)/libcebra.a" "$(DESTDIR)$(PREFIX)/lib/libcebra.a"
	install -m 0755 "$(RELEASE)/cebra" "$(DESTDIR)$(PREFIX)/bin/cebra"
	install -m 0644 include/cebra.h "$(DESTDIR)$(PREFIX)/include/cebra.h"
	for t in pkgconfig/cebra.pc cmake/cebra/cebraConfig.cmake cmake/cebra/cebraConfigVersion.cmake; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBTORCH@|$(abspath $(LIBTORCH))|g' \
	    "tools/install/$$(basename $$t).in" > "$(DESTDIR)$(PREFIX)/lib/$$t"; \
	done
	@echo "installed libcebra $(VERSION) into $(DESTDIR)$(PREFIX)"

# Installs into a temporary prefix, then builds bindings/c/examples/embed.c against it with pkg-config
# and with CMake and runs the programs with an empty environment (tools/install/test-install.sh).
install-test: build
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/cebra-install-test.XXXXXX"); \
	trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory install PREFIX="$$tmp/prefix" >/dev/null; \
	CC="$(CC)" bash tools/install/test-install.sh "$$tmp/prefix" "$$tmp/work"

demo: build
	"$(RELEASE)/cebra" demo

# Bounded fuzzing of the option parser and the weights loader (cargo-fuzz; see fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz:
	bash tools/fuzz.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
	@if [ -f bindings/c/tests/Makefile ]; then $(MAKE) --no-print-directory -C bindings/c/tests clean; fi

help:
	@sed -n '1,/^$$/{s/^# \{0,1\}//;p}' $(firstword $(MAKEFILE_LIST))
