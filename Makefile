# libcebra: build, test, demo and install.
#
#   make build                 release library (target/release/libcebra.so, .a), include/cebra.h, CLI
#   make test                  everything CI runs (Rust tests, doc tests, header check, C tests, C++ tests,
#                              Julia static check, Octave tests of the MATLAB binding, install test)
#   make cpp-test              the C++ binding's tests (bindings/cpp/tests)
#   make julia-check           the Julia package checked without Julia (tools/julia/check_julia.py)
#   make demo                  fit, decode and plot a synthetic place-cell recording (into demo-output/)
#   make install PREFIX=/opt/cebra    library, header, pkg-config file and CMake package
#   make install-test          install into a temporary prefix and build/run the C example against it
#   make matlab                the MATLAB/Octave mex gateway (bindings/matlab; mkoctfile or MATLAB's mex)
#   make matlab-test           the Octave test suite of bindings/matlab (installs Octave when missing)
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

# The ABI version (the SONAME is libcebra.so.$(ABI)), from build.rs.
ABI := $(shell sed -n 's/^const ABI_VERSION: u32 = \([0-9]*\);/\1/p' build.rs)

# System tools, checked (and installed with apt-get when possible) before any long step.
TOOL_GROUPS :=
ifneq ($(filter build demo c-test cargo-test header-check matlab matlab-test,$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
  TOOL_GROUPS += build
endif
ifneq ($(filter matlab matlab-test,$(MAKECMDGOALS)),)
  TOOL_GROUPS += matlab
endif
ifneq ($(filter test,$(MAKECMDGOALS)),)
  TOOL_GROUPS += test
endif
ifneq ($(filter install-test,$(MAKECMDGOALS)),)
  TOOL_GROUPS += install-test
endif
ifneq ($(strip $(TOOL_GROUPS)),)
  $(shell bash tools/ensure-tools.sh $(sort $(TOOL_GROUPS)) >&2)
  ifneq ($(.SHELLSTATUS),0)
    $(error tools/ensure-tools.sh: missing system tools (see its message above))
  endif
endif

# libtorch, fetched (or found) only for goals that compile or run something. `install` uses what
# `build` left and fetches nothing, so `sudo make install` needs neither cargo nor a libtorch cache.
NO_TORCH_GOALS := clean help readme-check header install
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
  # cargo sees libtorch through the repository's .libtorch link, the very path .cargo/config.toml gives
  # a plain `cargo build`: torch-sys rebuilds when LIBTORCH changes, so both must name it alike.
  # (After pointing LIBTORCH at another libtorch, run `cargo clean -p torch-sys`.)
  $(shell ln -sfn "$(realpath $(LIBTORCH))" .libtorch)
  override LIBTORCH := $(CURDIR)/.libtorch
  export LIBTORCH
endif

.PHONY: all build test cargo-test clippy header header-check readme-check c-test cpp-test julia-check matlab matlab-test install install-test demo fuzz clean help

all: build

build:
	$(CARGO) build --release
	@for f in libcebra.so libcebra.a cebra include/cebra.h; do \
	  test -f "$(RELEASE)/$$f" || { echo "build: $(RELEASE)/$$f is missing" >&2; exit 1; }; \
	done
	@# Programs linked with -lcebra record the SONAME libcebra.so.$(ABI): give it a file in the build tree.
	ln -sfn libcebra.so "$(RELEASE)/libcebra.so.$(ABI)"
	@echo "built $(RELEASE)/libcebra.so (SONAME libcebra.so.$(ABI)), $(RELEASE)/libcebra.a, $(RELEASE)/include/cebra.h and $(RELEASE)/cebra"

# The steps run one after the other (also under make -j), each reporting its own failure.
test: build
	$(MAKE) --no-print-directory header-check
	$(MAKE) --no-print-directory cargo-test
	$(MAKE) --no-print-directory clippy
	$(MAKE) --no-print-directory readme-check
	$(MAKE) --no-print-directory c-test
	$(MAKE) --no-print-directory cpp-test
	$(MAKE) --no-print-directory julia-check
	$(MAKE) --no-print-directory matlab-test
	$(MAKE) --no-print-directory install-test
	@echo "make test: all steps passed"

# Release profile, as `build`: the tests reuse its dependencies instead of compiling a debug set.
cargo-test:
	$(CARGO) test --release --all-targets
	$(CARGO) test --release --doc

clippy:
	$(CARGO) clippy --release --all-targets -- -D warnings

# The build generates the header from src/ffi into $(RELEASE)/include/cebra.h (build.rs); the source
# tree is never written by a build. `make header` refreshes the committed copy; header-check compares.
header: 
	@test -f "$(RELEASE)/include/cebra.h" || { echo "header: run make build first" >&2; exit 1; }
	cp "$(RELEASE)/include/cebra.h" include/cebra.h
	python3 tools/julia/gen_libcebra.py include/cebra.h > bindings/julia/Cebra/src/LibCebra.jl
	@echo "header: include/cebra.h and the Julia module generated from it refreshed from $(RELEASE)/include/cebra.h"

header-check: build
	@if diff -u include/cebra.h "$(RELEASE)/include/cebra.h"; then \
	  echo "header-check: include/cebra.h matches the header generated from src/ffi"; \
	else \
	  echo "header-check: include/cebra.h is STALE (diff above): run 'make header' and commit it" >&2; \
	  exit 1; \
	fi

# The README's "Using it from C" program is bindings/c/examples/embed.c, verbatim.
readme-check:
	@awk '/^## Using it from C/ { s = 1 } s == 1 && /^```c$$/ { s = 2; next } s == 2 && /^```$$/ { exit } s == 2' \
	  README.md | diff -u bindings/c/examples/embed.c - \
	  || { echo "readme-check: the C program in README.md differs from bindings/c/examples/embed.c" >&2; exit 1; }
	@awk '/^## Using it from C\+\+/ { s = 1 } s == 1 && /^```cpp$$/ { s = 2; next } s == 2 && /^```$$/ { exit } s == 2' \
	  README.md | diff -u bindings/cpp/examples/embed.cpp - \
	  || { echo "readme-check: the C++ program in README.md differs from bindings/cpp/examples/embed.cpp" >&2; exit 1; }
	@awk '/^## Using it from Julia/ { s = 1 } s == 1 && /^```julia$$/ { s = 2; next } s == 2 && /^```$$/ { exit } s == 2' \
	  README.md | diff -u bindings/julia/Cebra/examples/embed.jl - \
	  || { echo "readme-check: the Julia program in README.md differs from bindings/julia/Cebra/examples/embed.jl" >&2; exit 1; }
	@awk '/^### Training from Rust/ { s = 1 } s == 1 && /^```rust$$/ { s = 2; next } s == 2 && /^```$$/ { exit } s == 2' \
	  README.md | diff -u <(tail -n +2 examples/train.rs) - \
	  || { echo "readme-check: the Rust program in README.md differs from examples/train.rs" >&2; exit 1; }
	@echo "readme-check: README.md shows bindings/c/examples/embed.c, bindings/cpp/examples/embed.cpp, bindings/julia/Cebra/examples/embed.jl and examples/train.rs verbatim"

c-test: build
	@if [ -f bindings/c/tests/Makefile ]; then \
	  $(MAKE) --no-print-directory -C bindings/c/tests LIBDIR="$(RELEASE)" $(C_TEST_GOALS); \
	else \
	  echo "c-test: no bindings/c/tests/Makefile, nothing to run"; \
	fi

# The C++ binding (bindings/cpp/cebra.hpp): three translation units with -Wall -Wextra -Werror, the
# reference fixtures through the C++ API, under ASan+UBSan and Valgrind (bindings/cpp/tests/Makefile).
CPP_TEST_GOALS ?= test asan valgrind
cpp-test: build
	$(MAKE) --no-print-directory -C bindings/cpp/tests LIBDIR="$(RELEASE)" $(CPP_TEST_GOALS)

# The Julia package (bindings/julia/Cebra), checked without Julia: the committed LibCebra.jl is what
# tools/julia/gen_libcebra.py writes from include/cebra.h, every .jl file parses (tree-sitter's Julia
# grammar, PyPI packages installed under the build dir), every ccall matches the header and the
# library's exports, every header function is wrapped; then the checker's own self-test.
JULIA_CHECK_PY := $(TARGET_DIR)/julia-check-py$(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
JULIA_CHECK_PACKAGES := tree-sitter==0.25.2 tree-sitter-julia==0.23.1

# Reinstalled when this Makefile (and so possibly the pinned versions) changes.
$(JULIA_CHECK_PY)/.installed: Makefile
	rm -rf "$(JULIA_CHECK_PY)"
	PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
	  --target "$(JULIA_CHECK_PY)" $(JULIA_CHECK_PACKAGES)
	touch "$@"

julia-check: build $(JULIA_CHECK_PY)/.installed
	@python3 tools/julia/gen_libcebra.py include/cebra.h | diff -u bindings/julia/Cebra/src/LibCebra.jl - \
	  || { echo "julia-check: bindings/julia/Cebra/src/LibCebra.jl is STALE (diff above); regenerate it:" >&2; \
	       echo "  python3 tools/julia/gen_libcebra.py include/cebra.h > bindings/julia/Cebra/src/LibCebra.jl" >&2; \
	       exit 1; }
	@echo "julia-check: bindings/julia/Cebra/src/LibCebra.jl is what tools/julia/gen_libcebra.py writes"
	PYTHONPATH="$(JULIA_CHECK_PY)" python3 tools/julia/check_julia.py --header include/cebra.h \
	  --lib "$(RELEASE)/libcebra.so" bindings/julia/Cebra
	PYTHONPATH="$(JULIA_CHECK_PY)" python3 tools/julia/check_julia.py --self-test --header include/cebra.h \
	  --lib "$(RELEASE)/libcebra.so"

# The MATLAB/Octave binding (bindings/matlab/Makefile): the mex against the release library, and the
# Octave suite (Octave and liboctave-dev are installed when missing: tools/ensure-tools.sh matlab).
matlab: build
	$(MAKE) --no-print-directory -C bindings/matlab LIBDIR="$(RELEASE)"

matlab-test: build
	$(MAKE) --no-print-directory -C bindings/matlab LIBDIR="$(RELEASE)" test
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/cebra-matlab-install.XXXXXX"); \
	trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory install PREFIX="$$tmp/prefix" LIBTORCH="$(LIBTORCH)" >/dev/null; \
	$(MAKE) --no-print-directory -C bindings/matlab install PREFIX="$$tmp/prefix" >/dev/null; \
	$(MAKE) --no-print-directory -C bindings/matlab install-test PREFIX="$$tmp/prefix"

# Installs what `make build` made; builds and fetches nothing. libcebra.so.$(ABI).$(VERSION) with the
# links libcebra.so.$(ABI) (the SONAME) and libcebra.so; the libtorch libraries it loads go to
# lib/cebra/, which the library and the CLI find through their $$ORIGIN-relative run paths.
install:
	@case "$(PREFIX)" in /*) ;; *) echo "install: PREFIX must be an absolute path, got '$(PREFIX)'" >&2; exit 1;; esac
	@for f in libcebra.so libcebra.a cebra include/cebra.h; do \
	  test -f "$(RELEASE)/$$f" || { echo "install: $(RELEASE)/$$f is missing: run 'make build' first" >&2; exit 1; }; \
	done
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/include" "$(DESTDIR)$(PREFIX)/lib/cebra" \
	  "$(DESTDIR)$(PREFIX)/lib/pkgconfig" "$(DESTDIR)$(PREFIX)/lib/cmake/cebra"
	install -m 0755 "$(RELEASE)/libcebra.so" "$(DESTDIR)$(PREFIX)/lib/libcebra.so.$(ABI).$(VERSION)"
	ln -sfn "libcebra.so.$(ABI).$(VERSION)" "$(DESTDIR)$(PREFIX)/lib/libcebra.so.$(ABI)"
	ln -sfn "libcebra.so.$(ABI)" "$(DESTDIR)$(PREFIX)/lib/libcebra.so"
	install -m 0644 "$(RELEASE)/libcebra.a" "$(DESTDIR)$(PREFIX)/lib/libcebra.a"
	install -m 0755 "$(RELEASE)/cebra" "$(DESTDIR)$(PREFIX)/bin/cebra"
	strip --strip-debug "$(DESTDIR)$(PREFIX)/lib/libcebra.so.$(ABI).$(VERSION)" \
	  "$(DESTDIR)$(PREFIX)/lib/libcebra.a" "$(DESTDIR)$(PREFIX)/bin/cebra"
	install -m 0644 include/cebra.h "$(DESTDIR)$(PREFIX)/include/cebra.h"
	install -m 0644 bindings/cpp/cebra.hpp "$(DESTDIR)$(PREFIX)/include/cebra.hpp"
	bash tools/install/libtorch-libs.sh "$(RELEASE)/libcebra.so" | while read -r lib; do \
	  install -m 0644 "$$lib" "$(DESTDIR)$(PREFIX)/lib/cebra/$$(basename "$$lib")"; \
	done
	for t in pkgconfig/cebra.pc cmake/cebra/cebraConfig.cmake cmake/cebra/cebraConfigVersion.cmake; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@ABI@|$(ABI)|g' \
	    "tools/install/$$(basename $$t).in" > "$(DESTDIR)$(PREFIX)/lib/$$t"; \
	done
	@echo "installed libcebra $(VERSION) (ABI $(ABI)) into $(DESTDIR)$(PREFIX)"

# Installs into a temporary prefix, then builds bindings/c/examples/embed.c against it with pkg-config
# and with CMake and runs the programs with an empty environment (tools/install/test-install.sh).
install-test: build
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/cebra-install-test.XXXXXX"); \
	trap 'rm -rf "$$tmp"' EXIT; \
	echo "install-test: make install without cargo on PATH, without HOME and LIBTORCH (as sudo make install runs)"; \
	env -u LIBTORCH HOME=/nonexistent PATH=/usr/local/bin:/usr/bin:/bin \
	  $(MAKE) --no-print-directory install PREFIX="$$tmp/prefix" CARGO_TARGET_DIR="$(TARGET_DIR)" CARGO=false >/dev/null; \
	CC="$(CC)" bash tools/install/test-install.sh "$$tmp/prefix" "$$tmp/work"

# Fits an offset10-model on a synthetic place-cell recording (position as label), decodes the position
# of a held-out tail (kNN, R²) and plots; DEMO_FLAGS adds cebra demo options (e.g. --threads 1).
DEMO_FLAGS ?=
demo: build
	"$(RELEASE)/cebra" demo --output-dir demo-output $(DEMO_FLAGS)

# Bounded fuzzing of the option parser and the weights loader (cargo-fuzz; see fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz:
	bash tools/fuzz.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
	@if [ -f bindings/c/tests/Makefile ]; then $(MAKE) --no-print-directory -C bindings/c/tests clean; fi
	$(MAKE) --no-print-directory -C bindings/cpp/tests clean
	$(MAKE) --no-print-directory -C bindings/matlab clean

help:
	@sed -n '1,/^$$/{s/^# \{0,1\}//;p}' $(firstword $(MAKEFILE_LIST))
