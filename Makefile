# Shortcuts for servership developers. CI runs .ci/run, which does all of this and more.
.PHONY: all header test c-test wheel develop ci lib install uninstall install-test

all: test

# Regenerate include/servership.h with the pinned cbindgen (a dev-dependency).
header:
	SERVERSHIP_BLESS=1 cargo test --test capi_header

test:
	cargo test

# C examples and tests; VALGRIND=0 skips valgrind for a quick local run.
c-test:
	tests/c/run.sh

# The Python wheel, into target/wheels.
wheel:
	maturin build --out target/wheels

ci:
	.ci/run

# ---- Installing the C library (Linux) -----------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=] [PROFILE=release|debug] [LIBDIR=$(PREFIX)/lib]
# Builds the cdylib (without the python feature, so no libpython) and installs
#   $(LIBDIR)/libservership.so.$(VERSION) with the symlinks libservership.so.0 (the SONAME, set by
#   build.rs) and libservership.so (for -lservership), $(INCLUDEDIR)/servership.h and
#   $(LIBDIR)/pkgconfig/servership.pc. No static library: crate-type has no staticlib (see
#   docs/c.md). DESTDIR stages the files for packaging; the paths inside servership.pc omit it.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=
PROFILE ?= release
CARGO ?= cargo
INSTALL ?= install
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
SOMAJOR := 0
ifeq ($(PROFILE),release)
CARGO_PROFILE_FLAG := --release
else ifeq ($(PROFILE),debug)
CARGO_PROFILE_FLAG :=
else
$(error PROFILE must be release or debug, not $(PROFILE))
endif
BUILT_LIB := target/$(PROFILE)/libservership.so

# The C library alone; also links libservership.so.0 next to it, so programs linked against the
# build tree (with -Wl,-rpath) find the SONAME they record.
lib:
	$(CARGO) build --lib $(CARGO_PROFILE_FLAG)
	ln -sf libservership.so target/$(PROFILE)/libservership.so.$(SOMAJOR)

install: lib
	@# A maturin build writes the Python extension to the same path; never install that.
	@readelf -d $(BUILT_LIB) | grep -q 'SONAME.*\[libservership\.so\.$(SOMAJOR)\]' || { \
	    echo "$(BUILT_LIB) has no SONAME libservership.so.$(SOMAJOR): not the C library" \
	        "(overwritten by a maturin build?). Run: touch build.rs && make install" >&2; exit 1; }
	$(INSTALL) -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(PKGCONFIGDIR)'
	$(INSTALL) -m 0755 $(BUILT_LIB) '$(DESTDIR)$(LIBDIR)/libservership.so.$(VERSION)'
	ln -sf libservership.so.$(VERSION) '$(DESTDIR)$(LIBDIR)/libservership.so.$(SOMAJOR)'
	ln -sf libservership.so.$(SOMAJOR) '$(DESTDIR)$(LIBDIR)/libservership.so'
	$(INSTALL) -m 0644 include/servership.h '$(DESTDIR)$(INCLUDEDIR)/servership.h'
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    servership.pc.in > '$(DESTDIR)$(PKGCONFIGDIR)/servership.pc'
	chmod 0644 '$(DESTDIR)$(PKGCONFIGDIR)/servership.pc'

uninstall:
	rm -f '$(DESTDIR)$(LIBDIR)/libservership.so.$(VERSION)' \
	    '$(DESTDIR)$(LIBDIR)/libservership.so.$(SOMAJOR)' '$(DESTDIR)$(LIBDIR)/libservership.so' \
	    '$(DESTDIR)$(INCLUDEDIR)/servership.h' '$(DESTDIR)$(PKGCONFIGDIR)/servership.pc'

# Stages an install in target/, builds an example with pkg-config against it and runs it.
install-test:
	tests/c/install.sh
