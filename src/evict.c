/*
 * evict.c - the resident cap: evicting cold pages to the store and paging
 * them back in on fault.
 *
 * With MEMS_RESIDENT_MAX the span is registered for MISSING and
 * write-protect (WP) faults, and the number of resident pages ("touched")
 * is kept at or under the cap.  A page is in one of these states:
 *
 *   missing    not resident, no copy: a fault zero-fills it.
 *   dirty      resident, writable, no copy in the store.
 *   clean      resident, write protected, an identical copy in its slot.
 *              The first write is a WP fault: the slot is freed and the
 *              page becomes dirty.  Evicting a clean page is a drop: no
 *              write.
 *   evicting   resident, write protected, being written to a new slot.
 *   evicted    not resident, its contents in its slot.  A fault reads it
 *              back (with the evicted pages after it, as fault-around
 *              does) and installs it clean with UFFDIO_COPY; the faulting
 *              page goes in dirty on a write fault, and on a read fault
 *              while clean pages are mostly written (clean_fate).
 *
 * The evictor thread.  The handler must never wait for I/O it did not ask
 * for, nor call madvise, so eviction has its own thread.  It wakes when
 * the handler finds fewer than `headroom` free pages under the cap and
 * evicts in batches of up to BATCH pages, under pg->lock:
 *   1. choose victims with the CLOCK hand (below); drop clean ones now;
 *   2. write protect the dirty ones, copy them to a staging buffer and
 *      mark them evicting;
 * then without the lock writes the batch with io_uring, and under it again
 *   3. drops each page still marked evicting (MADV_DONTNEED) and records
 *      its slot.
 * A write to a page between 2 and 3 is a WP fault: the handler clears the
 * page's evicting mark and lifts the protection, so the write goes ahead
 * on the resident page, which stays dirty; the copy is thrown away.
 * pager_release() of an evicting page does the same.  The copy is taken
 * under pg->lock, which the handler holds while it resolves faults, so a
 * write never lands between the protection and the copy.
 *
 * Waiting for room.  A missing fault that finds no room under the cap is
 * put aside, not waited on: the handler goes on with other faults (among
 * them the WP faults that cancel evictions) and retries the ones put aside
 * when the evictor signals room on its pipe.
 *
 * The policy: CLOCK (second chance).  The hand sweeps the resident pages
 * in address order; a page with its reference bit set loses the bit and
 * stays, one without it is evicted.  userfaultfd shows us no accessed
 * bits, so the reference bit is set by the events we see: a page read back
 * in (it was wanted again after eviction), a write to a clean page, a
 * write during its eviction.  Fresh zero-filled pages start without it, so
 * a one-pass scan over new memory does not push out pages that have
 * proved they are reused; FIFO (umap's policy) cannot tell them apart.
 * The measurement is in docs/DESIGN.md.
 *
 * Free pages.  A purge delay keeps freed pages resident, and they count
 * against the cap.  They go first: choose_free() gathers them and
 * give_back_free() gives them back with no write (see there for why a
 * page made live again meanwhile loses nothing).  The hand passes over
 * pages that are not live, so a free page never gets a slot.
 *
 * Errors.  A write that fails (ENOSPC, EIO) loses nothing: the page's
 * protection is lifted and it stays resident, beyond the cap if need be;
 * a diagnostic is printed once, the store_errors counter counts the pages,
 * and the handler stops waiting for room (over_cap counts the pages it
 * then populates beyond the cap) until the evictor tries again, a second
 * later or when slots have been freed.  A read that fails cannot be
 * repaired: the page is poisoned (UFFDIO_POISON), so the access gets
 * SIGBUS as it would for a swap-in error of the kernel's.
 *
 * fork.  The child has no handler, so before fork() every evicted page is
 * read back in (the cap may be exceeded at that moment) and eviction
 * pauses until the parent returns from fork().
 *
 * Lock order: pg->lock, then nothing else but the trace ring.  The
 * evictor takes only pg->lock and never the allocator lock, never calls
 * malloc, and touches span memory only to copy resident pages under
 * pg->lock (so it never faults on the span).
 */
#include "evict.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "fail.h"
#include "span.h"
#include "store.h"
#define MEMS_LIBRARY 1
#include "trace.h"

#ifndef UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#define BATCH 64u          /* pages per eviction batch */
#define PAGEIN_MAX 64u     /* most pages read back per fault */
#define READ_MAX 64u       /* most pages of one read_back() (both of the above) */
/* Freed slots keep their file space while the evictor is at work: a page
 * read back and then written frees its slot, and the next batch takes it
 * again (lowest first), so punching it in between was a wasted
 * fallocate(2) a page, tens of microseconds on ext4 and a journal write
 * that page-ins queued behind.  The space goes back once the evictor has
 * had nothing to evict for PUNCH_DELAY_MS, or at once for the slots
 * beyond PUNCH_SLACK. */
#define PUNCH_DELAY_MS 100
#define PUNCH_SLACK 1024u  /* slots (4 MiB of 4 KiB pages) */
#define READ_SAMPLE 8u     /* read page-ins: one in this many goes in clean */
_Static_assert(BATCH <= READ_MAX && PAGEIN_MAX <= READ_MAX, "staging sizes");

struct mems_evict {
	uint64_t cap, headroom;        /* pages */
	struct mems_store store;
	uint32_t *slot;                /* per page: store slot + 1, or 0 */
	uint64_t *slotted;             /* slot[pi] != 0 */
	uint64_t *evicting;
	uint64_t *ref;                 /* the CLOCK reference bits */
	size_t map_bytes, slot_bytes;
	uint64_t hand;
	/* free pages kept resident by a purge delay may exist (a free set
	 * it; a sweep of choose_free() that found too few clears it), and
	 * where the last sweep stopped */
	int free_kept;
	uint64_t free_hand;
	/* fifo (MEMS_EVICT_POLICY=fifo, for comparison): pages in the order
	 * they came in; an entry whose seq no longer matches the page's is
	 * stale (the page left and came back, or was freed) */
	int fifo;
	uint32_t *seq;                 /* per page */
	struct fent { uint64_t pi; uint32_t seq; } *q;
	uint64_t qcap, qhead, qlen;
	struct io_uring ering, hring;  /* the evictor's and the handler's */
	int ering_ok, hring_ok;
	pthread_t thread;
	int running;
	pthread_cond_t wake, idle;
	int roomfd, roomwr;            /* a pipe: the evictor writes, the handler polls */
	int busy, frozen, stopping;
	int stalled;                   /* cannot evict now (a store write or
					  the write protection failed, or no
					  victim): the handler stops waiting
					  for room until the evictor retries */
	int refill;                    /* over the cap since fork read all back */
	int waiting;                   /* the handler has faults put aside for room */
	uint64_t freed_since_stall;     /* slots freed since the stall */
	int poison;                    /* UFFDIO_POISON is available */
	/* What became of clean pages (pages read back, their copy kept):
	 * written (a write-protect fault freed the copy) or dropped clean,
	 * decayed by halves.  While most are written, a read fault reads
	 * its page back writable, as a write fault does, and spares the
	 * write-protect fault that would follow; one in READ_SAMPLE still
	 * goes in clean, so that the count follows the program. */
	uint64_t clean_written, clean_dropped;
	uint32_t read_ins;
	char *ebuf, *hbuf;             /* staging: BATCH and PAGEIN_MAX pages */
	/* counters, under pg->lock */
	uint64_t evictions, page_ins, clean_drops, cancelled, store_errors, over_cap;
	int full_reported, read_reported, wp_reported;
};

static uint64_t addr_of(const struct mems_pager *pg, uint64_t pi)
{
	return (uint64_t)(uintptr_t)pg->base + pi * pg->ps;
}

static uint64_t committed_pages(const struct mems_pager *pg)
{
	return atomic_load(&pg->committed) / pg->ps;
}

/* Write protect (or lift the protection of, and wake) pages [pi, pi+n). */
static int protect(struct mems_pager *pg, uint64_t pi, uint64_t n, int on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = addr_of(pg, pi), .len = n * pg->ps },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int rc = fail_now(FP_UFFD_WP);
	if (rc) {
		errno = rc;
		return -1;
	}
	while ((rc = ioctl(pg->uffd, UFFDIO_WRITEPROTECT, &wp)) != 0 && errno == EAGAIN)
		;
	return rc;
}

static void slot_drop(struct mems_evict *ev, uint64_t pi)
{
	if (!map_get(ev->slotted, pi))
		return;
	store_slot_free(&ev->store, ev->slot[pi] - 1);
	ev->slot[pi] = 0;
	map_clear(ev->slotted, pi);
	ev->freed_since_stall++;
	if (ev->store.npunch == 1 || ev->store.npunch > PUNCH_SLACK)
		pthread_cond_signal(&ev->wake);   /* to punch the space, later */
}

/* Eviction cannot go on now: the handler populates beyond the cap until
 * the evictor retries (a second later, or once BATCH slots are freed). */
static void stall(struct mems_evict *ev)
{
	ev->stalled = 1;
	ev->freed_since_stall = 0;
}

static void room_signal(struct mems_evict *ev)
{
	char one = 1;
	ev->waiting = 0;
	if (write(ev->roomwr, &one, 1) < 0 && errno != EAGAIN)    /* EAGAIN: signals pending */
		mems_diag("evictor: cannot signal the handler: %s", mems_strerror(errno));
}

static void trace_pages(struct mems_pager *pg, int kind, uint64_t pi, uint64_t n,
			uint64_t t0, uint32_t tid)
{
	if (trace_active())
		trace_event(t0, kind, pi * pg->ps, (uint32_t)n, tid,
			    (uint32_t)(trace_now() - t0), pg->touched, committed_pages(pg));
}

/* ---------------------------------------------------------------------
 * The evictor
 * ------------------------------------------------------------------- */

static int over_target(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	return pg->touched + ev->headroom > ev->cap;
}

/* n clean pages were written (or dropped clean). */
static void clean_fate(struct mems_evict *ev, int written, uint64_t n)
{
	if (written)
		ev->clean_written += n;
	else
		ev->clean_dropped += n;
	if (ev->clean_written + ev->clean_dropped > 256) {
		ev->clean_written /= 2;
		ev->clean_dropped /= 2;
	}
}

/* Drop resident pages [pi, pi+n) that are now held by the store. */
static void drop_run(struct mems_pager *pg, uint64_t pi, uint64_t n, int kind)
{
	struct mems_evict *ev = pg->ev;
	uint64_t t0 = trace_active() ? trace_now() : 0;
	if (os_release(pg->base + pi * pg->ps, n * pg->ps) != 0) {
		/* the page stays resident, its copy clean: nothing lost */
		mems_diag("evictor: madvise: %s", mems_strerror(errno));
		return;
	}
	for (uint64_t k = pi; k < pi + n; k++)
		map_clear(pg->resident, k);
	pg->touched -= n;
	if (kind == TRACE_DROP) {
		ev->clean_drops += n;
		clean_fate(ev, 0, n);
	} else
		ev->evictions += n;
	trace_pages(pg, kind, pi, n, t0, 0);
}

/* A FIFO entry still names a page that may be evicted: resident, live,
 * not being evicted, and queued since it last came in. */
static int fifo_valid(struct mems_pager *pg, const struct fent *e)
{
	struct mems_evict *ev = pg->ev;
	return ev->seq[e->pi] == e->seq && map_get(pg->resident, e->pi) &&
	       !map_get(ev->evicting, e->pi) && pager_live_get(pg, e->pi);
}

/* Queue pages [pi, pi+n) as just come in. */
static void fifo_push(struct mems_pager *pg, uint64_t pi, uint64_t n)
{
	struct mems_evict *ev = pg->ev;
	for (uint64_t k = pi; k < pi + n; k++) {
		if (ev->qlen == ev->qcap) {
			/* full of stale entries: squeeze them out */
			uint64_t kept = 0;
			for (uint64_t i = 0; i < ev->qlen; i++) {
				struct fent e = ev->q[(ev->qhead + i) % ev->qcap];
				if (fifo_valid(pg, &e))
					ev->q[(ev->qhead + kept++) % ev->qcap] = e;
			}
			ev->qlen = kept;
			if (kept == ev->qcap)
				return;   /* the clock hand finds what is not queued */
		}
		ev->q[(ev->qhead + ev->qlen++) % ev->qcap] = (struct fent){ k, ++ev->seq[k] };
	}
}

static unsigned choose_fifo(struct mems_pager *pg, uint64_t *victims)
{
	struct mems_evict *ev = pg->ev;
	unsigned n = 0;
	while (n < BATCH && ev->qlen) {
		struct fent e = ev->q[ev->qhead];
		ev->qhead = (ev->qhead + 1) % ev->qcap;
		ev->qlen--;
		if (fifo_valid(pg, &e)) {
			ev->seq[e.pi]++;    /* leaves the queue */
			victims[n++] = e.pi;
		}
	}
	return n;
}

/* Pages cannot be write protected, so they cannot be evicted or given
 * back now: like a store failure, the handler stops waiting for room
 * until the evictor retries. */
static void protect_failed(struct mems_evict *ev)
{
	if (!ev->wp_reported++)
		mems_diag("evictor: cannot write protect pages: %s; pages stay resident beyond "
			  "the cap", mems_strerror(errno));
	stall(ev);
}

/* Free pages a purge delay keeps resident (not live, not being evicted):
 * up to BATCH of them, in address order from where the last sweep
 * stopped.  They go first: giving one back costs no write. */
static unsigned choose_free(struct mems_pager *pg, uint64_t *victims)
{
	struct mems_evict *ev = pg->ev;
	uint64_t words = (committed_pages(pg) + 63) / 64;
	unsigned n = 0;

	if (!ev->free_kept || !words)
		return 0;
	uint64_t start = ev->free_hand % words;
	for (uint64_t k = 0; k < words && n < BATCH; k++) {
		uint64_t w = (start + k) % words;
		uint64_t c = __atomic_load_n(&pg->resident[w], __ATOMIC_RELAXED) &
			     ~atomic_load_explicit(&pg->live[w], memory_order_relaxed) &
			     ~__atomic_load_n(&ev->evicting[w], __ATOMIC_RELAXED);
		for (; c && n < BATCH; c &= c - 1)
			victims[n++] = w * 64 + (uint64_t)__builtin_ctzll(c);
		ev->free_hand = w;
	}
	if (n < BATCH)
		ev->free_kept = 0;      /* swept them all */
	return n;
}

/* Give back the free pages victims[0..n) (in choose_free()'s order: runs
 * of consecutive pages are given back together).  The allocator may
 * make one live again at any moment without pg->lock, and the program
 * then writes to it: so each run is write protected first, and only then
 * are the pages that are still not live given back (pager_purge_locked
 * looks).  A write after the protection waits on its fault for pg->lock,
 * held throughout, and finds the page missing: it is zero filled, as a
 * page given back is.  Pages found live again have the protection lifted.
 * 0, or -1 when a protection failed (the runs before it went back). */
static int give_back_free(struct mems_pager *pg, const uint64_t *victims, unsigned n)
{
	for (unsigned i = 0; i < n;) {
		unsigned j = i + 1;
		while (j < n && victims[j] == victims[j - 1] + 1)
			j++;
		uint64_t lo = victims[i], hi = victims[j - 1] + 1;
		if (protect(pg, lo, hi - lo, 1) != 0)
			return -1;
		pager_purge_locked(pg, lo, hi);
		for (uint64_t k = lo; k < hi; k++)
			if (map_get(pg->resident, k))
				protect(pg, k, 1, 0);
		i = j;
	}
	return 0;
}

/* The CLOCK hand: up to BATCH resident live pages, not being evicted,
 * whose reference bit was already clear. */
static unsigned choose(struct mems_pager *pg, uint64_t *victims)
{
	if (pg->ev->fifo) {
		unsigned n = choose_fifo(pg, victims);
		if (n)
			return n;
	}
	struct mems_evict *ev = pg->ev;
	uint64_t lim = committed_pages(pg), scanned = 0;
	unsigned n = 0;
	int wrapped = 0;

	while (n < BATCH && scanned < 2 * lim + 64) {
		if (ev->hand >= lim) {
			ev->hand = 0;
			wrapped = 1;
		}
		uint64_t h = ev->hand;
		if (!(h % 64) && !__atomic_load_n(&pg->resident[h / 64], __ATOMIC_RELAXED)) {
			ev->hand += 64;
			scanned += 64;
			continue;
		}
		/* a free page (not live) is choose_free()'s, or its free is
		 * on its way: writing it out would only keep a slot for it */
		if (map_get(pg->resident, h) && !map_get(ev->evicting, h) && pager_live_get(pg, h)) {
			if (map_get(ev->ref, h)) {
				map_clear(ev->ref, h);
			} else {
				/* after a wrap the hand can come back to a page
				 * it has already chosen */
				unsigned k = 0;
				while (wrapped && k < n && victims[k] != h)
					k++;
				if (!wrapped || k == n)
					victims[n++] = h;
			}
		}
		ev->hand++;
		scanned++;
	}
	return n;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MEMS_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MEMS_TSAN 1
#endif

/* Copy a write-protected page out.  What orders the copy after the
 * program's last write is the write protection, which ThreadSanitizer
 * cannot see: under it the copy is done with loads it does not watch. */
#ifdef MEMS_TSAN
__attribute__((no_sanitize("thread")))
static void copy_out(char *dst, const char *src, size_t len)
{
	const volatile uint64_t *s = (const volatile uint64_t *)(const void *)src;
	uint64_t *d = (uint64_t *)(void *)dst;
	for (size_t i = 0; i < len / 8; i++)
		d[i] = s[i];
}
#else
static void copy_out(char *dst, const char *src, size_t len)
{
	memcpy(dst, src, len);
}
#endif

/* One batch (pg->lock held; dropped during the I/O). */
static void evict_batch(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	uint64_t victims[BATCH], dirty[BATCH], slots[BATCH];
	int res[BATCH];
	unsigned nv = choose_free(pg, victims), nd = 0;

	if (nv) {
		if (give_back_free(pg, victims, nv) != 0) {
			/* they stay free and resident, but the sweep that
			 * chose them may have cleared free_kept: the retry
			 * must look for them again */
			ev->free_kept = 1;
			protect_failed(ev);
		}
		return;
	}
	nv = choose(pg, victims);
	if (!nv) {
		/* nothing can be evicted (every resident page is being evicted
		 * or poisoned): stop the handler waiting, as for a failed write,
		 * and look again a second later */
		stall(ev);
		return;
	}

	/* clean victims: their copy is in the store already */
	for (unsigned i = 0; i < nv;) {
		if (!map_get(ev->slotted, victims[i])) {
			i++;
			continue;
		}
		unsigned j = i + 1;
		while (j < nv && victims[j] == victims[j - 1] + 1 && map_get(ev->slotted, victims[j]))
			j++;
		drop_run(pg, victims[i], j - i, TRACE_DROP);
		i = j;
	}
	/* dirty victims: a slot each, protect, copy */
	for (unsigned i = 0; i < nv; i++) {
		if (map_get(ev->slotted, victims[i]))
			continue;
		int64_t s = store_slot_alloc(&ev->store);
		if (s < 0)
			break;
		dirty[nd] = victims[i];
		slots[nd++] = (uint64_t)s;
	}
	unsigned keep = 0;
	for (unsigned i = 0; i < nd;) {
		unsigned j = i + 1;
		while (j < nd && dirty[j] == dirty[j - 1] + 1)
			j++;
		if (protect(pg, dirty[i], j - i, 1) != 0) {
			for (unsigned k = i; k < j; k++)
				store_slot_free(&ev->store, slots[k]);
			ev->store_errors += j - i;
			protect_failed(ev);
		} else {
			for (unsigned k = i; k < j; k++) {
				dirty[keep] = dirty[k];
				slots[keep] = slots[k];
				copy_out(ev->ebuf + keep * pg->ps, pg->base + dirty[k] * pg->ps, pg->ps);
				map_set(ev->evicting, dirty[k]);
				keep++;
			}
		}
		i = j;
	}
	nd = keep;
	if (!nd)
		return;

	pthread_mutex_unlock(&pg->lock);
	struct store_io io = { .buf = ev->ebuf, .slot = slots, .res = res, .n = nd };
	unsigned failed = store_io(&ev->store, &ev->ering, 1, &io);
	pthread_mutex_lock(&pg->lock);

	if (failed) {
		stall(ev);
	}
	for (unsigned i = 0; i < nd;) {
		uint64_t pi = dirty[i];
		if (!map_get(ev->evicting, pi) || res[i]) {
			/* cancelled by a write or a free, or the write failed */
			if (map_get(ev->evicting, pi)) {
				map_clear(ev->evicting, pi);
				protect(pg, pi, 1, 0);
				ev->store_errors++;
				if (ev->fifo)
					fifo_push(pg, pi, 1);
				if (!ev->full_reported++)
					mems_diag("evictor: cannot write to the store in %s: %s; "
						  "pages stay resident beyond the cap",
						  ev->store.where, mems_strerror(-res[i]));
			}
			store_slot_free(&ev->store, slots[i]);
			i++;
			continue;
		}
		unsigned j = i;
		while (j < nd && dirty[j] == pi + (j - i) && map_get(ev->evicting, dirty[j]) && !res[j]) {
			map_clear(ev->evicting, dirty[j]);
			ev->slot[dirty[j]] = (uint32_t)(slots[j] + 1);
			map_set(ev->slotted, dirty[j]);
			j++;
		}
		drop_run(pg, pi, j - i, TRACE_EVICT);
		i = j;
	}
}

static void *evictor_main(void *arg)
{
	struct mems_pager *pg = arg;
	struct mems_evict *ev = pg->ev;

	pthread_mutex_lock(&pg->lock);
	for (;;) {
		/* idle: nothing to evict and no fault waiting for room */
		int idle_for_long = 0, timed = 0;
		struct timespec until;
		while (!ev->stopping && (ev->frozen || (!over_target(pg) && !ev->waiting)) &&
		       ev->store.npunch <= PUNCH_SLACK) {
			if (!ev->store.npunch) {
				timed = 0;
				pthread_cond_wait(&ev->wake, &pg->lock);
				continue;
			}
			if (!timed) {
				clock_gettime(CLOCK_MONOTONIC, &until);
				until.tv_nsec += PUNCH_DELAY_MS * 1000000L;
				until.tv_sec += until.tv_nsec / 1000000000L;
				until.tv_nsec %= 1000000000L;
				timed = 1;
			}
			if (pthread_cond_timedwait(&ev->wake, &pg->lock, &until) == ETIMEDOUT) {
				idle_for_long = 1;
				break;
			}
		}
		if (ev->stopping)
			break;
		/* give freed store space back: all of it after an idle spell,
		 * else what is beyond the slack (holding the lock only to
		 * pick the runs: they stay reserved while punched) */
		uint64_t lo, n, keep = idle_for_long ? 0 : PUNCH_SLACK;
		while (!ev->stopping && ev->store.npunch > keep &&
		       store_punch_take(&ev->store, &lo, &n)) {
			ev->busy = 1;
			pthread_mutex_unlock(&pg->lock);
			store_punch(&ev->store, lo, n);
			pthread_mutex_lock(&pg->lock);
			store_punch_done(&ev->store, lo, n);
			ev->busy = 0;
		}
		pthread_cond_broadcast(&ev->idle);
		if (ev->stopping)
			break;
		if (!ev->frozen && !over_target(pg) && ev->waiting)
			room_signal(ev);        /* frees made the room */
		if (ev->frozen || !over_target(pg))
			continue;
		if (ev->stalled) {
			/* a write failed: try again a second later, or once
			 * BATCH slots were freed */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			while (!ev->stopping && ev->freed_since_stall < BATCH &&
			       pthread_cond_timedwait(&ev->wake, &pg->lock, &ts) == 0)
				;
			ev->stalled = 0;
			continue;
		}
		ev->busy = 1;
		evict_batch(pg);
		ev->busy = 0;
		if (pg->touched <= ev->cap)
			ev->refill = 0;
		pthread_cond_broadcast(&ev->idle);
		room_signal(ev);
	}
	pthread_mutex_unlock(&pg->lock);
	return NULL;
}

/* ---------------------------------------------------------------------
 * The handler's side (pg->lock held)
 * ------------------------------------------------------------------- */

uint64_t evict_room(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	if (ev->stalled || ev->frozen)
		return UINT64_MAX;
	return pg->touched < ev->cap ? ev->cap - pg->touched : 0;
}

void evict_kick(struct mems_pager *pg)
{
	pthread_cond_signal(&pg->ev->wake);
}

void evict_wait_room(struct mems_pager *pg)
{
	pg->ev->waiting = 1;
	evict_kick(pg);
}

int evict_swapped(struct mems_pager *pg, uint64_t pi)
{
	return map_get(pg->ev->slotted, pi) && !map_get(pg->resident, pi);
}

void evict_populated(struct mems_pager *pg, uint64_t pi, uint64_t n)
{
	struct mems_evict *ev = pg->ev;
	if (ev->fifo)
		fifo_push(pg, pi, n);
	if (pg->touched > ev->cap) {
		uint64_t over = pg->touched - ev->cap;
		ev->over_cap += over < n ? over : n;
	}
	if (over_target(pg))
		evict_kick(pg);
}

/* Read the run of evicted pages from pi (at most max, and at most the
 * staging buffer's 64 pages) into buf through ring.  Returns how many from
 * pi were read; when that is not all of the run, *err says why. */
static uint64_t read_back(struct mems_pager *pg, struct io_uring *ring, char *buf, uint64_t pi,
			  uint64_t max, int *err)
{
	struct mems_evict *ev = pg->ev;
	uint64_t slots[READ_MAX], lim = committed_pages(pg), n = 0, ok = 0;
	int res[READ_MAX];

	if (max > READ_MAX)
		max = READ_MAX;
	while (n < max && pi + n < lim && evict_swapped(pg, pi + n)) {
		slots[n] = ev->slot[pi + n] - 1;
		n++;
	}
	struct store_io io = { .buf = buf, .slot = slots, .res = res, .n = (unsigned)n };
	store_io(&ev->store, ring, 0, &io);
	while (ok < n && !res[ok])
		ok++;
	*err = ok < n ? -res[ok] : 0;
	return ok;
}

uint64_t evict_page_in(struct mems_pager *pg, uint64_t pi, uint64_t max, int write)
{
	struct mems_evict *ev = pg->ev;
	int rerr;
	uint64_t ok = read_back(pg, &ev->hring, ev->hbuf, pi, max, &rerr);

	if (!ok) {
		if (!ev->read_reported++)
			mems_diag("pager: cannot read an evicted page back from %s: %s",
				  ev->store.where, mems_strerror(rerr));
		struct uffdio_poison p = { .range = { .start = addr_of(pg, pi), .len = pg->ps } };
		if (!ev->poison || ioctl(pg->uffd, UFFDIO_POISON, &p) != 0) {
			mems_diag("pager: the data of page %p is lost: aborting",
				  (void *)(uintptr_t)addr_of(pg, pi));
			abort();
		}
		/* the poisoned page counts as resident until freed, so that
		 * pager_release() clears the poison with MADV_DONTNEED; it is
		 * marked evicting so that the hand never picks it (copying
		 * it out would take SIGBUS), until evict_release() clears it */
		slot_drop(ev, pi);
		map_set(ev->evicting, pi);
		map_set(pg->resident, pi);
		pg->touched++;
		return 0;
	}
	/* a write fault would take a write-protect fault right after: the
	 * page it writes goes in writable, its copy freed; and so does the
	 * page of a read fault while clean pages are mostly written */
	if (!write && ev->clean_written > ev->clean_dropped && ++ev->read_ins % READ_SAMPLE)
		write = 1;
	int woke, err = 0;
	if (write) {
		err = pager_copy_in(pg, pi, 1, ev->hbuf, 0, &woke);
		if (!err)
			slot_drop(ev, pi);
	}
	if (!err && ok > (uint64_t)write) {
		int woke2;
		err = pager_copy_in(pg, pi + write, ok - (uint64_t)write,
				    ev->hbuf + (uint64_t)write * pg->ps, 1, &woke2);
		if (!write)
			woke = woke2;
	}
	if (err) {
		mems_diag("pager: cannot install an evicted page: %s", mems_strerror(err));
		if (!woke)
			pager_wake(pg, pi);
		return 0;
	}
	for (uint64_t k = pi; k < pi + ok; k++)
		map_set(ev->ref, k);
	ev->page_ins += ok;
	if (!woke)
		pager_wake(pg, pi);
	evict_populated(pg, pi, ok);
	return ok;
}

static int clean(struct mems_pager *pg, uint64_t pi)
{
	return map_get(pg->resident, pi) && map_get(pg->ev->slotted, pi);
}

uint64_t evict_wp_fault(struct mems_pager *pg, uint64_t pi, uint64_t max)
{
	struct mems_evict *ev = pg->ev;
	uint64_t n = 1;
	if (map_get(ev->evicting, pi)) {
		/* written during its eviction: it stays, dirty */
		map_clear(ev->evicting, pi);
		ev->cancelled++;
		map_set(ev->ref, pi);
		if (ev->fifo)
			fifo_push(pg, pi, 1);
	} else if (clean(pg, pi)) {
		/* a clean page written: its copy is stale from now on, and so
		 * are those of the clean pages after it in a writer's stream */
		uint64_t lim = committed_pages(pg);
		while (n < max && pi + n < lim && clean(pg, pi + n))
			n++;
		for (uint64_t k = pi; k < pi + n; k++) {
			slot_drop(ev, k);
			map_set(ev->ref, k);
		}
		clean_fate(ev, 1, n);
	}
	/* lift the protection (a no-op on a page evicted meanwhile) and wake */
	if (protect(pg, pi, n, 0) != 0)
		pager_wake(pg, pi);
	return n;
}

void evict_release(struct mems_pager *pg, uint64_t lo, uint64_t hi, int kept)
{
	struct mems_evict *ev = pg->ev;
	if (kept)
		ev->free_kept = 1;
	for (uint64_t i = lo; i < hi;) {
		if (!(i % 64) && i + 64 <= hi &&
		    !__atomic_load_n(&ev->slotted[i / 64], __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&ev->evicting[i / 64], __ATOMIC_RELAXED)) {
			i += 64;
			continue;
		}
		if (map_get(ev->evicting, i))
			map_clear(ev->evicting, i);  /* the evictor frees its slot */
		slot_drop(ev, i);
		map_clear(ev->ref, i);
		i++;
	}
	if (ev->stalled && ev->freed_since_stall >= BATCH)
		evict_kick(pg);
}

/* ---------------------------------------------------------------------
 * fork
 * ------------------------------------------------------------------- */

void evict_fork_prepare(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	uint64_t lim = committed_pages(pg);
	/* the program may have closed the ring and the userfaultfd in its
	 * table (they live on in the handler's) */
	int by_fault = !os_fd_mine(ev->ering.ring_fd) || !os_fd_mine(pg->uffd);
	uint64_t lost = 0;
	int lost_err = 0;

	pthread_mutex_lock(&pg->lock);
	ev->frozen = 1;
	while (ev->busy)
		pthread_cond_wait(&ev->idle, &pg->lock);
	/* read everything back, through the evictor's ring (it is idle) */
	for (uint64_t i = 0; i < lim;) {
		if (!(i % 64) && !__atomic_load_n(&ev->slotted[i / 64], __ATOMIC_RELAXED)) {
			i += 64;
			continue;
		}
		if (!evict_swapped(pg, i)) {
			i++;
			continue;
		}
		if (by_fault) {
			/* then a read of the page: the handler brings it back
			 * (frozen, it never waits for room), and i is looked at
			 * again */
			pthread_mutex_unlock(&pg->lock);
			(void)*(volatile char *)(pg->base + i * pg->ps);
			pthread_mutex_lock(&pg->lock);
			continue;
		}
		int err, woke;
		uint64_t ok = read_back(pg, &ev->ering, ev->ebuf, i, BATCH, &err);
		if (ok && (err = pager_copy_in(pg, i, ok, ev->ebuf, 1, &woke)) == 0) {
			ev->page_ins += ok;
			if (ev->fifo)
				fifo_push(pg, i, ok);
			i += ok;
		} else {
			lost_err = err;
			lost += ok ? ok : 1;
			i += ok ? ok : 1;
		}
	}
	if (lost)          /* one line, not one a page */
		mems_diag("fork: cannot read %" PRIu64 " evicted pages back: %s; the child "
			  "reads zeros there", lost, mems_strerror(lost_err));
	/* (set after the wait for the evictor, which clears it) */
	ev->refill = pg->touched > ev->cap;
	pthread_mutex_unlock(&pg->lock);
}

void evict_fork_parent(struct mems_pager *pg)
{
	pthread_mutex_lock(&pg->lock);
	pg->ev->frozen = 0;
	evict_kick(pg);
	pthread_mutex_unlock(&pg->lock);
}

void evict_fork_child(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	/* no evictor thread, no handler: close what is ours, keep the maps
	 * of the parent's rings (shared memory, the parent still uses it) */
	store_fork_child(&ev->store);
	if (ev->ering_ok)
		os_fd_close(ev->ering.ring_fd);
	if (ev->hring_ok)
		os_fd_close(ev->hring.ring_fd);
	os_fd_close(ev->roomfd);
	os_fd_close(ev->roomwr);
	pg->ev = NULL;
}

/* ---------------------------------------------------------------------
 * Start, stop, counters
 * ------------------------------------------------------------------- */

/* liburing closes the ring's descriptor: not when the program has taken
 * its number */
static void ring_exit(struct io_uring *ring)
{
	int fd = ring->ring_fd;
	if (!os_fd_mine(fd))
		ring->ring_fd = -1;
	io_uring_queue_exit(ring);
	os_fd_forget(fd);
}

static void free_ev(struct mems_pager *pg, struct mems_evict *ev)
{
	if (ev->ering_ok)
		ring_exit(&ev->ering);
	if (ev->hring_ok)
		ring_exit(&ev->hring);
	store_close(&ev->store);
	os_fd_close(ev->roomfd);
	os_fd_close(ev->roomwr);
	if (ev->slot)
		os_unmap(ev->slot, ev->slot_bytes);
	if (ev->seq)
		os_unmap(ev->seq, pg->span / pg->ps * sizeof *ev->seq);
	if (ev->q)
		os_unmap(ev->q, ev->qcap * sizeof *ev->q);
	if (ev->slotted)
		os_unmap(ev->slotted, 3 * ev->map_bytes);
	if (ev->ebuf)
		os_unmap(ev->ebuf, (BATCH + PAGEIN_MAX) * pg->ps);
	pthread_cond_destroy(&ev->wake);
	pthread_cond_destroy(&ev->idle);
	os_unmap(ev, sizeof *ev);
}

int evict_start(struct mems_pager *pg, uint64_t cap, const char *swap, int fifo, int poison,
		char *why, size_t whylen)
{
	uint64_t npages = pg->span / pg->ps;
	struct mems_evict *ev = os_map_meta(sizeof *ev);
	if (!ev) {
		snprintf(why, whylen, "cannot map the evictor's state: %s", mems_strerror(errno));
		return -1;
	}
	ev->roomfd = ev->roomwr = -1;
	ev->store.fd = -1;
	ev->cap = cap / pg->ps;
	ev->headroom = ev->cap / 8 < 4 * BATCH ? ev->cap / 8 : 4 * BATCH;
	ev->poison = poison;
	ev->fifo = fifo;
	if (fifo) {
		ev->qcap = 4 * ev->cap + 1024;
		ev->seq = os_map_meta(npages * sizeof *ev->seq);
		ev->q = os_map_meta(ev->qcap * sizeof *ev->q);
		if (!ev->seq || !ev->q) {
			snprintf(why, whylen, "cannot map the fifo: %s", mems_strerror(errno));
			goto fail;
		}
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&ev->idle, NULL);

	ev->slot_bytes = npages * sizeof *ev->slot;
	ev->map_bytes = (npages + 63) / 64 * 8;
	ev->slot = os_map_meta(ev->slot_bytes);
	ev->slotted = os_map_meta(3 * ev->map_bytes);
	ev->ebuf = os_map_meta((BATCH + PAGEIN_MAX) * pg->ps);
	int room[2];
	if (pipe2(room, O_CLOEXEC | O_NONBLOCK) == 0) {
		ev->roomfd = os_fd_note(room[0]);
		ev->roomwr = os_fd_note(room[1]);
	}
	if (!ev->slot || !ev->slotted || !ev->ebuf || ev->roomfd < 0) {
		snprintf(why, whylen, "cannot set up the evictor: %s", mems_strerror(errno));
		goto fail;
	}
	ev->evicting = ev->slotted + ev->map_bytes / 8;
	ev->ref = ev->evicting + ev->map_bytes / 8;
	ev->hbuf = ev->ebuf + BATCH * pg->ps;
	/* staging buffers are written before each use: populate them now so
	 * the copies never fault */
	memset(ev->ebuf, 0, (BATCH + PAGEIN_MAX) * pg->ps);
	if (store_open(&ev->store, swap, npages, pg->ps, why, whylen) != 0)
		goto fail;
	if (ev->store.in_memory && !swap[0])
		/* /tmp is tmpfs on many systems: a store there bounds the
		 * heap's RSS, not the memory it takes (chosen knowingly when
		 * named in MEMS_SWAP_FILE, as a test does) */
		mems_diag("resident cap: the store's directory %s is in memory (tmpfs): "
			  "evicted pages still take RAM; set MEMS_SWAP_FILE to a directory on disk",
			  ev->store.where);
	if (store_ring_init(&ev->ering, 2 * BATCH) != 0)
		goto ring;
	ev->ering_ok = 1;
	os_fd_note(ev->ering.ring_fd);
	if (store_ring_init(&ev->hring, 2 * PAGEIN_MAX) != 0)
		goto ring;
	ev->hring_ok = 1;
	os_fd_note(ev->hring.ring_fd);

	pg->ev = ev;
	int keep[EVICT_FDS];
	int rc = os_thread_start(&ev->thread, evictor_main, pg, keep, evict_fds(pg, keep));
	if (rc != 0) {
		pg->ev = NULL;
		snprintf(why, whylen, "cannot start the evictor thread: %s", mems_strerror(rc));
		errno = rc;
		goto fail;
	}
	ev->running = 1;
	return 0;
ring:
	snprintf(why, whylen, "io_uring: %s", mems_strerror(errno));
fail:;
	int e = errno;
	free_ev(pg, ev);
	errno = e ? e : ENOMEM;
	return -1;
}

void evict_stop(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	if (!ev || !ev->running)
		return;
	pthread_mutex_lock(&pg->lock);
	ev->stopping = 1;
	pthread_cond_signal(&ev->wake);
	pthread_mutex_unlock(&pg->lock);
	pthread_join(ev->thread, NULL);
	ev->running = 0;
}

void evict_free(struct mems_pager *pg)
{
	struct mems_evict *ev = pg->ev;
	if (!ev)
		return;
	evict_stop(pg);
	pg->ev = NULL;
	free_ev(pg, ev);
}

int evict_fds(struct mems_pager *pg, int *fds)
{
	struct mems_evict *ev = pg->ev;
	int n = 0;
	fds[n++] = pg->uffd;
	fds[n++] = ev->roomfd;
	fds[n++] = ev->roomwr;
	fds[n++] = ev->store.fd;
	fds[n++] = ev->ering_ok ? ev->ering.ring_fd : -1;
	fds[n++] = ev->hring_ok ? ev->hring.ring_fd : -1;
	return n;
}

int evict_roomfd(struct mems_pager *pg)
{
	return pg->ev->roomfd;
}

void evict_counters(struct mems_pager *pg, struct pager_evict_counters *c)
{
	struct mems_evict *ev = pg->ev;
	c->cap = ev->cap;
	c->evictions = ev->evictions;
	c->page_ins = ev->page_ins;
	c->clean_drops = ev->clean_drops;
	c->cancelled = ev->cancelled;
	c->store_pages = ev->store.in_use;
	c->bytes_written = atomic_load(&ev->store.written);
	c->bytes_read = atomic_load(&ev->store.read);
	c->io_wait_ns = atomic_load(&ev->store.wait_ns);
	c->store_errors = ev->store_errors;
	c->over_cap = ev->over_cap;
	c->direct = ev->store.direct;
	snprintf(c->store_where, sizeof c->store_where, "%s", ev->store.where);
}

/* ---------------------------------------------------------------------
 * Checking (mems_check; pg->lock held)
 * ------------------------------------------------------------------- */

#define CHECK_FAIL(...)                                                \
	do {                                                           \
		snprintf(why, len, __VA_ARGS__);                       \
		rc = -1;                                               \
		goto out;                                              \
	} while (0)

int evict_check(struct mems_pager *pg, const uint64_t *process_map, char *why, size_t len)
{
	struct mems_evict *ev = pg->ev;
	uint64_t lim = committed_pages(pg), nslotted = 0;
	size_t seen_bytes = ev->store.nslots / 8;
	uint64_t *seen = os_map_meta(seen_bytes);
	int rc = 0, pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (!seen)
		CHECK_FAIL("out of memory for the check");
	for (uint64_t pi = 0; pi < (lim + 63) / 64 * 64; pi++) {
		if (!(pi % 64) && !ev->slotted[pi / 64]) {
			pi += 63;
			continue;
		}
		if (!map_get(ev->slotted, pi))
			continue;
		uint64_t s = ev->slot[pi] - 1;
		if (pi >= lim || !ev->slot[pi] || s >= ev->store.nslots)
			CHECK_FAIL("page %" PRIu64 " is marked as holding slot %" PRIu64
				   " (committed pages: %" PRIu64 ")", pi, s, lim);
		if (!((ev->store.used[s / 64] >> (s % 64)) & 1))
			CHECK_FAIL("page %" PRIu64 " holds slot %" PRIu64 ", which is free", pi, s);
		if ((seen[s / 64] >> (s % 64)) & 1)
			CHECK_FAIL("slot %" PRIu64 " is held by two pages", s);
		seen[s / 64] |= 1ull << (s % 64);
		if (!((process_map[pi / 64] >> (pi % 64)) & 1))
			CHECK_FAIL("page %" PRIu64 " holds a slot but no PROCESS segment covers it", pi);
		if (map_get(pg->resident, pi) && !map_get(ev->evicting, pi) && pm >= 0) {
			/* clean: it must be write protected (pagemap bit 57) */
			uint64_t e = 0;
			off_t at = (off_t)((addr_of(pg, pi) / pg->ps) * 8);
			if (pread(pm, &e, sizeof e, at) == sizeof e && (e >> 63) && !((e >> 57) & 1))
				CHECK_FAIL("page %" PRIu64 " is clean (its copy kept) but writable", pi);
		}
		nslotted++;
	}
	for (uint64_t pi = 0; pi < lim; pi++)
		if (ev->slot[pi] && !map_get(ev->slotted, pi))
			CHECK_FAIL("page %" PRIu64 " has a slot number but is not marked", pi);
	if (!ev->busy && nslotted != ev->store.in_use)
		CHECK_FAIL("%" PRIu64 " pages hold slots, the store counts %" PRIu64 " in use",
			   nslotted, ev->store.in_use);
	if (pg->touched > ev->cap && !ev->store_errors && !ev->over_cap && !ev->frozen &&
	    !ev->refill)
		CHECK_FAIL("%" PRIu64 " pages resident over a cap of %" PRIu64 " with no store error",
			   (uint64_t)pg->touched, ev->cap);
out:
	if (seen)
		os_unmap(seen, seen_bytes);
	if (pm >= 0)
		close(pm);
	return rc;
}
