/*
 * fuzz_mems.c - libFuzzer target: input bytes become a sequence of calls on
 * both APIs, run against a simple reference model and mems_check().
 *
 * The model knows every live block (MeMS virtual address or pointer, size,
 * the byte it was filled with) and what the list must account for: the
 * bytes in PROCESS segments.  After every call: mems_check() passes, the
 * stats' bytes in use equal the model's, and every block touched by the
 * call still holds its fill byte from end to end; blocks never overlap.
 * Bad calls (frees of addresses that are not blocks, gets outside
 * blocks) are mixed in: they must change nothing.
 *
 * Input: byte 0 picks the setting (uffd, kernel, uffd with a resident
 * cap of 1 MiB, or uffd with small blocks in runs); then each op is 4 bytes: opcode, slot, and a 16-bit
 * argument.  Build and run with `make fuzz` (FUZZ_SECONDS=N, default 60);
 * the seed corpus is tests/fuzz-corpus/.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "mems.h"

#define SLOTS 32

struct block {
	void *v;          /* seed API: MeMS virtual address; else NULL */
	unsigned char *p; /* real pointer */
	size_t size;      /* bytes the caller asked for */
	uint64_t held;    /* bytes of its PROCESS segment */
	unsigned char fill;
};

static struct block blk[SLOTS];
static uint64_t model_bytes;

static void die(const char *what, int slot)
{
	fprintf(stderr, "fuzz_mems: %s (slot %d)\n", what, slot);
	abort();
}

static void verify(int k)
{
	const struct block *b = &blk[k];
	for (size_t i = 0; i < b->size; i++)
		if (b->p[i] != b->fill)
			die("a block lost its contents", k);
	if (b->v && mems_get(b->v) != b->p)
		die("mems_get of a block's start moved", k);
	if (b->v && b->size > 1 && mems_get((char *)b->v + b->size - 1) != b->p + b->size - 1)
		die("mems_get of a block's last byte is wrong", k);
}

static uint64_t held_bytes(const unsigned char *p)
{
	mems_id s = fl_find_process(&mems_g.fl, (uint64_t)(p - (unsigned char *)mems_g.span));
	if (!s)
		die("a live block is not a PROCESS segment", -1);
	if (fl_seg(&mems_g.fl, s)->held)            /* a block of a run (small.c) */
		return mems_ptr_usable_size(p);
	return fl_seg(&mems_g.fl, s)->end - fl_seg(&mems_g.fl, s)->start;
}

static void add(int k, void *v, unsigned char *p, size_t size, unsigned char fill)
{
	for (int j = 0; j < SLOTS; j++)
		if (blk[j].p && p < blk[j].p + blk[j].size && blk[j].p < p + size)
			die("two live blocks overlap", k);
	memset(p, fill, size);
	blk[k] = (struct block){ v, p, size, held_bytes(p), fill };
	model_bytes += blk[k].held;
}

static void drop(int k)
{
	verify(k);
	if (blk[k].v)
		mems_free(blk[k].v);
	else
		mems_ptr_free(blk[k].p);
	model_bytes -= blk[k].held;
	memset(&blk[k], 0, sizeof blk[k]);
}

static void after_op(void)
{
	if (mems_check() != 0)
		die("mems_check failed", -1);
	struct mems_stats st;
	mems_stats_get(&st);
	/* runs count whole in bytes_in_use, their blocks in small_bytes */
	if (st.bytes_in_use - st.small_run_bytes + st.small_bytes != model_bytes) {
		fprintf(stderr, "fuzz_mems: bytes in use %" PRIu64 " (runs %" PRIu64 ", their "
			"blocks %" PRIu64 "), model %" PRIu64 "\n", st.bytes_in_use,
			st.small_run_bytes, st.small_bytes, model_bytes);
		die("bytes in use differ from the model", -1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* uffd, kernel, uffd with a 1 MiB cap (freed pages given back at
	 * once, or kept for the evictor to give back), uffd with small blocks
	 * in runs */
	static const char *const pagers[] = { "uffd", "kernel", "uffd", "uffd" };
	if (len < 1)
		return 0;
	int mode = data[0] % 4;
	mems_option_reset();
	mems_option_set("pager", pagers[mode]);
	mems_option_set("span_size", "256M");
	mems_option_set("resident_max", mode == 2 ? "1M" : "0");
	mems_option_set("purge_delay", mode == 2 && data[0] / 4 % 2 ? "-1" : "0");
	mems_option_set("small_runs", mode == 3 ? "1" : "0");
	if (mems_try_init() != 0)
		die("mems_try_init failed", -1);
	memset(blk, 0, sizeof blk);
	model_bytes = 0;
	int fd = dup(2);
	static int devnull = -1;
	if (devnull < 0)
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	for (size_t i = 1; i + 4 <= len; i += 4) {
		unsigned op = data[i] % 12, k = data[i + 1] % SLOTS;
		unsigned arg = (unsigned)data[i + 2] | (unsigned)data[i + 3] << 8;
		size_t size = 1 + arg % 12000;
		unsigned char fill = (unsigned char)(data[i + 1] ^ data[i + 2]);
		switch (op) {
		case 0: case 1:                              /* seed malloc */
			if (blk[k].p)
				drop(k);
			else {
				void *v = mems_malloc(size);
				if (!v)
					die("mems_malloc failed", (int)k);
				add((int)k, v, mems_get(v), size, fill);
			}
			break;
		case 2: case 3:                              /* pointer malloc/calloc */
			if (blk[k].p) {
				drop(k);
			} else {
				unsigned char *p = op == 2 ? mems_ptr_malloc(size) : mems_ptr_calloc(1, size);
				if (!p)
					die("malloc failed", (int)k);
				if (op == 3)
					for (size_t j = 0; j < size; j++)
						if (p[j])
							die("calloc memory is not zero", (int)k);
				add((int)k, NULL, p, size, fill);
			}
			break;
		case 4: {                                    /* aligned */
			if (blk[k].p) {
				drop(k);
				break;
			}
			size_t align = (size_t)16 << (arg % 9);
			unsigned char *p = mems_ptr_aligned(align, size);
			if (!p || (uintptr_t)p % align)
				die("aligned allocation failed or misaligned", (int)k);
			add((int)k, NULL, p, size, fill);
			break;
		}
		case 5:                                      /* realloc */
			if (blk[k].p && !blk[k].v) {
				verify(k);
				size_t keep = blk[k].size < size ? blk[k].size : size;
				unsigned char old = blk[k].fill;
				model_bytes -= blk[k].held;
				unsigned char *p = mems_ptr_realloc(blk[k].p, size);
				if (!p)
					die("realloc failed", (int)k);
				for (size_t j = 0; j < keep; j++)
					if (p[j] != old)
						die("realloc lost contents", (int)k);
				memset(&blk[k], 0, sizeof blk[k]);
				add((int)k, NULL, p, size, fill);
			}
			break;
		case 6:                                      /* get inside and outside */
			if (blk[k].v) {
				verify(k);
				size_t off = arg % (blk[k].size + 64);
				unsigned char *p = mems_get((char *)blk[k].v + off);
				if (off < blk[k].size && p != blk[k].p + off)
					die("interior mems_get is wrong", (int)k);
				if (off >= blk[k].held && p &&
				    fl_find_process(&mems_g.fl, (uint64_t)(p - (unsigned char *)mems_g.span)) == 0)
					die("mems_get returned memory outside any block", (int)k);
			} else {
				(void)mems_get((void *)(uintptr_t)(1000 + (uint64_t)arg * 37));
			}
			break;
		case 7:                                      /* bad frees: quiet */
			dup2(devnull, 2);
			if (blk[k].p && blk[k].size > 1) {
				if (blk[k].v)
					mems_free((char *)blk[k].v + 1);
				else
					mems_ptr_free(blk[k].p + 1 + arg % (blk[k].size - 1));
			}
			/* an arbitrary MeMS virtual address, unless it is a live
			 * block's (then the free is a good one, which the model
			 * would not know of: with runs, blocks are dense) */
			uintptr_t va = (uintptr_t)arg * 11;
			int live = 0;
			for (int j = 0; j < SLOTS; j++)
				if (blk[j].p && (uintptr_t)blk[j].p - (uintptr_t)mems_g.span + 1000 == va)
					live = 1;
			if (!live)
				mems_free((void *)va);
			dup2(fd, 2);
			break;
		case 8:                                      /* rewrite */
			if (blk[k].p) {
				verify(k);
				blk[k].fill = fill;
				memset(blk[k].p, fill, blk[k].size);
			}
			break;
		case 9: {                                    /* stats */
			char js[4096];
			if (mems_stats_json(js, sizeof js) <= 0)
				die("no stats JSON", -1);
			break;
		}
		default:                                     /* verify all */
			for (int j = 0; j < SLOTS; j++)
				if (blk[j].p)
					verify(j);
			break;
		}
		after_op();
	}
	for (int j = 0; j < SLOTS; j++)
		if (blk[j].p)
			drop(j);
	after_op();
	struct mems_stats st;
	mems_stats_get(&st);
	/* what is left is this thread's own (empty) runs */
	if (st.process_segments != st.small_runs || st.bytes_in_use != st.small_run_bytes ||
	    st.small_blocks)
		die("blocks left after freeing all", -1);
	close(fd);
	mems_finish();
	return 0;
}
