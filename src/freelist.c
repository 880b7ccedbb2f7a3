/*
 * freelist.c - the 2-D free list.
 *
 * The canonical structure is the assignment's: a main chain of nodes, laid
 * out contiguously in the span in creation order, each with a doubly linked
 * sub-chain of PROCESS and HOLE segments in address order that covers the
 * node exactly.  Stats print from it.  Semantics are the assignment's:
 * the first hole (node order, then sub-chain order) that fits is used and
 * its rest split off as a hole; otherwise a new node of ceil(size/page)
 * pages is appended; a freed segment merges with the adjacent holes of its
 * own sub-chain; nodes are never removed.
 *
 * Two indexes sit beside the chains so that no operation walks them:
 *
 *  - A hole index over the address space rather than over the holes: per
 *    grain (FL_GRAIN bytes) the size of the largest hole starting in it,
 *    and above the grains a tree of maxima, FL_FAN entries (one cache
 *    line) to a group.  Because nodes are in address order, "first hole
 *    in node order then sub-chain order" is "lowest-addressed hole": the
 *    descent to the first grain that holds one that fits reads a line per
 *    level, and the walk of that grain finds it.  A hole that grows raises
 *    the maxima above its grain as far as they change; one that shrinks,
 *    moves out or goes reads its grain again only when it was the
 *    grain's largest.  Unlike a tree of the holes themselves (a treap
 *    here before), the levels are small dense arrays: the upper ones stay
 *    in cache, and the records carry no tree links.
 *
 *  - An address map: first[g] is the first segment that starts in grain g
 *    (FL_GRAIN bytes, kept exact), cover[p] the PROCESS segment over MeMS
 *    page p's first byte (written when the segment is made, for the pages
 *    after its first, and trusted only after a range check, so it is never
 *    cleared).  A lookup reads first[] for its grain, or the nearest grain
 *    before it in its page that has a start, else cover[], and walks at
 *    most the segments that start in one grain: bounded by the grain,
 *    independent of how many segments exist.  (Per page, the walk was the
 *    seed API's main cost with 100,000 live segments of ~270 bytes: 15 to a
 *    page, a cache miss each.)
 *
 * Callers hold the allocator lock.
 */
#include "freelist.h"

#include <errno.h>
#include <string.h>

#include "span.h"

#define SEG(id) fl_seg(fl, (id))

/* ---------------------------------------------------------------------
 * Hole index
 * ------------------------------------------------------------------- */

static uint64_t seg_size(const struct mems_seg *s) { return s->end - s->start; }

/* c, when it is a segment that starts in grain g; else 0.  The segments
 * that start in g are first[g] and those after it while this holds. */
static mems_id in_grain(const struct mems_fl *fl, mems_id c, uint64_t g)
{
	return c && SEG(c)->start / FL_GRAIN == g ? c : 0;
}

static uint32_t *level(const struct mems_fl *fl, int k) { return fl->hmax + fl->hoff[k]; }

/* The largest hole starting in grain g, read off its segments. */
static uint32_t grain_max(const struct mems_fl *fl, uint64_t g)
{
	uint32_t m = 0;
	for (mems_id c = in_grain(fl, fl->first[g], g); c; c = in_grain(fl, SEG(c)->next, g)) {
		const struct mems_seg *s = SEG(c);
		if (s->type == SEG_HOLE && fl_hsat(seg_size(s)) > m)
			m = fl_hsat(seg_size(s));
	}
	return m;
}

/* Grain g's leaf becomes v: carry it up as far as the maxima change. */
static void hs_set(struct mems_fl *fl, uint64_t g, uint32_t v)
{
	for (int k = 0;; k++) {
		uint32_t *lv = level(fl, k), old = lv[g];
		if (old == v)
			return;
		lv[g] = v;
		if (k + 1 == fl->nlevels)
			return;
		uint64_t p = g / FL_FAN;
		uint32_t up = level(fl, k + 1)[p];
		if (v > old) {
			if (v <= up)
				return;
		} else {
			if (old < up)
				return;
			/* it was the largest of its group: the group says */
			const uint32_t *grp = lv + p * FL_FAN;
			v = 0;
			for (unsigned i = 0; i < FL_FAN; i++)
				v = grp[i] > v ? grp[i] : v;
		}
		g = p;
	}
}

/* A hole of size bytes now starts in grain g. */
static void hs_raise(struct mems_fl *fl, uint64_t g, uint64_t size)
{
	if (fl_hsat(size) > level(fl, 0)[g])
		hs_set(fl, g, fl_hsat(size));
}

/* A hole of size bytes starting in grain g shrank, moved out or went:
 * only when it was the grain's largest is the grain read again. */
static void hs_lower(struct mems_fl *fl, uint64_t g, uint64_t size)
{
	if (fl_hsat(size) >= level(fl, 0)[g])
		hs_set(fl, g, grain_max(fl, g));
}

/* Hole h, which started at ostart with osize bytes, changed size or start
 * (or both). */
static void hs_moved(struct mems_fl *fl, mems_id h, uint64_t ostart, uint64_t osize)
{
	uint64_t og = ostart / FL_GRAIN, g = SEG(h)->start / FL_GRAIN, size = seg_size(SEG(h));
	if (og != g || size < osize)
		hs_lower(fl, og, osize);
	if (og != g || size > osize)
		hs_raise(fl, g, size);
}

/* The committed span changed: above level htop, only the first entry of
 * each level can be set, so searches start there. */
static void hs_set_top(struct mems_fl *fl)
{
	uint64_t used = (fl->committed + FL_GRAIN - 1) / FL_GRAIN;
	int k = 0;
	while (used > FL_FAN && k + 1 < fl->nlevels) {
		used = (used + FL_FAN - 1) / FL_FAN;
		k++;
	}
	fl->htop = k;
}

/* The first leaf at or after i whose entry is at least v (> 0), or
 * UINT64_MAX: up through the groups to the right of i until one holds
 * such an entry (no further than level htop, past whose first group
 * nothing is set), then down through the first such child at each
 * level. */
static uint64_t hs_find(const struct mems_fl *fl, uint64_t i, uint32_t v)
{
	int k = 0;
	if (i == 0)
		k = fl->htop;
	for (;; k++) {
		if (i >= fl->hlen[k])
			return UINT64_MAX;
		const uint32_t *lv = level(fl, k);
		uint64_t end = (i / FL_FAN + 1) * FL_FAN;
		while (i < end && lv[i] < v)
			i++;
		if (i < end)
			break;
		if (k >= fl->htop)
			return UINT64_MAX;
		i = end / FL_FAN;
	}
	while (k > 0) {
		const uint32_t *lv = level(fl, --k);
		i *= FL_FAN;
		while (lv[i] < v)       /* the group's maximum is at least v */
			i++;
	}
	return i;
}

mems_id fl_find_fit(const struct mems_fl *fl, uint64_t size)
{
	uint32_t v = size ? fl_hsat(size) : 1;

	/* first fit in node order is first fit by address: the first grain
	 * whose largest hole fits, and the first hole in it that fits (only a
	 * saturated entry, 4 GiB and over, can promise more than it has) */
	for (uint64_t g = hs_find(fl, 0, v); g != UINT64_MAX; g = hs_find(fl, g + 1, v)) {
		for (mems_id c = in_grain(fl, fl->first[g], g); c; c = in_grain(fl, SEG(c)->next, g)) {
			const struct mems_seg *s = SEG(c);
			if (s->type == SEG_HOLE && seg_size(s) >= size)
				return c;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Address map
 * ------------------------------------------------------------------- */

static void first_add(struct mems_fl *fl, mems_id id)
{
	uint64_t g = SEG(id)->start / FL_GRAIN;
	mems_id f = fl->first[g];
	if (!f || SEG(f)->start > SEG(id)->start)
		fl->first[g] = id;
}

/* Segment id leaves grain g, whose first it may be (id still linked). */
static void first_leave(struct mems_fl *fl, mems_id id, uint64_t g)
{
	if (fl->first[g] == id)
		fl->first[g] = in_grain(fl, SEG(id)->next, g);
}

/* Call while id is still linked into its sub-chain. */
static void first_del(struct mems_fl *fl, mems_id id)
{
	first_leave(fl, id, SEG(id)->start / FL_GRAIN);
}

/* Segment id now starts at ns (it grew down or shrank from the front). */
static void move_start(struct mems_fl *fl, mems_id id, uint64_t ns)
{
	struct mems_seg *s = SEG(id);
	if (s->start / FL_GRAIN != ns / FL_GRAIN)
		first_leave(fl, id, s->start / FL_GRAIN);
	s->start = ns;
	first_add(fl, id);
}

static void cover_set(struct mems_fl *fl, mems_id id)
{
	const struct mems_seg *s = SEG(id);
	fl->made = id;
	for (uint64_t p = s->start / fl->page + 1; p * fl->page < s->end; p++)
		fl->cover[p] = id;
}

mems_id fl_find_process(const struct mems_fl *fl, uint64_t off)
{
	mems_id c;

	if (off >= fl->committed)
		return 0;
	/* "mems_get(mems_malloc(n))": the segment made last, first (any
	 * record that is PROCESS and holds off is the answer, and a recycled
	 * one is zeroed: SEG_FREE) */
	c = fl->made;
	if (c && c < fl->segs.bump) {
		const struct mems_seg *m = SEG(c);
		if (m->type == SEG_PROCESS && m->start <= off && off < m->end)
			return c;
	}
	uint64_t p = off / fl->page, g = off / FL_GRAIN, g0 = p * (fl->page / FL_GRAIN);
	mems_id f = fl->first[g];
	/* nothing starts in this grain: the last start before it in the page */
	while (!f && g > g0)
		f = fl->first[--g];
	if (f && SEG(f)->start <= off) {
		/* segments are contiguous: the next one starts at this one's end */
		c = f;
		while (SEG(c)->end <= off && SEG(c)->next)
			c = SEG(c)->next;
	} else if (f) {
		c = SEG(f)->prev;          /* nodes are page aligned: it exists */
	} else {
		c = fl->cover[p];
		if (c >= fl->segs.bump)
			return 0;
	}
	if (!c)
		return 0;
	const struct mems_seg *s = SEG(c);
	if (s->type != SEG_PROCESS || off < s->start || off >= s->end)
		return 0;
	return c;
}

/* ---------------------------------------------------------------------
 * The list
 * ------------------------------------------------------------------- */

int fl_init(struct mems_fl *fl, uint64_t span, uint64_t page)
{
	memset(fl, 0, sizeof *fl);
	uint64_t pages = span / page;
	uint64_t segcap = span / 256;
	if (segcap < 4096)
		segcap = 4096;
	if (segcap > (1u << 26))
		segcap = 1u << 26;
	uint64_t nodecap = pages + 2 < (1u << 26) ? pages + 2 : (1u << 26);

	fl->page = page;
	fl->span = span;
	fl->map_bytes = (size_t)pages * sizeof(mems_id);
	fl->first_bytes = (size_t)(span / FL_GRAIN) * sizeof(mems_id);
	if (slab_init(&fl->segs, sizeof(struct mems_seg), (uint32_t)segcap) != 0)
		goto fail;
	if (slab_init(&fl->nodes, sizeof(struct mems_node), (uint32_t)nodecap) != 0)
		goto fail;
	/* the hole index: levels padded to whole groups, up to one root */
	uint64_t n = span / FL_GRAIN, total = 0;
	for (int k = 0;; k++) {
		fl->hoff[k] = total;
		fl->hlen[k] = (n + FL_FAN - 1) / FL_FAN * FL_FAN;
		total += fl->hlen[k];
		fl->nlevels = k + 1;
		if (n == 1)
			break;
		if (k + 1 == FL_LEVELS)
			goto fail;      /* a span beyond 2^53 bytes */
		n = (n + FL_FAN - 1) / FL_FAN;
	}
	fl->hmax_bytes = (size_t)total * sizeof(uint32_t);
	fl->first = os_map_meta(fl->first_bytes);
	fl->cover = os_map_meta(fl->map_bytes);
	fl->hmax = os_map_meta(fl->hmax_bytes);
	if (!fl->first || !fl->cover || !fl->hmax)
		goto fail;
	return 0;
fail:
	fl_destroy(fl);
	errno = ENOMEM;
	return -1;
}

void fl_destroy(struct mems_fl *fl)
{
	slab_destroy(&fl->segs);
	slab_destroy(&fl->nodes);
	if (fl->first)
		os_unmap(fl->first, fl->first_bytes);
	if (fl->cover)
		os_unmap(fl->cover, fl->map_bytes);
	if (fl->hmax)
		os_unmap(fl->hmax, fl->hmax_bytes);
	memset(fl, 0, sizeof *fl);
}

mems_id fl_add_node(struct mems_fl *fl, uint64_t bytes)
{
	mems_id n = slab_alloc(&fl->nodes);
	if (!n)
		return 0;
	mems_id h = slab_alloc(&fl->segs);
	if (!h) {
		slab_free(&fl->nodes, n);
		errno = ENOMEM;
		return 0;
	}
	struct mems_node *nd = fl_node(fl, n);
	struct mems_seg *s = SEG(h);
	nd->start = s->start = fl->committed;
	nd->end = s->end = fl->committed + bytes;
	nd->head = nd->tail = h;
	nd->nsegs = 1;
	s->node = n;
	s->type = SEG_HOLE;
	fl->committed += bytes;
	hs_set_top(fl);
	fl->nnodes++;
	fl->nholes++;
	fl->bytes_in_holes += bytes;
	first_add(fl, h);
	hs_raise(fl, s->start / FL_GRAIN, bytes);
	return h;
}

void fl_drop_last_node(struct mems_fl *fl, mems_id h)
{
	struct mems_seg *s = SEG(h);
	mems_id n = s->node;
	uint64_t bytes = seg_size(s);
	fl->first[s->start / FL_GRAIN] = 0;
	hs_lower(fl, s->start / FL_GRAIN, bytes);    /* the node's only segment */
	fl->committed -= bytes;
	hs_set_top(fl);
	fl->nnodes--;
	fl->nholes--;
	fl->bytes_in_holes -= bytes;
	slab_free(&fl->segs, h);
	slab_free(&fl->nodes, n);
	/* ids are handed out in order, so the next node gets n again */
}

/* Unlink id from its sub-chain and recycle it. */
static void unlink_seg(struct mems_fl *fl, mems_id id)
{
	struct mems_seg *s = SEG(id);
	struct mems_node *nd = fl_node(fl, s->node);
	first_del(fl, id);
	if (s->prev)
		SEG(s->prev)->next = s->next;
	else
		nd->head = s->next;
	if (s->next)
		SEG(s->next)->prev = s->prev;
	else
		nd->tail = s->prev;
	nd->nsegs--;
	slab_free(&fl->segs, id);
}

/* Link b into a's sub-chain right after a. */
static void link_after(struct mems_fl *fl, mems_id a, mems_id b)
{
	struct mems_seg *as = SEG(a), *bs = SEG(b);
	struct mems_node *nd = fl_node(fl, as->node);
	bs->node = as->node;
	bs->prev = a;
	bs->next = as->next;
	if (as->next)
		SEG(as->next)->prev = b;
	else
		nd->tail = b;
	as->next = b;
	nd->nsegs++;
}

/*
 * The operations below keep a hole's record when the hole only grows or
 * shrinks at one end (its start may move to another grain: hs_moved), and
 * make or recycle records only for the holes that really appear or go.
 * The hole index is told of each change as it is made, one at a time.
 */

mems_id fl_take(struct mems_fl *fl, mems_id h, uint64_t size)
{
	struct mems_seg *hs = SEG(h);
	uint64_t hsize = seg_size(hs);

	if (size == hsize) {
		/* exact fit: the hole itself becomes the segment */
		hs->type = SEG_PROCESS;
		hs_lower(fl, hs->start / FL_GRAIN, size);
		fl->nholes--;
		fl->nprocess++;
		fl->bytes_in_holes -= size;
		fl->bytes_in_use += size;
		cover_set(fl, h);
		return h;
	}
	mems_id p = slab_alloc(&fl->segs);
	if (!p)
		return 0;
	/* the segment is a new record in front of the hole, which keeps the
	 * rest */
	hs = SEG(h);
	struct mems_seg *ps = SEG(p);
	uint64_t a = hs->start;
	ps->start = a;
	ps->end = a + size;
	ps->type = SEG_PROCESS;
	if (hs->prev) {
		link_after(fl, hs->prev, p);
	} else {
		struct mems_node *nd = fl_node(fl, hs->node);
		ps->node = hs->node;
		ps->next = h;
		hs->prev = p;
		nd->head = p;
		nd->nsegs++;
	}
	move_start(fl, h, a + size);
	first_add(fl, p);
	hs_moved(fl, h, a, hsize);
	fl->nprocess++;
	fl->bytes_in_holes -= size;
	fl->bytes_in_use += size;
	cover_set(fl, p);
	return p;
}

mems_id fl_take_at(struct mems_fl *fl, mems_id h, uint64_t at, uint64_t size)
{
	struct mems_seg *hs = SEG(h);
	if (at == hs->start)
		return fl_take(fl, h, size);
	uint64_t end = hs->end;
	mems_id p = slab_alloc(&fl->segs), r = 0;
	if (!p)
		return 0;
	if (at + size < end && !(r = slab_alloc(&fl->segs))) {
		slab_free(&fl->segs, p);
		return 0;
	}
	/* the hole keeps its head, [start, at): its key stays */
	hs = SEG(h);
	uint64_t osize = seg_size(hs);
	hs->end = at;
	hs_moved(fl, h, hs->start, osize);
	struct mems_seg *ps = SEG(p);
	ps->start = at;
	ps->end = at + size;
	ps->type = SEG_PROCESS;
	link_after(fl, h, p);
	first_add(fl, p);
	if (r) {
		struct mems_seg *rs = SEG(r);
		rs->start = at + size;
		rs->end = end;
		rs->type = SEG_HOLE;
		link_after(fl, p, r);
		first_add(fl, r);
		hs_raise(fl, rs->start / FL_GRAIN, end - rs->start);
		fl->nholes++;
	}
	fl->nprocess++;
	fl->bytes_in_holes -= size;
	fl->bytes_in_use += size;
	cover_set(fl, p);
	return p;
}

mems_id fl_shrink(struct mems_fl *fl, mems_id id, uint64_t size)
{
	struct mems_seg *s = SEG(id);
	uint64_t cut = s->start + size, end = s->end;
	mems_id n = s->next;

	if (n && SEG(n)->type == SEG_HOLE) {
		/* the hole after it grows down */
		uint64_t ostart = SEG(n)->start, osize = seg_size(SEG(n));
		s->end = cut;
		move_start(fl, n, cut);
		hs_moved(fl, n, ostart, osize);
	} else {
		mems_id r = slab_alloc(&fl->segs);
		if (!r)
			return 0;
		s = SEG(id);
		s->end = cut;
		struct mems_seg *rs = SEG(r);
		rs->start = cut;
		rs->end = end;
		rs->type = SEG_HOLE;
		link_after(fl, id, r);
		first_add(fl, r);
		hs_raise(fl, cut / FL_GRAIN, end - cut);
		fl->nholes++;
		n = r;
	}
	fl->bytes_in_use -= end - cut;
	fl->bytes_in_holes += end - cut;
	return n;
}

int fl_grow(struct mems_fl *fl, mems_id id, uint64_t size)
{
	struct mems_seg *s = SEG(id);
	uint64_t want = s->start + size, old = s->end;
	mems_id n = s->next;

	if (want <= old)
		return 0;
	if (!n || SEG(n)->type != SEG_HOLE || SEG(n)->end < want)
		return -1;
	uint64_t ostart = SEG(n)->start, osize = seg_size(SEG(n));
	if (SEG(n)->end == want) {
		unlink_seg(fl, n);
		hs_lower(fl, ostart / FL_GRAIN, osize);
		fl->nholes--;
	} else {
		move_start(fl, n, want);
		hs_moved(fl, n, ostart, osize);
	}
	s->end = want;
	fl->bytes_in_use += want - old;
	fl->bytes_in_holes -= want - old;
	cover_set(fl, id);
	return 0;
}

mems_id fl_free(struct mems_fl *fl, mems_id id)
{
	struct mems_seg *s = SEG(id);
	uint64_t start = s->start, end = s->end;
	mems_id r = s->next, l = s->prev;
	int rh = r && SEG(r)->type == SEG_HOLE;
	int lh = l && SEG(l)->type == SEG_HOLE;

	fl->nprocess--;
	fl->bytes_in_use -= end - start;
	fl->bytes_in_holes += end - start;

	if (lh) {
		/* the hole on the left absorbs the segment and any hole after it
		 * (one change to the index at a time: the left hole grows while
		 * the right one is still counted, then the right one goes) */
		SEG(l)->end = rh ? SEG(r)->end : end;
		unlink_seg(fl, id);
		hs_raise(fl, SEG(l)->start / FL_GRAIN, seg_size(SEG(l)));
		if (rh) {
			uint64_t rstart = SEG(r)->start, rsize = seg_size(SEG(r));
			unlink_seg(fl, r);
			hs_lower(fl, rstart / FL_GRAIN, rsize);
			fl->nholes--;
		}
		return l;
	}
	if (rh) {
		/* the hole on the right grows down over the segment */
		uint64_t osize = seg_size(SEG(r));
		unlink_seg(fl, id);
		move_start(fl, r, start);
		hs_moved(fl, r, end, osize);
		return r;
	}
	s->type = SEG_HOLE;
	fl->nholes++;
	hs_raise(fl, start / FL_GRAIN, end - start);
	return id;
}
