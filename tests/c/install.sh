#!/usr/bin/env bash
# Checks `make install` the way a C project consumes it: stages an install with DESTDIR under
# target/, checks the files, symlinks and SONAME, then builds examples/canonicalize.c and the
# header-only C++ test with nothing but `pkg-config --cflags --libs servership` and runs them
# against the staged library.
#   tests/c/install.sh                  # debug build (quick; what CI uses)
#   PROFILE=release tests/c/install.sh  # the optimised build that `make install` installs by default
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
profile=${PROFILE:-debug}
out=$root/target/c-install
stage=$out/stage
prefix=/usr/local
rm -rf "$out"
mkdir -p "$out"

fail() { echo "FAIL: $*" >&2; exit 1; }
steps=0
step() { steps=$((steps + 1)); echo "-- $*"; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n "$version" ]] || fail "no version in Cargo.toml"

step "make install PROFILE=$profile PREFIX=$prefix DESTDIR=$stage"
make --no-print-directory --quiet install CARGO="cargo --quiet" PROFILE="$profile" \
    PREFIX="$prefix" DESTDIR="$stage"
libdir=$stage$prefix/lib

step "installed files and symlinks"
[[ -f "$libdir/libservership.so.$version" && ! -L "$libdir/libservership.so.$version" ]] \
    || fail "no regular file lib/libservership.so.$version"
[[ "$(readlink "$libdir/libservership.so.0")" == "libservership.so.$version" ]] \
    || fail "lib/libservership.so.0 is not a symlink to libservership.so.$version"
[[ "$(readlink "$libdir/libservership.so")" == libservership.so.0 ]] \
    || fail "lib/libservership.so is not a symlink to libservership.so.0"
cmp -s include/servership.h "$stage$prefix/include/servership.h" || fail "installed header differs"
pc=$libdir/pkgconfig/servership.pc
grep -q "^prefix=$prefix\$" "$pc" || fail "servership.pc: prefix is not $prefix"
grep -q "^Version: $version\$" "$pc" || fail "servership.pc: version is not $version"
! grep -q '@[A-Z]*@' "$pc" || fail "servership.pc has unfilled placeholders"
! grep -q "$stage" "$pc" || fail "servership.pc mentions the DESTDIR"

step "SONAME is libservership.so.0, and no libpython"
dynamic=$(readelf -d "$libdir/libservership.so.$version")
grep -q 'SONAME.*\[libservership\.so\.0\]' <<<"$dynamic" || fail "no SONAME: $dynamic"
! grep -qi 'NEEDED.*libpython' <<<"$dynamic" || fail "the C library needs libpython"

step "pkg-config sees it"
# PKG_CONFIG_SYSROOT_DIR maps the installed paths (/usr/local/...) into the staging directory,
# as when packaging; a real install needs neither variable when PREFIX is on pkg-config's path.
export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
[[ "$(pkg-config --modversion servership)" == "$version" ]] || fail "pkg-config --modversion"
cflags=$(pkg-config --cflags servership | sed "s/ *$//")
libs=$(pkg-config --libs servership | sed "s/ *$//")
[[ "$cflags" == "-I$stage$prefix/include" ]] || fail "pkg-config --cflags gave $cflags"
[[ "$libs" == "-L$libdir -lservership" ]] || fail "pkg-config --libs gave $libs"

step "examples/canonicalize.c built with pkg-config --cflags --libs servership"
# No -I or -L of the build tree: only what pkg-config says.
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -pedantic examples/canonicalize.c \
    $(pkg-config --cflags --libs servership) -o "$out/canonicalize"
readelf -d "$out/canonicalize" | grep -q 'NEEDED.*\[libservership\.so\.0\]' \
    || fail "the program does not record libservership.so.0"
got=$(printf '{"b": 1, "a": [true, null]}' | LD_LIBRARY_PATH=$libdir "$out/canonicalize")
[[ "$got" == '{"a":[true,null],"b":1}' ]] || fail "canonicalize printed $got"
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$out/canonicalize" | grep libservership)
[[ "$resolved" == *"$libdir/libservership.so.0"* ]] || fail "resolved to $resolved"

step "examples/sign_request.c built with pkg-config"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -pedantic examples/sign_request.c \
    $(pkg-config --cflags --libs servership) -o "$out/sign_request"
got=$(LD_LIBRARY_PATH=$libdir "$out/sign_request")
[[ "$got" == *"changed body: 401 M_UNAUTHORIZED" ]] || fail "sign_request printed $got"

step "tests/c/header_only.cpp built with pkg-config (C++)"
# shellcheck disable=SC2046
g++ -std=c++11 -Wall -Wextra -Werror -pedantic tests/c/header_only.cpp \
    $(pkg-config --cflags --libs servership) -o "$out/header_only_cpp"
LD_LIBRARY_PATH=$libdir "$out/header_only_cpp" >/dev/null

step "make uninstall removes every file"
make --no-print-directory --quiet uninstall PREFIX="$prefix" DESTDIR="$stage"
left=$(find "$stage" -type f -o -type l)
[[ -z "$left" ]] || fail "left behind: $left"

echo "install tests: $steps passed, 0 failed"
