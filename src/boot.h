/*
 * boot.h - the bootstrap arena: memory for calls that re-enter the
 * allocator from inside it.
 */
#ifndef MEMS_BOOT_H
#define MEMS_BOOT_H
#include <stddef.h>

/* size bytes aligned to align (a power of two, at most 4096), zeroed;
 * NULL with errno = ENOMEM when the arena is used up. */
void *boot_alloc(size_t size, size_t align);
/* p lies in the arena. */
int boot_owns(const void *p);
/* Usable size of a block boot_alloc() returned. */
size_t boot_size(const void *p);

#endif
