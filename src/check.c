/*
 * check.c - mems_check(): the whole state, validated.
 *
 * For debugging and for the tests: the 2-D list (node layout, sub-chain
 * links and coverage, no two adjacent holes, the counters), the hole index
 * (each grain's entry its largest hole, each entry above the largest of
 * its group, nothing set past the committed span), the address map
 * (first[] exact, cover[] where a lookup trusts it, every PROCESS segment
 * found from its first and last byte), the slabs' record counts, the runs
 * of small blocks (small.c: each one its held PROCESS segment and its
 * pages in the run map, the partial lists), and the pager's view (touched
 * pages equal to the resident bitmap and to mincore(2), live pages exactly
 * those under PROCESS segments, and the eviction state).  It reports the first
 * inconsistency it finds.  Cost: linear in the committed span and the
 * number of segments, so a debug build (make MEMS_DEBUG=1, which runs it
 * whenever the allocator lock is dropped) is for tests, not production.
 *
 * Runs under the allocator lock and then the pager lock, so the handler
 * and the evictor are quiescent while it looks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bits.h"
#include "diag.h"
#include "evict.h"
#include "internal.h"
#include "small.h"
#include "span.h"

#define FAIL(...)                                                      \
	do {                                                           \
		snprintf(why, len, __VA_ARGS__);                       \
		return -1;                                             \
	} while (0)

/* The hole index, once the chains and first[] are known sound: each
 * grain's entry is the size of its largest hole, each entry above the
 * largest of its group, and nothing set past the committed grains, up to
 * the end of the group that holds the first grain past them. */
static int check_index(const struct mems_fl *fl, char *why, size_t len)
{
	uint64_t used = (fl->committed + FL_GRAIN - 1) / FL_GRAIN;
	const uint32_t *leaf = fl->hmax + fl->hoff[0];

	for (uint64_t g = 0; g < used; g++) {
		uint32_t m = 0;
		for (mems_id c = fl->first[g]; c && fl_seg(fl, c)->start / FL_GRAIN == g;
		     c = fl_seg(fl, c)->next) {
			const struct mems_seg *s = fl_seg(fl, c);
			if (s->type == SEG_HOLE && fl_hsat(s->end - s->start) > m)
				m = fl_hsat(s->end - s->start);
		}
		if (leaf[g] != m)
			FAIL("hole index: the grain at %" PRIu64 " says %" PRIu32
			     " bytes, its largest hole has %" PRIu32, g * FL_GRAIN, leaf[g], m);
	}
	uint64_t u = used;
	int top = 0;
	while (u > FL_FAN && top + 1 < fl->nlevels) {
		u = (u + FL_FAN - 1) / FL_FAN;
		top++;
	}
	if (fl->htop != top)
		FAIL("hole index: searches start at level %d, the committed span needs %d", fl->htop,
		     top);
	for (int k = 0; k < fl->nlevels; k++) {
		const uint32_t *lv = fl->hmax + fl->hoff[k];
		/* to the end of the group that holds the first entry past the
		 * committed span (the whole level would be too long to read) */
		uint64_t n = (used / FL_FAN + 1) * FL_FAN;
		n = n < fl->hlen[k] ? n : fl->hlen[k];
		for (uint64_t i = used; i < n; i++)
			if (lv[i])
				FAIL("hole index: level %d entry %" PRIu64
				     " is past the committed span but says %" PRIu32, k, i, lv[i]);
		for (uint64_t p = 0; k + 1 < fl->nlevels && p < n / FL_FAN; p++) {
			uint32_t m = 0, up = fl->hmax[fl->hoff[k + 1] + p];
			for (unsigned i = 0; i < FL_FAN; i++)
				m = lv[p * FL_FAN + i] > m ? lv[p * FL_FAN + i] : m;
			if (up != m)
				FAIL("hole index maximum %" PRIu32 " at level %d entry %" PRIu64
				     ", should be %" PRIu32, up, k + 1, p, m);
		}
		used = (used + FL_FAN - 1) / FL_FAN;
	}
	return 0;
}

static int check_list(struct mems_fl *fl, uint64_t *process_map, uint64_t ps, char *why,
		      size_t len)
{
	uint64_t pos = 0, nproc = 0, nhole = 0, inuse = 0, inholes = 0, nsegs = 0;
	uint64_t limit = (uint64_t)fl->segs.bump + 1;

	if (fl->nodes.live != fl->nnodes)
		FAIL("%u node records live, %" PRIu64 " nodes", fl->nodes.live, fl->nnodes);
	for (mems_id n = 1; n <= fl->nnodes; n++) {
		const struct mems_node *nd = fl_node(fl, n);
		if (nd->start != pos || nd->end <= nd->start || nd->start % fl->page ||
		    nd->end % fl->page)
			FAIL("node %u spans [%" PRIu64 ", %" PRIu64 "), expected to start at %" PRIu64
			     " on a page boundary", n, nd->start, nd->end, pos);
		mems_id prev = 0;
		uint64_t cnt = 0;
		int prev_hole = 0;
		for (mems_id s = nd->head; s; prev = s, s = fl_seg(fl, s)->next) {
			if (s >= fl->segs.bump || ++cnt > limit)
				FAIL("node %u: sub-chain runs off (record %u)", n, s);
			const struct mems_seg *g = fl_seg(fl, s);
			if (g->type != SEG_PROCESS && g->type != SEG_HOLE)
				FAIL("node %u: a freed record in the sub-chain at %" PRIu64, n, g->start);
			if (g->node != n || g->prev != prev)
				FAIL("segment at %" PRIu64 ": node or prev link wrong", g->start);
			if (g->start != pos || g->end <= g->start || g->end > nd->end)
				FAIL("segment [%" PRIu64 ", %" PRIu64 ") where %" PRIu64
				     " was expected next in node %u", g->start, g->end, pos, n);
			/* the map: first[] names the first segment starting in a grain */
			uint64_t p = g->start / FL_GRAIN;
			int first_in_grain = !prev || fl_seg(fl, prev)->start / FL_GRAIN != p;
			if (first_in_grain && fl->first[p] != s)
				FAIL("address map: grain %" PRIu64 " should start with the segment at %"
				     PRIu64, p, g->start);
			if (g->type == SEG_HOLE) {
				if (prev_hole)
					FAIL("two adjacent holes at %" PRIu64 " (not merged)", g->start);
				nhole++;
				inholes += g->end - g->start;
			} else {
				nproc++;
				inuse += g->end - g->start;
				for (uint64_t q = g->start / ps; process_map && q * ps < g->end; q++)
					process_map[q / 64] |= 1ull << (q % 64);
			}
			prev_hole = g->type == SEG_HOLE;
			pos = g->end;
		}
		if (pos != nd->end || nd->tail != prev || nd->nsegs != cnt)
			FAIL("node %u: sub-chain ends at %" PRIu64 " of %" PRIu64
			     ", %" PRIu64 " segments counted, %" PRIu64 " recorded", n, pos, nd->end,
			     cnt, nd->nsegs);
		/* the chain is sound: now every segment is found by address */
		for (mems_id s = nd->head; s; s = fl_seg(fl, s)->next) {
			const struct mems_seg *g = fl_seg(fl, s);
			if (g->type == SEG_PROCESS && (fl_find_process(fl, g->start) != s ||
						       fl_find_process(fl, g->end - 1) != s))
				FAIL("segment at %" PRIu64 " is not found by address", g->start);
		}
		nsegs += cnt;
	}
	if (pos != fl->committed)
		FAIL("nodes end at %" PRIu64 ", committed is %" PRIu64, pos, fl->committed);
	/* grains in which no segment starts: a lookup looks further back */
	for (uint64_t p = 0; p * FL_GRAIN < fl->committed; p++) {
		mems_id f = fl->first[p];
		if (f && (f >= fl->segs.bump || fl_seg(fl, f)->start / FL_GRAIN != p))
			FAIL("address map: grain %" PRIu64 " names a segment starting elsewhere", p);
	}
	if (nproc != fl->nprocess || nhole != fl->nholes || inuse != fl->bytes_in_use ||
	    inholes != fl->bytes_in_holes)
		FAIL("counters: %" PRIu64 "/%" PRIu64 " PROCESS/HOLE segments and %" PRIu64 "/%" PRIu64
		     " bytes counted, %" PRIu64 "/%" PRIu64 " and %" PRIu64 "/%" PRIu64 " recorded",
		     nproc, nhole, inuse, inholes, fl->nprocess, fl->nholes, fl->bytes_in_use,
		     fl->bytes_in_holes);
	if (fl->segs.live != nsegs)
		FAIL("%u segment records live, %" PRIu64 " in the chains", fl->segs.live, nsegs);
	return check_index(fl, why, len);
}

static uint64_t popcount_words(const uint64_t *w, size_t n)
{
	uint64_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += (uint64_t)bits_count(__atomic_load_n(&w[i], __ATOMIC_RELAXED));
	return c;
}

static int check_pager(struct mems_pager *pg, const uint64_t *process_map, uint64_t committed,
		       char *why, size_t len)
{
	uint64_t pages = committed / pg->ps;

	size_t words = (size_t)((pages + 63) / 64);
	/* kernel mode: touched is mincore(2) by definition, and the resident
	 * bitmap holds only the free pages that may be resident */
	if (pg->mode == MEMS_PAGER_UFFD || pg->mode == MEMS_PAGER_UFFD_USER) {
		/* touched counts every bit it sets, so a stray bit beyond the
		 * committed span shows as a difference here too */
		uint64_t bits = popcount_words(pg->resident, words);
		if (bits != pg->touched)
			FAIL("touched is %" PRIu64 ", the resident bitmap has %" PRIu64
			     " in the committed span", (uint64_t)pg->touched, bits);
		int64_t mc = os_resident_pages(pg->base, committed);
		if (mc >= 0 && (uint64_t)mc != pg->touched)
			FAIL("touched is %" PRIu64 ", mincore(2) says %" PRId64, (uint64_t)pg->touched,
			     mc);
	}
	for (uint64_t w = 0; w < words; w++) {
		uint64_t lw = atomic_load(&pg->live[w]);
		if (lw != process_map[w])
			FAIL("live bitmap word %" PRIu64 " is %#" PRIx64 ", PROCESS segments cover %#"
			     PRIx64, w, lw, process_map[w]);
	}
	if (pg->ev && evict_check(pg, process_map, why, len))
		return -1;
	return 0;
}

int mems_check_locked(char *why, size_t len)
{
	int rc = 0;
	if (mems_g.ready) {
		struct mems_fl *fl = &mems_g.fl;
		struct mems_pager *pg = &mems_g.pg;
		uint64_t ps = os_page_size();
		size_t mbytes = (size_t)((fl->committed / ps + 63) / 64 * 8);
		uint64_t *map = mbytes ? os_map_meta(mbytes) : NULL;
		if (mbytes && !map) {
			snprintf(why, len, "out of memory for the check");
			rc = -1;
		} else {
			pager_lock(pg);
			rc = check_list(fl, map, ps, why, len);
			if (!rc)
				rc = check_pager(pg, map, fl->committed, why, len);
			pthread_mutex_unlock(&pg->lock);
			if (!rc)
				rc = sm_check_locked(why, len);
		}
		if (map)
			os_unmap(map, mbytes);
	}
	return rc;
}

int mems_check(void)
{
	char why[256] = "";
	mems_lock_take();
	int rc = mems_check_locked(why, sizeof why);
	mems_lock_drop();
	if (rc) {
		mems_diag("mems_check: %s", why);
		errno = EUCLEAN;
	}
	return rc;
}
