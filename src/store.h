/*
 * store.h - the backing store for evicted pages: a file of page-sized
 * slots, read and written in batches through io_uring.
 */
#ifndef MEMS_STORE_H
#define MEMS_STORE_H
#include <liburing.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One batch of page I/O: page i of buf goes to (or comes from) slot[i]. */
struct store_io {
	void *buf;                /* n pages, contiguous */
	const uint64_t *slot;     /* n slots */
	int *res;                 /* n results: 0 or -errno */
	unsigned n;
};

struct mems_store {
	int fd;
	int direct;               /* opened O_DIRECT: no page cache copy */
	int in_memory;            /* on tmpfs or ramfs: its pages take RAM */
	uint64_t ps;
	char where[256];          /* for messages: the directory or file */
	/* Slots (under the pager lock): a bit per slot, lowest free first. */
	uint64_t *used;
	uint64_t *topunch;        /* freed, file space not yet given back */
	uint64_t nslots;          /* capacity of the bitmaps */
	uint64_t hint;            /* no free slot below this word */
	uint64_t punch_hint;      /* no slot to punch below this word */
	uint64_t in_use, npunch;
	/* Counters (bytes and ns, added by the thread that did the I/O). */
	_Atomic uint64_t written, read, wait_ns;
};

/* Open the store in `where`: "" for an unlinked file in $TMPDIR or /tmp,
 * a directory for an unlinked file there, or a file path, which must not
 * exist ("%p" becomes the pid); it is created and unlinked at once, so the
 * store goes away with the process however it ends.  -1 with errno and a
 * message in why on failure. */
int store_open(struct mems_store *st, const char *where, uint64_t nslots, uint64_t ps,
	       char *why, size_t whylen);
void store_close(struct mems_store *st);
/* In the child of fork(): close the descriptor, forget the slots. */
void store_fork_child(struct mems_store *st);

/* A free slot, or -1 when all nslots are in use. */
int64_t store_slot_alloc(struct mems_store *st);
/* Free a slot.  It can be reused at once; its file space is given back
 * later, off the fault path, by the thread that calls store_punch_*(). */
void store_slot_free(struct mems_store *st, uint64_t slot);
/* Take the next run of freed slots whose space is still allocated (they
 * stay reserved until store_punch_done): 1 and the run, or 0. */
int store_punch_take(struct mems_store *st, uint64_t *lo, uint64_t *n);
/* Give the run's file space back (FALLOC_FL_PUNCH_HOLE): no lock needed. */
void store_punch(struct mems_store *st, uint64_t lo, uint64_t n);
void store_punch_done(struct mems_store *st, uint64_t lo, uint64_t n);

/* Set up a ring for one thread's I/O (each ring has a single user). */
int store_ring_init(struct io_uring *ring, unsigned entries);
/* Write (or read) a batch through ring and wait for all of it: adjacent
 * slots are merged into one request.  Returns the number of pages that
 * failed (their res[i] says why). */
unsigned store_io(struct mems_store *st, struct io_uring *ring, int write,
		  const struct store_io *io);

#endif
