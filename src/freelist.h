/*
 * freelist.h - the 2-D free list of main nodes and PROCESS/HOLE segments.
 *
 * Offsets are bytes from the start of the span; the MeMS virtual address of
 * offset o is MEMS_VIRTUAL_BASE + o.
 */
#ifndef MEMS_FREELIST_H
#define MEMS_FREELIST_H
#include <stdint.h>

#include "meta.h"

enum { SEG_FREE = 0, SEG_PROCESS = 1, SEG_HOLE = 2 };

/* first[] and the leaves of hmax have an entry per FL_GRAIN bytes of the
 * span; each level of hmax above the leaves one per FL_FAN of the level
 * below (freelist.c) */
#define FL_GRAIN 512u
#define FL_FAN 16u
#define FL_LEVELS 12

struct mems_seg {
	uint64_t start, end;   /* [start, end) */
	mems_id prev, next;    /* sub-chain, in address order */
	mems_id node;          /* main node */
	uint8_t type;          /* SEG_* ; SEG_FREE for a recycled record */
	uint8_t held;          /* PROCESS segment holding a run of small blocks (small.c) */
};

struct mems_node {
	uint64_t start, end;   /* page aligned */
	mems_id head, tail;    /* first and last segment */
	uint64_t nsegs;        /* sub-chain length */
};

struct mems_fl {
	struct mems_slab segs, nodes;
	mems_id *first;        /* per FL_GRAIN bytes: first segment starting in them */
	mems_id *cover;        /* per MeMS page: PROCESS segment over its first byte */
	mems_id made;          /* the PROCESS segment made or grown last (a hint) */
	size_t map_bytes, first_bytes;
	uint64_t page;         /* MeMS page size */
	uint64_t span;         /* bytes the list may grow to */
	uint64_t committed;    /* end of the last node */
	/* hole index: hmax + hoff[0] holds, per grain, the size of the
	 * largest hole starting in it (saturated at UINT32_MAX, 0 for none);
	 * level k + 1 the largest of each FL_FAN entries of level k, up to a
	 * single root at level nlevels - 1.  Each level has hlen[k] entries,
	 * a multiple of FL_FAN (the padding stays 0). */
	uint32_t *hmax;
	size_t hmax_bytes;
	uint64_t hoff[FL_LEVELS], hlen[FL_LEVELS];
	int nlevels;
	int htop;              /* lowest level whose first group covers the committed span */
	uint64_t nnodes, nprocess, nholes;
	uint64_t bytes_in_use, bytes_in_holes;
};

static inline struct mems_seg *fl_seg(const struct mems_fl *fl, mems_id id)
{
	return slab_at(&fl->segs, id);
}
static inline struct mems_node *fl_node(const struct mems_fl *fl, mems_id id)
{
	return slab_at(&fl->nodes, id);
}
static inline uint32_t fl_hsat(uint64_t size)
{
	return size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
}

int fl_init(struct mems_fl *fl, uint64_t span, uint64_t page);
void fl_destroy(struct mems_fl *fl);

/* First hole, in address order, with at least size bytes; 0 if none. */
mems_id fl_find_fit(const struct mems_fl *fl, uint64_t size);
/* Append a main node of bytes (a multiple of the page) holding one hole,
 * which is returned; 0 with errno = ENOMEM when out of records. */
mems_id fl_add_node(struct mems_fl *fl, uint64_t bytes);
/* Undo the fl_add_node() that just returned hole (it is still whole). */
void fl_drop_last_node(struct mems_fl *fl, mems_id hole);
/* Turn the first size bytes of hole into a PROCESS segment, splitting the
 * rest off as a hole.  Returns the segment, 0 with errno = ENOMEM. */
mems_id fl_take(struct mems_fl *fl, mems_id hole, uint64_t size);
/* Carve [at, at+size) out of hole (inside it), leaving holes around it.
 * Returns the segment, 0 with errno = ENOMEM. */
mems_id fl_take_at(struct mems_fl *fl, mems_id hole, uint64_t at, uint64_t size);
/* Shrink PROCESS segment seg to size bytes (0 < size < its size); the tail
 * becomes a hole, merged with the one after it.  Returns that hole, 0 with
 * errno = ENOMEM (nothing changed). */
mems_id fl_shrink(struct mems_fl *fl, mems_id seg, uint64_t size);
/* Grow PROCESS segment seg in place to size bytes, out of the hole after
 * it.  0, or -1 when that hole is missing or too small (nothing changed). */
int fl_grow(struct mems_fl *fl, mems_id seg, uint64_t size);
/* The PROCESS segment containing offset off, or 0.  Bounded work: a map
 * lookup plus a walk over the segments that start in off's page. */
mems_id fl_find_process(const struct mems_fl *fl, uint64_t off);
/* Free a PROCESS segment, merging it with adjacent holes of its sub-chain.
 * Returns the resulting hole. */
mems_id fl_free(struct mems_fl *fl, mems_id seg);

#endif
