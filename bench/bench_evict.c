/*
 * bench_evict.c - the resident cap under load, as ratios measured in one
 * run (absolute figures are printed only to show what the ratios are made
 * of).
 *
 * A region of 4x the cap is first written once, then accessed:
 *   sequential  every page in order, read and rewritten, twice;
 *   random      pages chosen at random, read and rewritten.
 * The same accesses run on MeMS without a cap (everything resident), and
 * the store's own throughput is measured with the same code the evictor
 * and the handler use (store_io, batches of 64 pages for writes; reads of
 * one page at a time and of 64, as page-ins come), on a store opened the
 * same way (O_TMPFILE in $TMPDIR or /tmp, O_DIRECT where allowed).
 *
 * Printed: time per page access with the cap / without; pages written out
 * and read in per second; and those rates against the raw store's.
 *
 * Then the eviction policy, CLOCK against FIFO (MEMS_EVICT_POLICY), on a
 * hot set of half the cap touched every round while a scan streams
 * through 4x the cap: pages read back in, and time, as ratios.
 * Medians of REPS runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "mems.h"
#include "store.h"

#define REPS 3
#define PS 4096u

struct run {
	double secs;             /* the measured accesses */
	uint64_t accesses, outs, ins;
};

/* One workload on MeMS with cap (bytes, 0 for none). */
static struct run workload(uint64_t cap, uint64_t region, int random, uint64_t accesses)
{
	char v[32];
	mems_option_reset();
	snprintf(v, sizeof v, "%llu", (unsigned long long)cap);
	if (mems_option_set("resident_max", v) != 0 || mems_try_init() != 0) {
		fprintf(stderr, "bench_evict: cannot start MeMS with a cap of %s\n", v);
		exit(1);
	}
	uint64_t pages = region / PS, seed = 42, sum = 0;
	unsigned char *p = mems_ptr_malloc(region);
	for (uint64_t i = 0; i < pages; i++)
		p[i * PS] = (unsigned char)i;
	struct mems_stats a, b;
	mems_stats_get(&a);
	double t0 = now();
	for (uint64_t n = 0; n < accesses; n++) {
		uint64_t i = random ? rng(&seed) % pages : n % pages;
		sum += p[i * PS];
		p[i * PS + 8] = (unsigned char)n;
	}
	struct run r = { .secs = now() - t0, .accesses = accesses };
	mems_stats_get(&b);
	r.outs = (b.evictions - a.evictions) + (b.clean_drops - a.clean_drops);
	r.ins = b.page_ins - a.page_ins;
	if (sum == 42)
		printf(" ");
	mems_ptr_free(p);
	mems_finish();
	return r;
}

/* The raw store: pages per second written in batches of 64 and read back
 * in batches of `rbatch`, through store_io. */
static void raw_store(uint64_t pages, unsigned rbatch, double *wps, double *rps)
{
	struct mems_store st;
	struct io_uring ring;
	char why[256];
	if (store_open(&st, "", pages, PS, why, sizeof why) != 0 ||
	    store_ring_init(&ring, 128) != 0) {
		fprintf(stderr, "bench_evict: store: %s\n", why);
		exit(1);
	}
	unsigned char *buf = aligned_alloc(PS, 64 * PS);
	memset(buf, 7, 64 * PS);
	uint64_t slots[64], seed = 9;
	int res[64];
	double t0 = now();
	for (uint64_t i = 0; i < pages; i += 64) {
		for (unsigned k = 0; k < 64; k++)
			slots[k] = i + k;
		struct store_io io = { buf, slots, res, 64 };
		if (store_io(&st, &ring, 1, &io)) {
			fprintf(stderr, "bench_evict: store write failed\n");
			exit(1);
		}
	}
	*wps = (double)pages / (now() - t0);
	uint64_t reads = rbatch == 1 ? pages / 8 : pages;
	t0 = now();
	for (uint64_t i = 0; i < reads; i += rbatch) {
		for (unsigned k = 0; k < rbatch; k++)
			slots[k] = rbatch == 1 ? rng(&seed) % pages : i + k;
		struct store_io io = { buf, slots, res, rbatch };
		if (store_io(&st, &ring, 0, &io)) {
			fprintf(stderr, "bench_evict: store read failed\n");
			exit(1);
		}
	}
	*rps = (double)reads / (now() - t0);
	io_uring_queue_exit(&ring);
	store_close(&st);
	free(buf);
}

/* Hot set + scan under policy: returns the page-ins, *secs the time. */
static uint64_t hot_and_scan(const char *policy, uint64_t cap, double *secs)
{
	char v[32];
	mems_option_reset();
	snprintf(v, sizeof v, "%llu", (unsigned long long)cap);
	if (mems_option_set("resident_max", v) != 0 ||
	    mems_option_set("evict_policy", policy) != 0 || mems_try_init() != 0) {
		fprintf(stderr, "bench_evict: cannot start MeMS (%s)\n", policy);
		exit(1);
	}
	uint64_t hot = cap / 2 / PS, scan = 4 * cap / PS, step = scan / 16, sum = 0;
	unsigned char *h = mems_ptr_malloc(hot * PS), *sc = mems_ptr_malloc(scan * PS);
	struct mems_stats a, b;
	mems_stats_get(&a);
	double t0 = now();
	for (uint64_t round = 0, pos = 0; round < 64; round++) {
		for (uint64_t i = 0; i < hot; i++) {
			sum += h[i * PS];
			h[i * PS + 8] = (unsigned char)round;
		}
		for (uint64_t i = 0; i < step; i++, pos = (pos + 1) % scan)
			sc[pos * PS] = (unsigned char)round;
	}
	*secs = now() - t0;
	mems_stats_get(&b);
	if (sum == 42)
		printf(" ");
	mems_ptr_free(h);
	mems_ptr_free(sc);
	mems_finish();
	return b.page_ins - a.page_ins;
}

int main(void)
{
	const uint64_t cap = 32ull << 20, region = 4 * cap, pages = region / PS;
	static const char *const names[] = { "sequential", "random" };
	const uint64_t accesses[] = { 2 * pages, pages / 2 };
	double slow[2], outps[2], inps[2], capped_us[2], free_us[2];
	double w[REPS], r1[REPS], r64[REPS];

	for (int k = 0; k < REPS; k++)
		raw_store(pages, 1, &w[k], &r1[k]), raw_store(pages, 64, &w[k], &r64[k]);
	double raw_w = median(w, REPS), raw_r1 = median(r1, REPS), raw_r64 = median(r64, REPS);

	for (int m = 0; m < 2; m++) {
		double ratio[REPS], o[REPS], in[REPS], c[REPS], f[REPS];
		for (int k = 0; k < REPS; k++) {
			struct run rc = workload(cap, region, m, accesses[m]);
			struct run rf = workload(0, region, m, accesses[m]);
			ratio[k] = rc.secs / rf.secs;
			o[k] = (double)rc.outs / rc.secs;
			in[k] = (double)rc.ins / rc.secs;
			c[k] = rc.secs / (double)rc.accesses * 1e6;
			f[k] = rf.secs / (double)rf.accesses * 1e6;
		}
		slow[m] = median(ratio, REPS);
		outps[m] = median(o, REPS);
		inps[m] = median(in, REPS);
		capped_us[m] = median(c, REPS);
		free_us[m] = median(f, REPS);
	}

	printf("Resident cap: %llu MiB cap, %llu MiB region (4x), median of %d runs\n",
	       (unsigned long long)(cap >> 20), (unsigned long long)(region >> 20), REPS);
	printf("raw store (store_io, same file kind): write %.0f pages/s (batches of 64), "
	       "read %.0f pages/s (single pages), %.0f pages/s (batches of 64)\n\n",
	       raw_w, raw_r1, raw_r64);
	printf("  %-11s %10s %10s %10s %12s %12s %10s %10s\n", "access", "us/access", "no cap",
	       "cap/nocap", "out pages/s", "in pages/s", "out/raw", "in/raw");
	for (int m = 0; m < 2; m++) {
		double raw_in = m ? raw_r1 : raw_r64;
		printf("  %-11s %10.3f %10.3f %9.1fx %12.0f %12.0f %9.2fx %9.2fx\n", names[m],
		       capped_us[m], free_us[m], slow[m], outps[m], inps[m], outps[m] / raw_w,
		       inps[m] / raw_in);
	}
	printf("\n(out/raw: pages evicted or dropped per second against the raw store's write rate;\n"
	       " in/raw: pages read back per second against its read rate, batches of 64 for\n"
	       " sequential access and single pages for random, as page-ins come)\n");

	double ins[2][REPS], t[2][REPS];
	static const char *const pol[] = { "clock", "fifo" };
	for (int k = 0; k < REPS; k++)
		for (int p = 0; p < 2; p++)
			ins[p][k] = (double)hot_and_scan(pol[p], cap, &t[p][k]);
	double ic = median(ins[0], REPS), ifi = median(ins[1], REPS);
	double tc = median(t[0], REPS), tf = median(t[1], REPS);
	printf("\nEviction policy: a hot set of half the cap, touched every round, while a\n"
	       "scan streams through 4x the cap (64 rounds)\n");
	printf("  %-6s %12s %10s\n", "policy", "page-ins", "seconds");
	printf("  %-6s %12.0f %10.3f\n  %-6s %12.0f %10.3f\n", "clock", ic, tc, "fifo", ifi, tf);
	printf("  clock/fifo: page-ins %.2fx, time %.2fx\n", ic / ifi, tc / tf);
	return 0;
}
