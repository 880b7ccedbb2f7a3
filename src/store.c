/*
 * store.c - the backing store for evicted pages.
 *
 * One file of page-sized slots.  Slot s lives at offset s * page size;
 * slots are handed out lowest free first, so the file stays as short as
 * the pages it holds allow, and a freed slot has its space given back
 * with FALLOC_FL_PUNCH_HOLE by the evictor thread (a punch can cost tens
 * of microseconds on ext4, too much for the fault path), once it has
 * rested (evict.c, PUNCH_DELAY_MS): the file holds no more than the pages
 * that are evicted (or resident and clean, with their copy kept), plus
 * slots freed while eviction went on.  A freed slot is reusable at once;
 * runs of adjacent freed slots are punched with one call, and a slot
 * taken again before its punch is simply not punched.
 *
 * The file is opened with O_DIRECT where the file system allows it, so an
 * evicted page leaves memory for good instead of moving into the page
 * cache; where it does not (tmpfs before 6.6, some FUSE mounts), buffered
 * I/O.  It is unlinked from the start (O_TMPFILE, or unlink right after
 * creating a named file), so it goes away with the process however the
 * process ends.
 *
 * I/O goes through io_uring (liburing).  Each thread that does I/O owns a
 * ring (the evictor writes, the fault handler reads): a batch is one
 * submission, runs of adjacent slots with adjacent buffers become one
 * request, and the caller waits for the whole batch.  The slot bitmap is
 * under the pager lock; the counters are atomics.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "fail.h"
#include "options.h"
#include "span.h"

/* ---------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------- */

/* Open with O_DIRECT if the file system takes it, else without. */
static int open_either(const char *path, int flags, mode_t mode, int *direct)
{
	int fd = open(path, flags | O_DIRECT, mode);
	*direct = fd >= 0;
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags, mode);
	return fd;
}

int store_open(struct mems_store *st, const char *where, uint64_t nslots, uint64_t ps,
	       char *why, size_t whylen)
{
	char path[256];
	struct stat sb;
	int fd;

	memset(st, 0, sizeof *st);
	st->fd = -1;
	st->ps = ps;
	if (!where[0]) {
		const char *t = getenv("TMPDIR");
		where = t && t[0] ? t : "/tmp";
	}
	opt_path(where, path, sizeof path);
	snprintf(st->where, sizeof st->where, "%s", path);
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fd = open_either(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600, &st->direct);
		if (fd < 0) {
			snprintf(why, whylen, "cannot make a file in %s: %s", path, mems_strerror(errno));
			return -1;
		}
	} else {
		fd = open_either(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &st->direct);
		if (fd < 0) {
			int e = errno;
			snprintf(why, whylen, "cannot create %s: %s%s", path, mems_strerror(e),
				 e == EEXIST ? " (name a new file or a directory)" : "");
			errno = e;
			return -1;
		}
		unlink(path);
	}
	struct statfs fs;
	st->in_memory = fstatfs(fd, &fs) == 0 &&
			(fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
	st->nslots = (nslots + 63) / 64 * 64;
	st->used = os_map_meta(2 * st->nslots / 8);
	if (!st->used) {
		int e = errno;
		close(fd);
		snprintf(why, whylen, "cannot map the slot bitmap: %s", mems_strerror(e));
		errno = e;
		return -1;
	}
	st->topunch = st->used + st->nslots / 64;
	st->fd = os_fd_note(fd);
	return 0;
}

void store_close(struct mems_store *st)
{
	if (st->fd >= 0)
		os_fd_close(st->fd);
	if (st->used)
		os_unmap(st->used, 2 * st->nslots / 8);
	st->fd = -1;
	st->used = NULL;
}

void store_fork_child(struct mems_store *st)
{
	store_close(st);
}

/* ---------------------------------------------------------------------
 * Slots (pager lock held)
 * ------------------------------------------------------------------- */

static int bit(const uint64_t *m, uint64_t i)
{
	return (m[i / 64] >> (i % 64)) & 1;
}

int64_t store_slot_alloc(struct mems_store *st)
{
	for (uint64_t w = st->hint; w < st->nslots / 64; w++) {
		if (st->used[w] == ~0ull)
			continue;
		int b = __builtin_ctzll(~st->used[w]);
		uint64_t s = w * 64 + (uint64_t)b;
		st->used[w] |= 1ull << b;
		if (bit(st->topunch, s)) {
			/* about to be written again: no need to punch it */
			st->topunch[w] &= ~(1ull << b);
			st->npunch--;
		}
		st->hint = w;
		st->in_use++;
		return (int64_t)s;
	}
	return -1;
}

void store_slot_free(struct mems_store *st, uint64_t slot)
{
	st->used[slot / 64] &= ~(1ull << (slot % 64));
	st->topunch[slot / 64] |= 1ull << (slot % 64);
	st->in_use--;
	st->npunch++;
	if (slot / 64 < st->hint)
		st->hint = slot / 64;
	if (slot / 64 < st->punch_hint)
		st->punch_hint = slot / 64;
}

int store_punch_take(struct mems_store *st, uint64_t *lo, uint64_t *n)
{
	uint64_t w = st->punch_hint;
	while (w < st->nslots / 64 && !st->topunch[w])
		w++;
	st->punch_hint = w;
	if (w == st->nslots / 64)
		return 0;
	uint64_t s = w * 64 + (uint64_t)__builtin_ctzll(st->topunch[w]), e = s;
	while (e < st->nslots && bit(st->topunch, e)) {
		st->topunch[e / 64] &= ~(1ull << (e % 64));
		st->used[e / 64] |= 1ull << (e % 64);
		e++;
	}
	st->npunch -= e - s;
	*lo = s;
	*n = e - s;
	return 1;
}

void store_punch(struct mems_store *st, uint64_t lo, uint64_t n)
{
	/* Best effort: a file system without hole punching keeps the space
	 * until the slot is written again or the store is closed. */
	(void)fallocate(st->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)(lo * st->ps), (off_t)(n * st->ps));
}

void store_punch_done(struct mems_store *st, uint64_t lo, uint64_t n)
{
	for (uint64_t s = lo; s < lo + n; s++)
		st->used[s / 64] &= ~(1ull << (s % 64));
	if (lo / 64 < st->hint)
		st->hint = lo / 64;
}

/* ---------------------------------------------------------------------
 * I/O
 * ------------------------------------------------------------------- */

int store_ring_init(struct io_uring *ring, unsigned entries)
{
	int rc = -fail_now(FP_URING_INIT);
	if (!rc)
		rc = io_uring_queue_init(entries, ring, 0);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

/* Requests of one batch: a run of pages [first, first+n) of the buffer. */
struct req {
	unsigned first, n, done;
};

unsigned store_io(struct mems_store *st, struct io_uring *ring, int write,
		  const struct store_io *io)
{
	struct req reqs[64];
	unsigned nreq = 0, failed = 0;
	uint64_t t0 = os_now_ns();

	for (unsigned i = 0; i < io->n; i++)
		io->res[i] = 0;
	for (unsigned i = 0; i < io->n;) {
		unsigned j = i + 1;
		while (j < io->n && io->slot[j] == io->slot[j - 1] + 1)
			j++;
		int inj = fail_now(write ? FP_URING_WRITE : FP_URING_READ);
		if (inj) {
			for (unsigned k = i; k < j; k++)
				io->res[k] = -inj;
			failed += j - i;
		} else {
			reqs[nreq++] = (struct req){ .first = i, .n = j - i };
		}
		i = j;
		/* gather up to 64 requests, then submit (and at the end) */
		if (!nreq || (nreq < sizeof reqs / sizeof reqs[0] && i < io->n))
			continue;
		/* submit what is gathered and wait for all of it; a short
		 * transfer is resubmitted for the rest */
		unsigned pending = 0;
		for (unsigned r = 0; r < nreq; r++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			char *buf = (char *)io->buf + reqs[r].first * st->ps;
			off_t off = (off_t)(io->slot[reqs[r].first] * st->ps);
			size_t len = reqs[r].n * st->ps;
			if (write)
				io_uring_prep_write(sqe, st->fd, buf, (unsigned)len, (uint64_t)off);
			else
				io_uring_prep_read(sqe, st->fd, buf, (unsigned)len, (uint64_t)off);
			io_uring_sqe_set_data64(sqe, r);
			pending++;
		}
		while (pending) {
			int rc = io_uring_submit_and_wait(ring, 1);
			if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
				/* the ring itself failed: everything pending failed */
				for (unsigned r = 0; r < nreq; r++)
					if (reqs[r].done < reqs[r].n * st->ps)
						for (unsigned k = 0; k < reqs[r].n; k++)
							if (!io->res[reqs[r].first + k]) {
								io->res[reqs[r].first + k] = rc;
								failed++;
							}
				pending = 0;
				break;
			}
			struct io_uring_cqe *cqe;
			while (io_uring_peek_cqe(ring, &cqe) == 0) {
				struct req *q = &reqs[io_uring_cqe_get_data64(cqe)];
				int res = cqe->res;
				io_uring_cqe_seen(ring, cqe);
				pending--;
				size_t want = q->n * st->ps - q->done;
				if (res > 0 && (size_t)res < want) {
					/* short: go on from where it stopped */
					q->done += (unsigned)res;
					struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
					char *buf = (char *)io->buf + q->first * st->ps + q->done;
					uint64_t off = io->slot[q->first] * st->ps + q->done;
					if (write)
						io_uring_prep_write(sqe, st->fd, buf, (unsigned)(want - (size_t)res), off);
					else
						io_uring_prep_read(sqe, st->fd, buf, (unsigned)(want - (size_t)res), off);
					io_uring_sqe_set_data64(sqe, (uint64_t)(q - reqs));
					pending++;
					continue;
				}
				if (res > 0) {
					q->done += (unsigned)res;
					continue;
				}
				/* an error, or end of file on a read (never written) */
				int err = res < 0 ? -res : EIO;
				for (unsigned k = q->done / (unsigned)st->ps; k < q->n; k++) {
					io->res[q->first + k] = -err;
					failed++;
				}
				q->done = q->n * (unsigned)st->ps;
			}
		}
		for (unsigned r = 0; r < nreq; r++) {
			uint64_t bytes = 0;
			for (unsigned k = 0; k < reqs[r].n; k++)
				if (!io->res[reqs[r].first + k])
					bytes += st->ps;
			atomic_fetch_add(write ? &st->written : &st->read, bytes);
		}
		nreq = 0;
	}
	atomic_fetch_add(&st->wait_ns, os_now_ns() - t0);
	return failed;
}
