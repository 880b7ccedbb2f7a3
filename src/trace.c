/*
 * trace.c - recording faults and releases.
 *
 * With MEMS_TRACE=FILE the pager records every fault it resolves and every
 * release of pages by free.  Recording must never make the fault handler
 * wait for the disk, so events go into a ring buffer in memory (a short
 * spinlock guards the copy of one record; producers are the handler and
 * whoever holds the allocator lock) and a writer thread drains it to the
 * file every few milliseconds with plain write(2): it is the only one that
 * waits, and it waits alone.  A full ring drops the event and counts it.
 *
 * The file is opened for appending and locked (flock): a process that
 * execs starts a new segment (header and records) in the same file, and a
 * second MeMS in the same process (a program linked with libmems that also
 * preloads it) writes NAME.2.  "%p" in the name becomes the pid, for a
 * file per process.  The child of fork() records nothing:
 * it runs on the kernel's paging (see pager.c) and has no writer thread.
 */
#define MEMS_LIBRARY 1
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/file.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "mems.h"
#include "options.h"
#include "span.h"

#define RING (1u << 16)            /* records */

static struct {
	int fd;                        /* noted (span.h) */
	_Atomic int on;
	struct mems_trace_rec *ring;   /* RING records, os_map_meta */
	uint64_t head, tail;           /* under spin */
	atomic_flag spin;
	_Atomic uint64_t dropped;
	uint64_t t0, base;
	pthread_t writer;
	int running;                   /* the writer thread exists */
	_Atomic int stop;
} tr = { .fd = -1, .spin = ATOMIC_FLAG_INIT };

uint64_t trace_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - tr.t0;
}

/* Acquire: what trace_start() set up before turning tracing on (the
 * clock's origin, the ring) is visible to whoever sees it on. */
int trace_active(void)
{
	return atomic_load_explicit(&tr.on, memory_order_acquire);
}

uint64_t trace_dropped(void)
{
	return tr.dropped;
}

void trace_event(uint64_t t_ns, int kind, uint64_t off, uint32_t pages, uint32_t tid,
		 uint32_t latency_ns, uint64_t touched, uint64_t mapped)
{
	struct mems_trace_rec r = {
		.t_ns = t_ns, .vaddr = MEMS_VIRTUAL_BASE + off, .touched = touched,
		.mapped = mapped, .tid = tid, .pages = pages, .latency_ns = latency_ns,
		.kind = (uint16_t)kind,
	};
	if (!trace_active())
		return;
	r.real = tr.base + off;
	while (atomic_flag_test_and_set_explicit(&tr.spin, memory_order_acquire))
		;
	/* checked again under the spinlock: trace_stop() may be on its way
	 * to unmapping the ring */
	if (atomic_load_explicit(&tr.on, memory_order_relaxed)) {
		if (tr.head - tr.tail < RING)
			tr.ring[tr.head++ % RING] = r;
		else
			tr.dropped++;
	}
	atomic_flag_clear_explicit(&tr.spin, memory_order_release);
}

/* Move what is in the ring to the file. */
static void drain(void)
{
	static struct mems_trace_rec batch[1024];
	if (tr.fd < 0)
		return;                 /* tracing stopped: see below */
	for (;;) {
		while (atomic_flag_test_and_set_explicit(&tr.spin, memory_order_acquire))
			;
		uint64_t n = tr.head - tr.tail;
		if (n > sizeof batch / sizeof batch[0])
			n = sizeof batch / sizeof batch[0];
		for (uint64_t i = 0; i < n; i++)
			batch[i] = tr.ring[(tr.tail + i) % RING];
		tr.tail += n;
		atomic_flag_clear_explicit(&tr.spin, memory_order_release);
		if (!n)
			return;
		if (!os_fd_mine(tr.fd)) {
			/* the program closed it (and may have opened a file of
			 * its own under its number): never write there.  Only
			 * a writer without a table of its own gets here. */
			mems_diag("trace: the trace file's descriptor was closed; tracing stops");
			tr.fd = -1;
			atomic_store(&tr.on, 0);
			atomic_store(&tr.stop, 1);
			return;
		}
		const char *p = (const char *)batch;
		size_t left = n * sizeof batch[0];
		while (left) {
			ssize_t w = write(tr.fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				mems_diag("trace: write: %s; tracing stops", mems_strerror(errno));
				atomic_store(&tr.on, 0);
				atomic_store(&tr.stop, 1);
				return;
			}
			p += w;
			left -= (size_t)w;
		}
	}
}

static void *writer_main(void *arg)
{
	(void)arg;
	struct timespec nap = { 0, 5 * 1000 * 1000 };
	while (!atomic_load(&tr.stop)) {
		nanosleep(&nap, NULL);
		drain();
	}
	drain();        /* the last records: trace_stop waited out the producers */
	return NULL;
}

static void release_all(void)
{
	os_fd_close(tr.fd);
	if (tr.ring)
		os_unmap(tr.ring, RING * sizeof *tr.ring);
	tr.fd = -1;
	tr.ring = NULL;
}

int trace_start(const char *path, uint64_t span_base, int thread_ids)
{
	char name[4096];
	size_t n = opt_path(path, name, sizeof name - 24);   /* room for ".N" */
	/* One writer a file: another MeMS in this process (a program linked
	 * with libmems and also preloading it) or elsewhere holds the lock,
	 * so take NAME.2, NAME.3, ... */
	for (int k = 1; k < 100; k++) {
		if (k > 1)
			snprintf(name + n, sizeof name - n, ".%d", k);
		tr.fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (tr.fd < 0) {
			mems_diag("MEMS_TRACE=%s: cannot open: %s", name, mems_strerror(errno));
			return -1;
		}
		if (flock(tr.fd, LOCK_EX | LOCK_NB) == 0)
			break;
		close(tr.fd);
		tr.fd = -1;
	}
	if (tr.fd < 0) {
		mems_diag("MEMS_TRACE=%s: every name is taken", path);
		return -1;
	}
	os_fd_note(tr.fd);
	tr.ring = os_map_meta(RING * sizeof *tr.ring);
	if (!tr.ring) {
		os_fd_close(tr.fd);
		tr.fd = -1;
		return -1;
	}
	struct timespec rt, mono;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	tr.t0 = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
	struct mems_trace_header h = {
		.magic = MEMS_TRACE_MAGIC, .version = MEMS_TRACE_VERSION,
		.record_size = sizeof(struct mems_trace_rec), .page_size = MEMS_PAGE_SIZE,
		.os_page_size = (uint32_t)os_page_size(), .pid = (uint32_t)getpid(),
		.flags = thread_ids ? 1 : 0,
		.start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec,
		.span_base = span_base,
	};
	if (write(tr.fd, &h, sizeof h) != (ssize_t)sizeof h) {
		mems_diag("MEMS_TRACE=%s: cannot write: %s", name, mems_strerror(errno));
		trace_stop();
		return -1;
	}
	tr.base = span_base;
	tr.head = tr.tail = 0;
	tr.dropped = 0;
	tr.stop = 0;
	/* the trace file in a table of the writer's own, where the program
	 * cannot close it (span.h) */
	int rc = os_thread_start(&tr.writer, writer_main, NULL, &tr.fd, 1);
	if (rc) {
		errno = rc;
		trace_stop();
		return -1;
	}
	tr.running = 1;
	atomic_store(&tr.on, 1);
	return 0;
}

void trace_stop(void)
{
	if (tr.running) {
		atomic_store(&tr.on, 0);
		/* wait out a producer already inside trace_event() */
		while (atomic_flag_test_and_set_explicit(&tr.spin, memory_order_acquire))
			;
		atomic_flag_clear_explicit(&tr.spin, memory_order_release);
		atomic_store(&tr.stop, 1);
		pthread_join(tr.writer, NULL);
		tr.running = 0;
		if (tr.dropped)
			mems_diag("trace: %llu events dropped (the ring was full)",
				  (unsigned long long)tr.dropped);
	}
	release_all();
}

/* A program linked with MeMS (or preloading it) rarely calls mems_finish:
 * write the rest of the trace when it exits. */
__attribute__((destructor)) static void trace_at_exit(void)
{
	if (trace_active())
		trace_stop();
}

void trace_fork_child(void)
{
	atomic_store(&tr.on, 0);
	release_all();
	tr.running = 0;
	atomic_flag_clear(&tr.spin);
}
