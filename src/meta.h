/*
 * meta.h - fixed-size records in mmap'd slabs, named by 32-bit ids.
 */
#ifndef MEMS_META_H
#define MEMS_META_H
#include <stddef.h>
#include <stdint.h>

typedef uint32_t mems_id;      /* 0 is "none" */

struct mems_slab {
	char *base;            /* record i at base + i * size; record 0 unused */
	size_t size;           /* bytes per record (>= 4) */
	size_t bytes;          /* bytes reserved */
	uint32_t cap;          /* ids 1 .. cap-1 */
	uint32_t bump;         /* next never-used id */
	uint32_t free_head;    /* freed records, linked through their first word */
	uint32_t live;
	/* Records are not cleared when freed or allocated, only relinked
	 * through their first word: a thread holding a stale id reads some
	 * incarnation of a record of this type (the kernel's
	 * SLAB_TYPESAFE_BY_RCU) and must check, under the lock that guards
	 * what it acts on, that it still has the one it meant. */
	int typesafe;
};

int slab_init(struct mems_slab *s, size_t rec_size, uint32_t cap);
void slab_destroy(struct mems_slab *s);
/* A zeroed record (unless typesafe), or 0 when the slab is full. */
mems_id slab_alloc(struct mems_slab *s);
void slab_free(struct mems_slab *s, mems_id id);

static inline void *slab_at(const struct mems_slab *s, mems_id id)
{
	return s->base + (size_t)id * s->size;
}

#endif
