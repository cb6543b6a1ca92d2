# Shortcuts for servership developers. CI runs .ci/run, which does all of this and more.
.PHONY: all header test c-test wheel develop ci

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
