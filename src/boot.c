/*
 * boot.c - the bootstrap arena.
 *
 * While a thread holds the allocator lock, libc may call back into malloc:
 * pthread_create() allocates the handler thread's TLS vector,
 * pthread_atfork() its list entry.  Under LD_PRELOAD those calls land in
 * MeMS again, on a lock this thread already holds.  They are served from a
 * small static arena instead: a bump pointer, never reused (blocks freed
 * back to it are simply dropped; they are few and small).  Each block has
 * a 16-byte header holding its size, so realloc can copy out of it.
 */
#include "boot.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define ARENA (256 * 1024)
#define HDR 16

static _Alignas(4096) unsigned char arena[ARENA];
static _Atomic size_t used;

void *boot_alloc(size_t size, size_t align)
{
	if (align < HDR)
		align = HDR;
	if (size > ARENA || align > 4096) {
		errno = ENOMEM;
		return NULL;
	}
	size_t old = atomic_load(&used), start, end;
	do {
		start = (old + HDR + align - 1) / align * align;
		end = start + (size + HDR - 1) / HDR * HDR;
		if (end > ARENA) {
			errno = ENOMEM;
			return NULL;
		}
	} while (!atomic_compare_exchange_weak(&used, &old, end));
	memcpy(arena + start - HDR, &size, sizeof size);
	return arena + start;       /* static storage, never handed out twice: zero */
}

int boot_owns(const void *p)
{
	return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + ARENA;
}

size_t boot_size(const void *p)
{
	size_t size;
	memcpy(&size, (const unsigned char *)p - HDR, sizeof size);
	return size;
}
