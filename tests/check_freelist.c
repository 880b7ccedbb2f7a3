/*
 * check_freelist.c - the 2-D list and its indexes, without the pager.
 */
#include "testutil.h"
#include "freelist.h"

#define PG MEMS_PAGE_SIZE
/* the unit of the random tests' larger sizes: a page, up to 64 KiB (with
 * larger pages, sizes of many pages would commit gigabytes, and each
 * check reads the index for all of it) */
#define UNIT (PG < 65536 ? PG : 65536)

/* The hole index against the chains: each grain's entry is its largest
 * hole, each entry above the largest of its group, and nothing is set
 * past the committed span. */
static void index_check(const struct mems_fl *fl)
{
	uint64_t used = (fl->committed + FL_GRAIN - 1) / FL_GRAIN;
	for (uint64_t g = 0; g < used; g++) {
		uint32_t m = 0;
		for (mems_id c = fl->first[g]; c && fl_seg(fl, c)->start / FL_GRAIN == g;
		     c = fl_seg(fl, c)->next) {
			const struct mems_seg *sg = fl_seg(fl, c);
			uint32_t v = fl_hsat(sg->end - sg->start);
			if (sg->type == SEG_HOLE && v > m)
				m = v;
		}
		ck_assert_uint_eq(fl->hmax[fl->hoff[0] + g], m);
	}
	for (int k = 0; k < fl->nlevels; k++) {
		const uint32_t *lv = fl->hmax + fl->hoff[k];
		uint64_t n = ((used ? used : 1) + FL_FAN - 1) / FL_FAN * FL_FAN;
		for (uint64_t i = used; i < n; i++)
			ck_assert_uint_eq(lv[i], 0);
		for (uint64_t p = 0; k + 1 < fl->nlevels && p < n / FL_FAN; p++) {
			uint32_t m = 0;
			for (unsigned i = 0; i < FL_FAN; i++)
				m = lv[p * FL_FAN + i] > m ? lv[p * FL_FAN + i] : m;
			ck_assert_uint_eq(fl->hmax[fl->hoff[k + 1] + p], m);
		}
		used = (used + FL_FAN - 1) / FL_FAN;
	}
	ck_assert_uint_eq(fl->hlen[fl->nlevels - 1], FL_FAN);   /* one root */
}

/* The first hole that fits, by walking the chains as the assignment does. */
static mems_id first_fit_by_walk(const struct mems_fl *fl, uint64_t size)
{
	for (mems_id n = 1; n <= fl->nnodes; n++)
		for (mems_id s = fl_node(fl, n)->head; s; s = fl_seg(fl, s)->next)
			if (fl_seg(fl, s)->type == SEG_HOLE &&
			    fl_seg(fl, s)->end - fl_seg(fl, s)->start >= size)
				return s;
	return 0;
}

/* Every invariant of the list and its indexes. */
static void fl_check(const struct mems_fl *fl)
{
	uint64_t off = 0, np = 0, nh = 0, bu = 0, bh = 0;
	for (mems_id n = 1; n <= fl->nnodes; n++) {
		const struct mems_node *nd = fl_node(fl, n);
		ck_assert_uint_eq(nd->start, off);
		ck_assert_uint_eq(nd->start % PG, 0);
		ck_assert_uint_eq(nd->end % PG, 0);
		uint64_t cnt = 0, at = nd->start;
		mems_id prev = 0;
		int prev_hole = 0;
		for (mems_id s = nd->head; s; s = fl_seg(fl, s)->next) {
			const struct mems_seg *sg = fl_seg(fl, s);
			ck_assert_uint_eq(sg->start, at);
			ck_assert_uint_gt(sg->end, sg->start);
			ck_assert_uint_eq(sg->prev, prev);
			ck_assert_uint_eq(sg->node, n);
			int hole = sg->type == SEG_HOLE;
			ck_assert(hole || sg->type == SEG_PROCESS);
			ck_assert(!(hole && prev_hole));          /* merged */
			/* first[] is exact, per grain */
			uint64_t p = sg->start / FL_GRAIN;
			if (!prev || fl_seg(fl, prev)->start / FL_GRAIN != p)
				ck_assert_uint_eq(fl->first[p], s);
			if (hole) {
				nh++;
				bh += sg->end - sg->start;
			} else {
				np++;
				bu += sg->end - sg->start;
				/* every byte class of address finds it */
				ck_assert_uint_eq(fl_find_process(fl, sg->start), s);
				ck_assert_uint_eq(fl_find_process(fl, sg->end - 1), s);
				ck_assert_uint_eq(fl_find_process(fl, (sg->start + sg->end) / 2), s);
			}
			if (hole)
				ck_assert_uint_eq(fl_find_process(fl, sg->start), 0);
			/* and so does every grain of the address map it spans, at
			 * its first and last byte (the lookup reads first[] there,
			 * or looks back within the page, or reads cover[]) */
			uint64_t g = (sg->start / FL_GRAIN + 1) * FL_GRAIN;
			for (int k = 0; g < sg->end && k < 64; g += FL_GRAIN, k++) {
				ck_assert_uint_eq(fl_find_process(fl, g), hole ? 0 : s);
				ck_assert_uint_eq(fl_find_process(fl, g - 1), hole ? 0 : s);
			}
			prev_hole = hole;
			at = sg->end;
			prev = s;
			cnt++;
		}
		ck_assert_uint_eq(at, nd->end);
		ck_assert_uint_eq(nd->tail, prev);
		ck_assert_uint_eq(nd->nsegs, cnt);
		off = nd->end;
	}
	ck_assert_uint_eq(off, fl->committed);
	ck_assert_uint_eq(np, fl->nprocess);
	ck_assert_uint_eq(nh, fl->nholes);
	ck_assert_uint_eq(bu, fl->bytes_in_use);
	ck_assert_uint_eq(bh, fl->bytes_in_holes);
	index_check(fl);
}

/* The assignment's allocation step on the bare list. */
static uint64_t fl_malloc(struct mems_fl *fl, uint64_t size)
{
	mems_id h = fl_find_fit(fl, size);
	ck_assert_uint_eq(h, first_fit_by_walk(fl, size));
	if (!h)
		h = fl_add_node(fl, (size + PG - 1) / PG * PG);
	ck_assert_uint_ne(h, 0);
	mems_id s = fl_take(fl, h, size);
	ck_assert_uint_ne(s, 0);
	return fl_seg(fl, s)->start;
}

static void fl_free_at(struct mems_fl *fl, uint64_t off)
{
	mems_id s = fl_find_process(fl, off);
	ck_assert_uint_ne(s, 0);
	ck_assert_uint_eq(fl_seg(fl, s)->start, off);
	fl_free(fl, s);
}

START_TEST(first_fit_in_node_then_subchain_order)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1 << 26, PG), 0);
	uint64_t a = fl_malloc(&fl, 1000);           /* node 1 */
	uint64_t b = fl_malloc(&fl, 2000);
	uint64_t c = fl_malloc(&fl, PG - 2000);      /* does not fit: node 2 */
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(b, 1000);
	ck_assert_uint_eq(c, PG);
	fl_free_at(&fl, a);                          /* hole of 1000 at 0 */
	ck_assert_uint_eq(fl_malloc(&fl, 900), 0);   /* lowest fitting hole */
	ck_assert_uint_eq(fl_malloc(&fl, 1000), 3000); /* 100 at 900 too small */
	fl_check(&fl);
	fl_destroy(&fl);
}
END_TEST

START_TEST(free_merges_both_sides_but_not_across_nodes)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1 << 26, PG), 0);
	uint64_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = fl_malloc(&fl, PG / 4);            /* fills node 1 exactly */
	uint64_t y = fl_malloc(&fl, 10);             /* node 2 */
	ck_assert_uint_eq(fl.nnodes, 2);
	fl_free_at(&fl, x[1]);
	fl_free_at(&fl, x[3]);
	ck_assert_uint_eq(fl.nholes, 3);             /* two in node 1, tail of node 2 */
	fl_free_at(&fl, x[2]);                       /* merges 1,2,3 */
	ck_assert_uint_eq(fl_node(&fl, 1)->nsegs, 2);
	fl_free_at(&fl, y);
	ck_assert_uint_eq(fl_node(&fl, 2)->nsegs, 1);
	fl_free_at(&fl, x[0]);
	ck_assert_uint_eq(fl_node(&fl, 1)->nsegs, 1);
	ck_assert_uint_eq(fl.nholes, 2);             /* one per node: never across */
	ck_assert_uint_eq(fl.nnodes, 2);             /* nodes stay */
	fl_check(&fl);
	fl_destroy(&fl);
}
END_TEST

START_TEST(lookup_handles_many_segments_in_a_page_and_big_segments)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1 << 28, PG), 0);
	uint64_t big = fl_malloc(&fl, 50 * PG + 7);
	uint64_t tiny[300];
	for (int i = 0; i < 300; i++)
		tiny[i] = fl_malloc(&fl, 1 + i % 3);
	fl_check(&fl);
	ck_assert_uint_eq(fl_find_process(&fl, big + 33 * PG + 5), fl_find_process(&fl, big));
	for (int i = 0; i < 300; i += 2)
		fl_free_at(&fl, tiny[i]);
	fl_check(&fl);
	fl_free_at(&fl, big);
	/* stale cover entries of the freed big segment find nothing */
	ck_assert_uint_eq(fl_find_process(&fl, big + 20 * PG), 0);
	uint64_t again = fl_malloc(&fl, 10 * PG);
	ck_assert_uint_eq(again, big);
	ck_assert_uint_eq(fl_find_process(&fl, big + 20 * PG), 0);
	ck_assert_uint_ne(fl_find_process(&fl, big + 9 * PG), 0);
	fl_check(&fl);
	fl_destroy(&fl);
}
END_TEST

START_TEST(random_operations_keep_every_invariant)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1ull << 32, PG), 0);
	uint64_t live[512], seed = 0x1234567 + (uint64_t)_i;
	int n = 0;
	for (int op = 0; op < 6000; op++) {
		if (n < 512 && (n == 0 || t_rand(&seed) % 100 < 55)) {
			uint64_t r = t_rand(&seed) % 100;
			uint64_t size = r < 70 ? 1 + t_rand(&seed) % 256 :
					r < 97 ? 1 + t_rand(&seed) % (3 * UNIT) :
						 1 + t_rand(&seed) % (40 * UNIT);
			live[n++] = fl_malloc(&fl, size);
		} else {
			int k = (int)(t_rand(&seed) % (uint64_t)n);
			fl_free_at(&fl, live[k]);
			live[k] = live[--n];
		}
		if (op % 500 == 0)
			fl_check(&fl);
	}
	fl_check(&fl);
	while (n)
		fl_free_at(&fl, live[--n]);
	fl_check(&fl);
	ck_assert_uint_eq(fl.nprocess, 0);
	ck_assert_uint_eq(fl.nholes, fl.nnodes);
	fl_destroy(&fl);
}
END_TEST

/* Aligned allocation, shrink and grow in place, mixed with the rest. */
START_TEST(aligned_shrink_grow_keep_every_invariant)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1ull << 32, PG), 0);
	uint64_t live[400], seed = 777 + (uint64_t)_i;
	int n = 0;
	for (int op = 0; op < 8000; op++) {
		uint64_t r = t_rand(&seed) % 100;
		if (n < 400 && (n == 0 || r < 35)) {
			uint64_t size = 1 + t_rand(&seed) % (r < 30 ? 300 : 3 * UNIT);
			live[n++] = fl_malloc(&fl, size);
		} else if (n < 400 && r < 50) {
			uint64_t align = 16ull << (t_rand(&seed) % 10);   /* 16 .. 8192 */
			uint64_t size = 1 + t_rand(&seed) % 2000;
			mems_id h = fl_find_fit(&fl, size + align - 1);
			ck_assert_uint_eq(h, first_fit_by_walk(&fl, size + align - 1));
			if (!h)
				h = fl_add_node(&fl, (size + align - 1 + PG - 1) / PG * PG);
			uint64_t at = (fl_seg(&fl, h)->start + align - 1) / align * align;
			mems_id sg = fl_take_at(&fl, h, at, size);
			ck_assert_uint_ne(sg, 0);
			ck_assert_uint_eq(fl_seg(&fl, sg)->start % align, 0);
			live[n++] = at;
		} else if (r < 65) {
			mems_id sg = fl_find_process(&fl, live[t_rand(&seed) % (uint64_t)n]);
			uint64_t sz = fl_seg(&fl, sg)->end - fl_seg(&fl, sg)->start;
			if (sz > 1)
				ck_assert_uint_ne(fl_shrink(&fl, sg, 1 + t_rand(&seed) % (sz - 1)), 0);
		} else if (r < 80) {
			mems_id sg = fl_find_process(&fl, live[t_rand(&seed) % (uint64_t)n]);
			struct mems_seg *x = fl_seg(&fl, sg);
			uint64_t want = x->end - x->start + 1 + t_rand(&seed) % 600;
			mems_id nx = x->next;
			int fits = nx && fl_seg(&fl, nx)->type == SEG_HOLE &&
				   fl_seg(&fl, nx)->end >= x->start + want;
			ck_assert_int_eq(fl_grow(&fl, sg, want), fits ? 0 : -1);
			if (fits)
				ck_assert_uint_eq(fl_seg(&fl, sg)->end - fl_seg(&fl, sg)->start, want);
		} else {
			int k = (int)(t_rand(&seed) % (uint64_t)n);
			fl_free_at(&fl, live[k]);
			live[k] = live[--n];
		}
		if (op % 250 == 0)
			fl_check(&fl);
	}
	fl_check(&fl);
	while (n)
		fl_free_at(&fl, live[--n]);
	fl_check(&fl);
	ck_assert_uint_eq(fl.nholes, fl.nnodes);
	fl_destroy(&fl);
}
END_TEST

/* Holes of 4 GiB and more share the index's largest entry: the search
 * goes on past a grain whose saturated entry promised more than it had. */
START_TEST(holes_over_4_gib_are_found_in_first_fit_order)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1ull << 36, PG), 0);
	uint64_t gib = 1ull << 30, extra = PG > (2u << 20) ? PG : 2u << 20;
	mems_id a = fl_add_node(&fl, 4 * gib + extra);        /* 4 GiB + 2 MiB (or a page) */
	mems_id b = fl_add_node(&fl, 6 * gib);
	mems_id c = fl_add_node(&fl, 5 * gib);
	ck_assert_uint_ne(a && b && c, 0);
	ck_assert_uint_eq(fl_find_fit(&fl, 100), a);
	ck_assert_uint_eq(fl_find_fit(&fl, 4 * gib), a);
	ck_assert_uint_eq(fl_find_fit(&fl, 4 * gib + extra), a);
	ck_assert_uint_eq(fl_find_fit(&fl, 4 * gib + extra + 1), b);
	ck_assert_uint_eq(fl_find_fit(&fl, 5 * gib + 1), b);
	ck_assert_uint_eq(fl_find_fit(&fl, 6 * gib), b);
	ck_assert_uint_eq(fl_find_fit(&fl, 6 * gib + 1), 0);
	/* a hole past 4 GiB that shrinks below it, then under another */
	ck_assert_uint_ne(fl_take(&fl, b, 2 * gib + PG), 0);   /* 4 GiB less a page left */
	ck_assert_uint_eq(fl_find_fit(&fl, 4 * gib + 1), a);
	ck_assert_uint_eq(fl_find_fit(&fl, 4 * gib + extra + 1), c);
	ck_assert_uint_eq(fl_find_fit(&fl, 5 * gib + 1), 0);
	fl_destroy(&fl);
}
END_TEST

START_TEST(out_of_records_is_enomem_and_harmless)
{
	struct mems_fl fl;
	ck_assert_int_eq(fl_init(&fl, 1 << 26, PG), 0);
	fl.segs.cap = 4;                      /* ids 1..3 */
	mems_id h = fl_add_node(&fl, PG);
	ck_assert_uint_ne(fl_take(&fl, h, 10), 0);        /* 2 records */
	h = fl_find_fit(&fl, 10);
	ck_assert_uint_ne(fl_take(&fl, h, 10), 0);        /* 3 records */
	h = fl_find_fit(&fl, 10);
	errno = 0;
	ck_assert_uint_eq(fl_take(&fl, h, 10), 0);        /* needs a 4th */
	ck_assert_int_eq(errno, ENOMEM);
	fl_check(&fl);
	ck_assert_uint_ne(fl_take(&fl, h, PG - 20), 0);   /* exact fit needs none */
	fl_check(&fl);
	fl_destroy(&fl);
}
END_TEST

Suite *freelist_suite(void)
{
	Suite *s = suite_create("freelist");
	TCase *tc = tcase_create("list");
	tcase_add_test(tc, first_fit_in_node_then_subchain_order);
	tcase_add_test(tc, free_merges_both_sides_but_not_across_nodes);
	tcase_add_test(tc, lookup_handles_many_segments_in_a_page_and_big_segments);
	tcase_add_loop_test(tc, random_operations_keep_every_invariant, 0, 4);
	tcase_add_loop_test(tc, aligned_shrink_grow_keep_every_invariant, 0, 4);
	tcase_add_test(tc, holes_over_4_gib_are_found_in_first_fit_order);
	tcase_add_test(tc, out_of_records_is_enomem_and_harmless);
	suite_add_tcase(s, tc);
	return s;
}
