/*
 * span.c - the OS layer.
 *
 * MeMS works in one span of address space, reserved PROT_NONE with
 * MAP_NORESERVE so that it costs neither memory nor commit charge.  Main
 * nodes are committed by mprotect() to read/write; untouched committed
 * memory still costs nothing until the pager populates it.  Uncommitted
 * memory stays PROT_NONE and is a guard: touching it raises SIGSEGV and
 * never reaches the fault handler.
 *
 * Metadata (segment and node records, maps, bitmaps) lives in separate
 * anonymous mappings, also MAP_NORESERVE, that the kernel populates on
 * demand: nothing of it is inside the span, so a user write past the end
 * of a block cannot reach it.
 */
#include "span.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fail.h"

/* An injected failure (fail.c): errno set, nonzero. */
static int injected(enum fail_point p)
{
	int e = fail_now(p);
	if (e)
		errno = e;
	return e;
}

size_t os_page_size(void)
{
	static size_t ps;
	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

void *os_reserve(size_t len, size_t align)
{
	if (injected(FP_MMAP))
		return NULL;
	size_t ps = os_page_size(), extra = align > ps ? align - ps : 0;
	char *p = mmap(NULL, len + extra, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED && extra) {
		/* no room for the slack (ulimit -v): take what is there */
		p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		extra = 0;
	}
	if (p == MAP_FAILED)
		return NULL;
	if (extra) {
		/* keep the aligned len bytes, give back the slack around them */
		size_t head = (size_t)(-(uintptr_t)p & (align - 1));
		if (head)
			munmap(p, head);
		if (extra - head)
			munmap(p + head + len, extra - head);
		p += head;
	}
	return p;
}

int os_rereserve(void *p, size_t len)
{
	void *q = mmap(p, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return q == p ? 0 : -1;
}

uint64_t os_address_room(uint64_t *limit)
{
	struct rlimit rl;
	*limit = UINT64_MAX;
	if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	*limit = rl.rlim_cur;
	/* what is mapped now: the first field of statm, in pages (read with
	 * no allocation: this runs inside malloc under the preload library) */
	uint64_t used = 0;
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
			used = used * 10 + (uint64_t)(buf[i] - '0');
		used *= os_page_size();
	}
	return rl.rlim_cur > used ? rl.rlim_cur - used : 0;
}

static int fd_id(int fd, uint64_t id[2])
{
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0)
		return -1;
	id[0] = sb.st_dev;
	id[1] = sb.st_ino;
	return 0;
}

void *os_map_meta(size_t len)
{
	if (injected(FP_MMAP))
		return NULL;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int os_unmap(void *p, size_t len)
{
	return munmap(p, len);
}

int os_commit(void *p, size_t len)
{
	if (injected(FP_MPROTECT))
		return -1;
	return mprotect(p, len, PROT_READ | PROT_WRITE);
}

int os_decommit(void *p, size_t len)
{
	if (injected(FP_MPROTECT))
		return -1;
	if (madvise(p, len, MADV_DONTNEED) != 0)
		return -1;
	return mprotect(p, len, PROT_NONE);
}

int os_release(void *p, size_t len)
{
	if (injected(FP_MADVISE))
		return -1;
	return madvise(p, len, MADV_DONTNEED);
}

int64_t os_resident_pages(void *p, size_t len)
{
	unsigned char vec[4096];
	size_t ps = os_page_size();
	size_t pages = len / ps;
	int64_t n = 0;
	char *q = p;

	while (pages) {
		size_t chunk = pages < sizeof vec ? pages : sizeof vec;
		if (mincore(q, chunk * ps, vec) != 0)
			return -1;
		for (size_t i = 0; i < chunk; i++)
			n += vec[i] & 1;
		q += chunk * ps;
		pages -= chunk;
	}
	return n;
}

uint64_t os_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 1 MiB: MeMS's threads keep a few KiB on their stacks, and glibc puts a
 * thread's static TLS there too, so that a program with up to 768 KiB of
 * it leaves them 256 KiB */
#define THREAD_STACK (1u << 20)

/* fd1 is fd + 1 (0: a free entry), stored after id with release and read
 * with acquire: MeMS's threads and the exit report read notes while
 * mems_finish forgets others */
#define NOTED 16
static struct { int fd1; uint64_t id[2]; } noted[NOTED];

static int noted_at(int fd)
{
	for (int i = 0; i < NOTED; i++)
		if (__atomic_load_n(&noted[i].fd1, __ATOMIC_ACQUIRE) == fd + 1)
			return i;
	return -1;
}

int os_fd_note(int fd)
{
	if (fd < 0)
		return fd;
	int i = noted_at(fd);
	if (i < 0)
		i = noted_at(-1);
	if (i >= 0 && fd_id(fd, noted[i].id) == 0)
		__atomic_store_n(&noted[i].fd1, fd + 1, __ATOMIC_RELEASE);
	return fd;
}

int os_fd_mine_as(int fd, int as)
{
	int i = as < 0 ? -1 : noted_at(as);
	uint64_t now[2];
	return i >= 0 && fd_id(fd, now) == 0 && now[0] == noted[i].id[0] &&
	       now[1] == noted[i].id[1];
}

int os_fd_mine(int fd)
{
	return os_fd_mine_as(fd, fd);
}

void os_fd_close(int fd)
{
	if (os_fd_mine(fd))
		close(fd);
	os_fd_forget(fd);
}

void os_fd_forget(int fd)
{
	int i = fd < 0 ? -1 : noted_at(fd);
	if (i >= 0)
		__atomic_store_n(&noted[i].fd1, 0, __ATOMIC_RELEASE);
}

/* The thread's own descriptor to the process (pidfd_open(2)), through
 * which it reaches the program's stderr; -1 in a thread that shares the
 * program's table.  Initial-exec, as pager_in_handler_: the default model
 * may allocate the TLS block on first use, and mems_diag reads these from
 * any thread. */
static __thread int own_pidfd __attribute__((tls_model("initial-exec"))) = -1;
static __thread int own_table __attribute__((tls_model("initial-exec")));

int os_own_fds(const int *keep, int n)
{
	int k[16], nk = 0;
	for (int i = 0; i < n && nk < 16; i++) {
		if (keep[i] < 0)
			continue;
		int j = nk++;
		for (; j > 0 && k[j - 1] > keep[i]; j--)
			k[j] = k[j - 1];
		k[j] = keep[i];
	}
	/* close_range first, on a range that holds nothing: without it the
	 * copy would hold every file of the program open */
	if (syscall(SYS_close_range, ~0u, ~0u, 0) != 0 || unshare(CLONE_FILES) != 0)
		return -1;
	unsigned lo = 0;
	for (int i = 0; i < nk; i++) {
		if ((unsigned)k[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)k[i] - 1, 0);
		lo = (unsigned)k[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
	own_table = 1;
	own_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	return 0;
}

int os_get_stderr(void)
{
	if (!own_table)
		return STDERR_FILENO;
	return own_pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, own_pidfd, STDERR_FILENO, 0);
}

void os_put_stderr(int fd)
{
	if (own_table && fd >= 0)
		close(fd);
}

/* What a new thread of MeMS's is started with: it takes its descriptors
 * into a table of its own before its creator goes on. */
struct start {
	void *(*fn)(void *);
	void *arg;
	const int *keep;
	int nkeep;
	sem_t taken;
};

static void *thread_begin(void *p)
{
	struct start *st = p;
	void *(*fn)(void *) = st->fn;
	void *arg = st->arg;
	if (st->nkeep >= 0)
		(void)os_own_fds(st->keep, st->nkeep);
	sem_post(&st->taken);           /* st is gone after this */
	void *r = fn(arg);
	/* The kernel releases an exiting thread's table after its joiner may
	 * have returned (the tid is cleared first): close the files now, so
	 * that whoever joined the thread finds them closed (a store's file
	 * system can be unmounted, a pipe sees its end). */
	if (own_table) {
		syscall(SYS_close_range, 0u, ~0u, 0);
		own_pidfd = -1;
	}
	return r;
}

int os_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const int *keep, int nkeep)
{
	int e = injected(FP_THREAD);
	if (e)
		return e;
	struct start st = { fn, arg, keep, nkeep, { { 0 } } };
	if (sem_init(&st.taken, 0, 0) != 0)
		return errno;
	/* the default (RLIMIT_STACK, 8 MiB) would only take address space,
	 * which counts under ulimit -v */
	pthread_attr_t at;
	if (pthread_attr_init(&at) != 0) {
		sem_destroy(&st.taken);
		return EAGAIN;
	}
	pthread_attr_setstacksize(&at, THREAD_STACK);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, &at, thread_begin, &st);
	if (rc == EINVAL)
		/* glibc carves static TLS out of the stack: a program with
		 * much of it needs the default */
		rc = pthread_create(t, NULL, thread_begin, &st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	/* signals are blocked in the new thread only: EINTR can reach us */
	while (rc == 0 && sem_wait(&st.taken) != 0)
		;
	sem_destroy(&st.taken);
	return rc;
}
