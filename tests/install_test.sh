#!/bin/sh
# install_test.sh - make install into a scratch prefix, then build the
# assignment's example against it through pkg-config, shared and static,
# and run both.  Prints "install: N passed, M failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "install: FAIL: $*"; }

# a plain build of its own, whatever build the caller's make is doing,
# but of the caller's page size (make MEMS_PAGE_SIZE=N check)
unset MAKEFLAGS MFLAGS MAKELEVEL CFLAGS EXTRA_CFLAGS BUILD
page=${MEMS_PAGE_SIZE:-4096}
export MEMS_PAGE_SIZE=$page
make -s -C "$top" install BUILD="$tmp/build" PREFIX="$tmp/prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; ko "make install"; }
for f in include/mems.h lib/libmems.a lib/libmems.so lib/libmems.so.0 lib/pkgconfig/mems.pc \
	 lib/libmems-preload.so bin/mems-trace; do
	[ -e "$tmp/prefix/$f" ] && ok || ko "missing $f"
done
soname=$(readelf -d "$tmp/prefix/lib/libmems.so" 2>/dev/null | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libmems.so.0 ] && ok || ko "soname is '$soname'"

export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc=${CC:-cc}
if $cc -o "$tmp/ex-shared" "$top/examples/example.c" $(pkg-config --cflags --libs mems) 2>"$tmp/err"; then
	ok
	out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/ex-shared")
	echo "$out" | grep -q "Value written: 200" && ok || ko "shared example output"
	ldd "$tmp/ex-shared" | grep -q "$tmp/prefix/lib/libmems.so.0" || \
		LD_LIBRARY_PATH="$tmp/prefix/lib" ldd "$tmp/ex-shared" | grep -q "libmems.so.0 => $tmp" && ok || ko "not linked to libmems.so.0"
else
	cat "$tmp/err"; ko "shared build"
fi
libdir=$(pkg-config --variable=libdir mems)
if $cc -static -o "$tmp/ex-static" "$top/examples/example.c" \
	$(pkg-config --cflags --static --libs mems) 2>"$tmp/err"; then
	ok
	"$tmp/ex-static" | grep -q "Value written: 200" && ok || ko "static example output"
else
	cat "$tmp/err"; ko "static build"
fi
# MEMS_STATS_ON_EXIT reports at exit in a static program that calls no
# stats function (the report must not depend on stats.o being linked in)
cat >"$tmp/exit.c" <<'EOF'
#include <mems.h>
int main(void)
{
	mems_init();
	char *p = mems_get(mems_malloc(100));
	return p ? (*p = 1, 0) : 1;
}
EOF
if $cc -static -o "$tmp/exit-static" "$tmp/exit.c" $(pkg-config --cflags --static --libs mems) 2>"$tmp/err"; then
	err=$(MEMS_STATS_ON_EXIT=1 "$tmp/exit-static" 2>&1 >/dev/null)
	echo "$err" | grep -q '^Pages touched:' && ok || ko "static stats on exit: '$err'"
else
	cat "$tmp/err"; ko "static build of exit.c"
fi
# the library never calls malloc, and exports only the mems_ API
lib=$tmp/prefix/lib
calls=$(nm -u "$lib/libmems.a" | grep -wE 'malloc|calloc|realloc|free|reallocarray|posix_memalign|aligned_alloc|memalign|strdup|strndup')
[ -z "$calls" ] && ok || ko "libmems.a calls: $calls"
exported=$(nm -D --defined-only "$lib/libmems.so" | awk '{print $3}' | sort | tr '\n' ' ')
declared=$(sed -n 's/^MEMS_API [^(]*[ *]\([a-z_]*\)(.*/\1/p' "$top/include/mems.h" | sort | tr '\n' ' ')
[ "$exported" = "$declared" ] && ok || ko "libmems.so exports '$exported', mems.h declares '$declared'"
# the installed preload library runs a program's heap on MeMS
out=$(LD_PRELOAD="$lib/libmems-preload.so" MEMS_STATS_ON_EXIT=1 ls -d / 2>&1)
echo "$out" | grep -q '^/$' && echo "$out" | grep -q '^Pager:	uffd' && ok || ko "preload: $out"
pexports=$(nm -D --defined-only "$lib/libmems-preload.so" | awk '{print $3}' | grep -v '^mems_' | sort | tr '\n' ' ')
want="__libc_calloc __libc_free __libc_malloc __libc_memalign __libc_pvalloc __libc_realloc __libc_valloc __posix_memalign aligned_alloc calloc cfree free mallinfo mallinfo2 malloc malloc_info malloc_stats malloc_trim malloc_usable_size mallopt memalign posix_memalign pvalloc realloc reallocarray valloc "
[ "$pexports" = "$want" ] && ok || ko "preload exports '$pexports'"
# the installed mems-trace finds the installed preload library
tout=$("$tmp/prefix/bin/mems-trace" -o "$tmp/t.trc" -- ls -d / 2>&1)
echo "$tout" | grep -q '^faults ' && [ -s "$tmp/t.trc" ] && ok || ko "mems-trace: $tout"
grep -q "^#define MEMS_PAGE_SIZE $page\$" "$tmp/prefix/include/mems.h" && ok || ko "installed page size is not $page"
# a page size that is not a power of two stops the build, with a message
compile_mems() {
	$cc -std=gnu11 -D_GNU_SOURCE -fsyntax-only -I"$top/include" -I"$top/src" \
		-DMEMS_PAGE_SIZE="$1" "$top/src/mems.c" 2>&1
}
for bad in 12288 2048; do
	err=$(compile_mems $bad) && ko "MEMS_PAGE_SIZE=$bad builds" ||
		{ echo "$err" | grep -q "MEMS_PAGE_SIZE must be a power of two" && ok || ko "MEMS_PAGE_SIZE=$bad: $err"; }
done
err=$(compile_mems 8192) && ok || ko "MEMS_PAGE_SIZE=8192 does not build: $err"
# uninstall takes away every file install put there, and nothing else
touch "$tmp/prefix/lib/other.so"
make -s -C "$top" uninstall PREFIX="$tmp/prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; ko "make uninstall"; }
left=$(cd "$tmp/prefix" && find . ! -type d | sort | tr '\n' ' ')
[ "$left" = "./lib/other.so " ] && ok || ko "after uninstall: '$left'"
echo "install: $pass passed, $fail failed"
[ "$fail" = 0 ]
