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
 *  - Holes are also kept in a treap keyed by address, each subtree knowing
 *    its largest hole.  Because nodes are in address order, "first hole in
 *    node order then sub-chain order" is "lowest-addressed hole", and the
 *    descent that finds it is O(log n).  With parent links, a hole that
 *    changes size fixes the maxima from itself up only as far as they
 *    change, and holes come and go by rotations (insert as a leaf and
 *    rotate up; rotate down to a leaf and cut off).
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
 * Treap of holes
 * ------------------------------------------------------------------- */

static uint64_t seg_size(const struct mems_seg *s) { return s->end - s->start; }

static void tp_pull(struct mems_fl *fl, mems_id t)
{
	struct mems_seg *s = SEG(t);
	uint64_t m = seg_size(s);
	if (s->tl && SEG(s->tl)->tmax > m)
		m = SEG(s->tl)->tmax;
	if (s->tr && SEG(s->tr)->tmax > m)
		m = SEG(s->tr)->tmax;
	s->tmax = m;
}

/* Make c (may be 0) the left (right if r) child of p, or the root if p is
 * 0. */
static void tp_link(struct mems_fl *fl, mems_id p, int r, mems_id c)
{
	if (!p)
		fl->root = c;
	else if (r)
		SEG(p)->tr = c;
	else
		SEG(p)->tl = c;
	if (c)
		SEG(c)->tp = p;
}

static int tp_is_right(struct mems_fl *fl, mems_id p, mems_id c)
{
	return p && SEG(p)->tr == c;
}

/* Rotate x above its parent p; their maxima are made afresh (the set of
 * holes under the pair's top does not change, so nothing above). */
static void tp_rotate_up(struct mems_fl *fl, mems_id x)
{
	struct mems_seg *xs = SEG(x);
	mems_id p = xs->tp, g = SEG(p)->tp;
	int pr = tp_is_right(fl, g, p);
	if (SEG(p)->tl == x) {
		tp_link(fl, p, 0, xs->tr);
		tp_link(fl, x, 1, p);
	} else {
		tp_link(fl, p, 1, xs->tl);
		tp_link(fl, x, 0, p);
	}
	tp_link(fl, g, pr, x);
	tp_pull(fl, p);
	tp_pull(fl, x);
}

/* t's subtree changed below it: make the maxima afresh from t up, as far
 * as they change. */
static void tp_fix_up(struct mems_fl *fl, mems_id t)
{
	while (t) {
		uint64_t was = SEG(t)->tmax;
		tp_pull(fl, t);
		if (SEG(t)->tmax == was)
			return;
		t = SEG(t)->tp;
	}
}

static uint32_t fl_rand(struct mems_fl *fl)
{
	uint32_t x = fl->rng;        /* xorshift32 */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return fl->rng = x;
}

/* Insert as a leaf by key (raising the maxima on the way down, to what
 * they will be), then rotate up while the parent's priority is lower:
 * one descent and, expected, fewer than two rotations. */
static void tp_insert(struct mems_fl *fl, mems_id h)
{
	struct mems_seg *s = SEG(h);
	uint64_t key = s->start, size = seg_size(s);
	s->tl = s->tr = 0;
	s->prio = fl_rand(fl);
	s->tmax = size;
	mems_id p = 0, t = fl->root;
	int r = 0;
	while (t) {
		struct mems_seg *ts = SEG(t);
		if (ts->tmax < size)
			ts->tmax = size;
		p = t;
		r = ts->start < key;
		t = r ? ts->tr : ts->tl;
	}
	tp_link(fl, p, r, h);
	while (s->tp && SEG(s->tp)->prio < s->prio)
		tp_rotate_up(fl, h);
}

/* Rotate h down (its child of higher priority up) until it is a leaf,
 * cut it off, and lower the maxima above it as far as they change. */
static void tp_remove(struct mems_fl *fl, mems_id h)
{
	struct mems_seg *s = SEG(h);
	while (s->tl || s->tr) {
		mems_id c = !s->tr ? s->tl : !s->tl ? s->tr :
			    SEG(s->tl)->prio > SEG(s->tr)->prio ? s->tl : s->tr;
		tp_rotate_up(fl, c);
	}
	mems_id p = s->tp;
	tp_link(fl, p, tp_is_right(fl, p, h), 0);
	s->tp = 0;
	tp_fix_up(fl, p);
}

/* The size of hole h changed (its key kept its place among the others):
 * fix the maxima from it up. */
static void tp_resized(struct mems_fl *fl, mems_id h)
{
	tp_fix_up(fl, h);
}

mems_id fl_find_fit(const struct mems_fl *fl, uint64_t size)
{
	mems_id t = fl->root;

	if (!t || SEG(t)->tmax < size)
		return 0;
	while (t) {
		const struct mems_seg *s = SEG(t);
		if (s->tl && SEG(s->tl)->tmax >= size)
			t = s->tl;
		else if (seg_size(s) >= size)
			return t;
		else
			t = s->tr;   /* its tmax must fit: the root's did */
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

/* Call while id is still linked into its sub-chain. */
static void first_del(struct mems_fl *fl, mems_id id)
{
	uint64_t g = SEG(id)->start / FL_GRAIN;
	if (fl->first[g] == id) {
		mems_id n = SEG(id)->next;
		fl->first[g] = (n && SEG(n)->start / FL_GRAIN == g) ? n : 0;
	}
}

/* Segment id now starts at ns (it grew down or shrank from the front). */
static void move_start(struct mems_fl *fl, mems_id id, uint64_t ns)
{
	struct mems_seg *s = SEG(id);
	uint64_t og = s->start / FL_GRAIN;
	if (og != ns / FL_GRAIN && fl->first[og] == id) {
		mems_id n = s->next;
		fl->first[og] = (n && SEG(n)->start / FL_GRAIN == og) ? n : 0;
	}
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
	fl->rng = 0x9e3779b9u;
	fl->map_bytes = (size_t)pages * sizeof(mems_id);
	fl->first_bytes = (size_t)(span / FL_GRAIN) * sizeof(mems_id);
	if (slab_init(&fl->segs, sizeof(struct mems_seg), (uint32_t)segcap) != 0)
		goto fail;
	if (slab_init(&fl->nodes, sizeof(struct mems_node), (uint32_t)nodecap) != 0)
		goto fail;
	fl->first = os_map_meta(fl->first_bytes);
	fl->cover = os_map_meta(fl->map_bytes);
	if (!fl->first || !fl->cover)
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
	fl->nnodes++;
	fl->nholes++;
	fl->bytes_in_holes += bytes;
	first_add(fl, h);
	tp_insert(fl, h);
	return h;
}

void fl_drop_last_node(struct mems_fl *fl, mems_id h)
{
	struct mems_seg *s = SEG(h);
	mems_id n = s->node;
	uint64_t bytes = seg_size(s);
	tp_remove(fl, h);
	fl->first[s->start / FL_GRAIN] = 0;
	fl->committed -= bytes;
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
 * The operations below keep a hole's record, and so its place in the
 * treap, when the hole only grows or shrinks at one end: its key may move
 * but never past a neighbouring hole, so the order holds and only the
 * maxima on its path need fixing (one descent).  Split and merge are left
 * for the holes that really appear or disappear.
 */

mems_id fl_take(struct mems_fl *fl, mems_id h, uint64_t size)
{
	struct mems_seg *hs = SEG(h);
	uint64_t hsize = seg_size(hs);

	if (size == hsize) {
		/* exact fit: the hole itself becomes the segment */
		tp_remove(fl, h);
		hs->type = SEG_PROCESS;
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
	 * rest and its place in the treap */
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
	tp_resized(fl, h);
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
	hs->end = at;
	tp_resized(fl, h);
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
		tp_insert(fl, r);
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
		s->end = cut;
		move_start(fl, n, cut);
		tp_resized(fl, n);
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
		tp_insert(fl, r);
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
	if (SEG(n)->end == want) {
		tp_remove(fl, n);
		unlink_seg(fl, n);
		fl->nholes--;
	} else {
		move_start(fl, n, want);
		tp_resized(fl, n);
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
		 * (its maxima first: each treap operation starts from a
		 * consistent tree) */
		SEG(l)->end = rh ? SEG(r)->end : end;
		unlink_seg(fl, id);
		tp_resized(fl, l);
		if (rh) {
			tp_remove(fl, r);
			unlink_seg(fl, r);
			fl->nholes--;
		}
		return l;
	}
	if (rh) {
		/* the hole on the right grows down over the segment */
		unlink_seg(fl, id);
		move_start(fl, r, start);
		tp_resized(fl, r);
		return r;
	}
	s->type = SEG_HOLE;
	fl->nholes++;
	tp_insert(fl, id);
	return id;
}
