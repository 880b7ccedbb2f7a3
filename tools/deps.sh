#!/bin/sh
# Install the Debian packages MeMS builds and tests with when they are
# missing, and say so.  Nothing is installed when everything is present.
need=""
pkg-config --exists check 2>/dev/null || need="$need check"
[ -f /usr/include/liburing.h ] || need="$need liburing-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
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
