#!/bin/sh
# The seed-API scaling pattern counted, not timed: instructions and data
# cache misses per operation (free + malloc + get + a write) with 100 and
# with 100,000 live segments, under cachegrind's simulated caches: a 32 KiB
# L1 and, as its last level, a 1 MiB L2 (this machine's per-core sizes).
# Each figure is the difference of a run of OPS operations and a run of the
# setup alone, divided by OPS.  glibc's malloc and free on the same pattern
# for scale.
#   tools/bench-misses.sh BUILD_DIR [OPS]
set -e
build=${1:?usage: tools/bench-misses.sh BUILD_DIR [OPS]}
ops=${2:-100000}
prog=$build/bench/seed_loop
case $ops in
''|*[!0-9]*|0) echo "bench-misses: OPS must be a positive number, not '$ops'" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "bench-misses: valgrind is not installed" >&2; exit 1; }
[ -x "$prog" ] || { echo "bench-misses: $prog is not built" >&2; exit 1; }

# Ir, D1 misses, L2 (LL) misses of one run, read from cachegrind's summary;
# nothing (and a failure) when the program failed
count() {
	out=$(MEMS_SPAN_SIZE=1G MEMS_PAGER=kernel valgrind --tool=cachegrind --cache-sim=yes \
		--D1=32768,8,64 --LL=1048576,16,64 --cachegrind-out-file=/dev/null \
		"$prog" "$1" "$2" "$3" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	printf '%s\n' "$out" |
	awk '/ I *refs:/ { gsub(",", "", $4); ir = $4 }
	     / D1  misses:/ { gsub(",", "", $4); d1 = $4 }
	     / LLd misses:/ { gsub(",", "", $4); ll = $4 }
	     END { if (ir == "" || d1 == "" || ll == "") exit 1; print ir, d1, ll }'
}

echo "seed-API pattern, per operation (cachegrind: 32 KiB L1, 1 MiB L2), $ops operations"
printf '  %-6s %8s %14s %14s %14s\n' "" "live" "instructions" "L1 misses" "L2 misses"
for who in mems glibc; do
	rows=""
	for live in 100 100000; do
		base=$(count $who $live 0) || { echo "bench-misses: cachegrind failed" >&2; exit 1; }
		full=$(count $who $live "$ops") || { echo "bench-misses: cachegrind failed" >&2; exit 1; }
		rows="$rows$live $base $full
"
	done
	printf '%s' "$rows" | awk -v who=$who -v ops="$ops" '
		{ ir[NR] = ($5 - $2) / ops; d1[NR] = ($6 - $3) / ops; l2[NR] = ($7 - $4) / ops
		  printf "  %-6s %8d %14.1f %14.2f %14.3f\n", who, $1, ir[NR], d1[NR], l2[NR] }
		END { printf "  %-6s %8s %13.2fx\n", who, "ratio", ir[2] / ir[1] }'
done
