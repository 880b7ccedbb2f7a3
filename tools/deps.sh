#!/bin/sh
# Install the Debian packages MeMS builds and tests with when they are
# missing, and say so.  Nothing is installed when everything is present.
#   libraries: check, liburing-dev (and pkg-config to find them)
#   the programs the test suite runs on MeMS: python3, perl, sqlite3, git,
#   xz-utils, jq, mawk, setpriv (util-linux) for the ordinary-user runs,
#   and xmllint (libxml2-utils) to check mems-trace's SVG
#   with the argument "bench": the allocators make bench compares against
#   (libjemalloc-dev, libmimalloc-dev, libgoogle-perftools-dev), only
need=""
if [ "$1" = bench ]; then
	for pair in libjemalloc.so.2:libjemalloc-dev libmimalloc.so.2:libmimalloc-dev \
		    libtcmalloc_minimal.so.4:libgoogle-perftools-dev; do
		found=
		for f in /usr/lib/*/"${pair%%:*}" /usr/lib/"${pair%%:*}"; do
			[ -e "$f" ] && found=1
		done
		[ -n "$found" ] || need="$need ${pair#*:}"
	done
else
pkg-config --exists check 2>/dev/null || need="$need check"
[ -f /usr/include/liburing.h ] || need="$need liburing-dev"
for pair in pkg-config:pkg-config python3:python3 perl:perl sqlite3:sqlite3 git:git \
	    xz:xz-utils jq:jq awk:mawk setpriv:util-linux xmllint:libxml2-utils; do
	[ -x "/usr/bin/${pair%%:*}" ] || need="$need ${pair#*:}"
done
fi
[ -z "$need" ] && exit 0
echo "mems: installing missing Debian packages:$need"
if [ "$(id -u)" = 0 ]; then
	SUDO=
elif command -v sudo >/dev/null 2>&1; then
	SUDO=sudo
else
	echo "mems: not root and no sudo: install them with apt-get install$need" >&2
	exit 1
fi
$SUDO apt-get update -qq >/dev/null || exit 1
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null || exit 1
echo "mems: installed$need"
