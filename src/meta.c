/*
 * meta.c - metadata records.
 *
 * Every node and segment record of the free list lives in a slab: one
 * mapping reserved up front (MAP_NORESERVE, so only the records in use cost
 * memory), handed out by a bump pointer and recycled through a free list
 * threaded through the records themselves.  Records are named by 32-bit ids
 * rather than pointers: half the size in the maps and trees, and an id can
 * be range-checked before it is trusted.
 *
 * Nothing here is inside the span, and nothing here calls malloc.  Callers
 * serialise access (the allocator lock).
 */
#include "meta.h"

#include <errno.h>
#include <string.h>

#include "span.h"

int slab_init(struct mems_slab *s, size_t rec_size, uint32_t cap)
{
	memset(s, 0, sizeof *s);
	if (rec_size < sizeof(uint32_t) || cap < 2) {
		errno = EINVAL;
		return -1;
	}
	size_t ps = os_page_size();
	s->bytes = ((size_t)cap * rec_size + ps - 1) / ps * ps;
	s->base = os_map_meta(s->bytes);
	if (!s->base)
		return -1;
	s->size = rec_size;
	s->cap = cap;
	s->bump = 1;
	return 0;
}

void slab_destroy(struct mems_slab *s)
{
	if (s->base)
		os_unmap(s->base, s->bytes);
	memset(s, 0, sizeof *s);
}

mems_id slab_alloc(struct mems_slab *s)
{
	mems_id id;

	if (s->free_head) {
		id = s->free_head;
		memcpy(&s->free_head, slab_at(s, id), sizeof(uint32_t));
	} else if (s->bump < s->cap) {
		id = s->bump++;
	} else {
		errno = ENOMEM;
		return 0;
	}
	if (!s->typesafe)
		memset(slab_at(s, id), 0, s->size);
	s->live++;
	return id;
}

void slab_free(struct mems_slab *s, mems_id id)
{
	char *rec = slab_at(s, id);
	if (!s->typesafe)
		memset(rec, 0, s->size);
	memcpy(rec, &s->free_head, sizeof(uint32_t));
	s->free_head = id;
	s->live--;
}
