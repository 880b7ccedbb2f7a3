/*
 * small.c - small blocks in runs, for the pointer API.
 *
 * A block of up to SM_MAX_SIZE bytes comes from a run: one PROCESS segment
 * of the 2-D list, carved by the list's own first fit and marked "held",
 * cut into blocks of one size class (class_setup()).  The list stays
 * canonical (a run is allocated memory, and its pages are live to the
 * pager); what the run's blocks are doing is in the run's record, outside
 * the span: a bitmap of free blocks (1 = free), up to 256 blocks, in runs
 * of 1 to 16 pages chosen to hold about 32 blocks.  The stats report runs,
 * the blocks allocated in them and both their bytes (small_runs,
 * small_blocks, small_bytes, small_run_bytes), so "in use by the program"
 * is bytes_in_use - small_run_bytes + small_bytes.  The seed API never
 * uses runs.
 *
 * Each thread owns at most one run per class and allocates from it alone:
 * the lowest free bit, cleared with one atomic AND, no lock.  Any thread
 * frees with one atomic OR into the run's bitmap; a bit that was set
 * already is a double free, caught even when two threads race.  free()
 * finds the run through run_of[], one entry per OS page of the span, set
 * before a run's first block is handed out.
 *
 * A run's state says who may take blocks from it:
 *   OWNED     a thread allocates from it;
 *   DETACHED  its owner found it full and let go; a free puts it on its
 *             class's partial list: the first while one thread uses runs,
 *             the one that makes a quarter of its blocks free when more
 *             do (enlist_at);
 *   PARTIAL   on the partial list, for the next thread that needs a run;
 *   RETIRING  wholly free, going back to the list.
 * Letting go and freeing race: the owner stores DETACHED then looks for a
 * free bit; a freer sets its bit then reads the state (both sequentially
 * consistent), so at least one of them sees the other, and a CAS from
 * DETACHED (to OWNED by the owner, to PARTIAL by the freer) picks one.  A
 * PARTIAL run whose last block is freed is freed on the list (its pages
 * then go back to the kernel as any hole's).  Keeping one empty run per
 * class instead cost more memory than it saved time in the churn.
 *
 * Locks: list_lock[class] guards a class's partial list, and is a leaf:
 * mems_lock may be held when it is taken, never taken under it.  Runs are
 * made and retired under mems_lock.  mems_finish makes sm_gen even and
 * waits until no fast path is active (each sets its thread record's flag
 * before reading sm_gen: a Dekker handshake), and a fast path never waits
 * for mems_lock while active.  Thread records are reused, never unmapped;
 * a thread's exit lets its runs go, and a fork child lets go of the runs
 * of the threads it does not have.
 *
 * Off by default in libmems (the assignment's stats count every block as
 * a segment), on in libmems-preload.so; MEMS_SMALL_RUNS sets it.  In the
 * uffd-user pager mode, whose blocks must be resident before they are
 * handed out, a run is populated whole when it is made; its pages are
 * live while it lasts, so nothing gives them back under its blocks.
 */
#include "small.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bits.h"
#include "diag.h"
#include "internal.h"
#include "options.h"
#include "span.h"

#define GRAIN 16u
#define CLASSES 40u              /* see class_setup() */
#define RUN_WORDS 4u
#define RUN_BLOCKS (RUN_WORDS * 64u)
#define RUN_TARGET 32u          /* blocks a run is sized for */
#define RUN_PAGES_MAX 16u
#define RUNS_MAX (1u << 22)

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MEMS_HAS_TSAN 1
#endif
#endif
#ifndef MEMS_HAS_TSAN
#define MEMS_HAS_TSAN 0
#endif

enum { RUN_OWNED = 1, RUN_DETACHED, RUN_PARTIAL, RUN_RETIRING };

struct run {
	uint32_t next, prev;       /* partial list (next: the slab's link) */
	uint64_t start;            /* span offset, page aligned */
	uint32_t bytes;
	_Atomic uint16_t cls, nblocks;   /* read by stale freers: see free_block */
	mems_id seg;               /* its PROCESS segment */
	_Atomic uint8_t state;
	uint8_t live;              /* the record is in use */
	uint16_t home;             /* serial of the thread that owned it last */
	_Atomic uint64_t free[RUN_WORDS];
};

struct sm_thread {
	_Atomic int active;        /* in a fast path */
	unsigned gen;              /* the sm_gen cur[] belongs to */
	int in_use;                /* a thread owns the record (reg_lock) */
	uint16_t serial;           /* the runs it owned say so (run.home) */
	struct sm_thread *next;    /* every record ever made */
	uint32_t cur[CLASSES];     /* the run this thread allocates from */
};

static struct {
	struct mems_slab runs;     /* records; made and freed under mems_lock */
	_Atomic uint32_t *run_of;  /* per OS page of the span: its run or 0 */
	size_t run_of_bytes;
	uint64_t ps;
	uint32_t partial[CLASSES];   /* under list_lock[class] */
	uint32_t bytes[CLASSES];   /* run geometry per class */
	uint16_t nblocks[CLASSES];
} sm;

static _Atomic unsigned sm_gen;        /* odd: runs are on */
static pthread_mutex_t list_lock[CLASSES] = { [0 ... CLASSES - 1] = PTHREAD_MUTEX_INITIALIZER };
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sm_thread *reg;
static pthread_key_t key;
static int key_ok;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static __thread struct sm_thread *self __attribute__((tls_model("initial-exec")));
#define DEAD ((struct sm_thread *)1)   /* this thread has let its runs go */

static struct run *run_at(uint32_t r)
{
	return slab_at(&sm.runs, r);
}

/* Size classes: 16-byte steps up to 256 bytes, then 32 up to 512, 64 up
 * to 1024 and 128 up to 2048.  At most 1/16 of a block is rounding (1/32
 * on average), and a class above 256 bytes gathers more blocks than one
 * per 16 bytes would: each class's runs hold room for its own peak, so
 * fewer classes keep less free room in runs. */
static uint16_t class_bytes[CLASSES];
static uint32_t class_div[CLASSES];             /* 2^32 / size + 1 */
static uint8_t class_of[SM_MAX_SIZE / GRAIN];   /* by (size - 1) / 16 */

static void class_setup(void)
{
	unsigned c = 0;
	for (unsigned sz = GRAIN; sz <= SM_MAX_SIZE;) {
		class_div[c] = (uint32_t)((1ull << 32) / sz + 1);
		class_bytes[c++] = (uint16_t)sz;
		sz += sz < 256 ? 16 : sz < 512 ? 32 : sz < 1024 ? 64 : 128;
	}
	for (unsigned g = 0, k = 0; g < SM_MAX_SIZE / GRAIN; g++) {
		while (class_bytes[k] < (g + 1) * GRAIN)
			k++;
		class_of[g] = (uint8_t)k;
	}
}

static uint64_t block_size(unsigned cls)
{
	return class_bytes[cls];
}

/* d / size for an offset d inside a run (below 2^16 + 1): a multiply,
 * exact for every class and every such d (checked at start). */
static uint64_t block_index(uint64_t d, unsigned cls)
{
	return (d * class_div[cls]) >> 32;
}

static uint64_t full_word(const struct run *R, unsigned w)
{
	unsigned n = R->nblocks;
	if (n >= (w + 1) * 64)
		return ~0ull;
	return n > w * 64 ? (1ull << (n - w * 64)) - 1 : 0;
}

static int any_free(struct run *R)
{
	for (unsigned w = 0; w < RUN_WORDS; w++)
		if (atomic_load(&R->free[w]))
			return 1;
	return 0;
}

static unsigned free_count(struct run *R)
{
	unsigned n = 0;
	for (unsigned w = 0; w < RUN_WORDS; w++)
		n += bits_count(atomic_load(&R->free[w]));
	return n;
}

/* Threads with a thread record in use (reg_lock) */
static unsigned attached;

/* A DETACHED run goes on the partial list once this many of its blocks
 * are free.  Put back at its first free block, a run is taken, filled by
 * one allocation and let go again: two trips through its class's lock for
 * every block, and two threads freeing and allocating in one class queue
 * on that lock (10,000 futex calls in a 2-thread churn of 1M operations
 * each; 2,500 waiting for a quarter).  A single thread has no one to
 * queue behind, and waiting would cost it memory (the 5M churn's peak:
 * 55 MiB, against 51): with one thread it is the first free block.  A
 * wholly free run is always put back. */
static unsigned enlist_at(const struct run *R)
{
	unsigned t = __atomic_load_n(&attached, __ATOMIC_RELAXED);
	return t > 1 && R->nblocks >= 4 ? R->nblocks / 4u : 1;
}

static int all_free(struct run *R)
{
	for (unsigned w = 0; w < RUN_WORDS; w++)
		if (atomic_load(&R->free[w]) != full_word(R, w))
			return 0;
	return 1;
}

/* The owner takes the lowest free block: its index, or -1.  Only the owner
 * clears bits, so a bit it saw set is still set when it clears it. */
static int take_block(struct run *R)
{
	for (unsigned w = 0; w < RUN_WORDS; w++) {
		uint64_t v = atomic_load_explicit(&R->free[w], memory_order_relaxed);
		if (v) {
			unsigned b = (unsigned)__builtin_ctzll(v);
			atomic_fetch_and_explicit(&R->free[w], ~(1ull << b), memory_order_acq_rel);
			return (int)(w * 64 + b);
		}
	}
	return -1;
}

/* The handshake with mems_finish.  With membarrier(2) (asym) the fast
 * path's side is a plain store and a compiler barrier, and finish makes
 * every running thread execute a full barrier instead (the asymmetric
 * Dekker of userspace RCU); without it, or under ThreadSanitizer, which
 * cannot see that barrier, both sides are sequentially consistent. */
static _Atomic int asym;

static void enter(struct sm_thread *th)
{
	if (atomic_load_explicit(&asym, memory_order_relaxed)) {
		atomic_store_explicit(&th->active, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
	} else {
		atomic_store(&th->active, 1);
	}
}

/* sm_gen, read after enter() */
static unsigned gen_now(void)
{
	return atomic_load_explicit(&sm_gen, atomic_load_explicit(&asym, memory_order_relaxed)
						     ? memory_order_relaxed : memory_order_seq_cst);
}

static void leave(struct sm_thread *th)
{
	atomic_store_explicit(&th->active, 0, memory_order_release);
}

/* ---------------------------------------------------------------------
 * Partial lists (list_lock held)
 * ------------------------------------------------------------------- */

static void push_partial(uint32_t r)
{
	struct run *R = run_at(r);
	R->prev = 0;
	R->next = sm.partial[R->cls];
	if (R->next)
		run_at(R->next)->prev = r;
	sm.partial[R->cls] = r;
}

static void unlink_partial(uint32_t r)
{
	struct run *R = run_at(r);
	if (R->prev)
		run_at(R->prev)->next = R->next;
	else
		sm.partial[R->cls] = R->next;
	if (R->next)
		run_at(R->next)->prev = R->prev;
	R->next = R->prev = 0;
}

/* A run with free blocks for class i, now OWNED by the thread of serial
 * home, or 0.  One this thread owned before is preferred among the first
 * few: its free blocks were freed by this thread, most likely, and taking
 * another thread's run would put the two threads' blocks side by side,
 * their frees and allocations on the same bitmap words and cache lines. */
#define PARTIAL_LOOK 8
static uint32_t pop_partial(unsigned i, uint16_t home)
{
	pthread_mutex_lock(&list_lock[i]);
	uint32_t r = sm.partial[i];
	for (uint32_t c = r, n = 0; c && n < PARTIAL_LOOK; c = run_at(c)->next, n++)
		if (run_at(c)->home == home) {
			r = c;
			break;
		}
	if (r) {
		unlink_partial(r);
		run_at(r)->home = home;
		atomic_store(&run_at(r)->state, RUN_OWNED);
	}
	pthread_mutex_unlock(&list_lock[i]);
	return r;
}

/* A DETACHED run with a free block goes on its partial list, unless its
 * owner took it back first (the CAS picks one of the two). */
static void enlist(uint32_t r)
{
	struct run *R = run_at(r);
	unsigned i = R->cls;
	pthread_mutex_lock(&list_lock[i]);
	uint8_t e = RUN_DETACHED;
	if (R->cls == i && atomic_compare_exchange_strong(&R->state, &e, RUN_PARTIAL))
		push_partial(r);
	pthread_mutex_unlock(&list_lock[i]);
}

/* ---------------------------------------------------------------------
 * Making and retiring runs (mems_lock held)
 * ------------------------------------------------------------------- */

static uint32_t make_run(unsigned i)
{
	uint64_t off;
	mems_id s;
	int saved = errno;

	if (mems_alloc_seg_locked(sm.bytes[i], sm.ps, &off, &s, 0) != 0) {
		errno = saved;
		return 0;
	}
	uint32_t r = slab_alloc(&sm.runs);
	if (!r) {
		mems_free_locked(s);
		errno = saved;
		return 0;
	}
	struct run *R = run_at(r);       /* not cleared: the slab is typesafe */
	R->next = R->prev = 0;
	R->start = off;
	R->bytes = sm.bytes[i];
	R->cls = (uint16_t)i;
	R->nblocks = sm.nblocks[i];
	R->seg = s;
	R->live = 1;
	R->home = 0;
	for (unsigned w = 0; w < RUN_WORDS; w++)
		atomic_store_explicit(&R->free[w], full_word(R, w), memory_order_relaxed);
	atomic_store(&R->state, RUN_OWNED);
	fl_seg(&mems_g.fl, s)->held = 1;
	for (uint64_t p = off / sm.ps; p < (off + R->bytes) / sm.ps; p++)
		atomic_store_explicit(&sm.run_of[p], r, memory_order_release);
	return r;
}

static void free_run(uint32_t r)
{
	struct run *R = run_at(r);
	for (uint64_t p = R->start / sm.ps; p < (R->start + R->bytes) / sm.ps; p++)
		atomic_store_explicit(&sm.run_of[p], 0, memory_order_relaxed);
	mems_free_locked(R->seg);
	R->live = 0;
	atomic_store(&R->state, 0);
	slab_free(&sm.runs, r);
}

/* A new run for class i, OWNED by the caller (who is not active), or 0. */
static uint32_t new_run(unsigned i, unsigned g, uint16_t home)
{
	uint32_t r = 0;
	int saved = errno;
	mems_lock_take();
	if (atomic_load(&sm_gen) == g && mems_g.ready && (r = make_run(i)) != 0) {
		run_at(r)->home = home;
		/* Populated here, under the allocator lock (an ioctl: it touches
		 * no user page and never waits for the handler), so that a
		 * concurrent mems_finish cannot unmap the pager meanwhile.  In
		 * uffd-user mode every block must be resident before it is
		 * handed out (a system call writing into it cannot fault it
		 * in): the whole run, or no run.  Else MEMS_POPULATE, the run
		 * as a block of its size. */
		if (mems_fill_locked(run_at(r)->start, sm.bytes[i], 1) != 0) {
			free_run(r);
			r = 0;
		}
	}
	mems_lock_drop();
	errno = saved;
	return r;
}

/* ---------------------------------------------------------------------
 * Freeing
 * ------------------------------------------------------------------- */

/* Run r's last block was freed: take it off its partial list.  Called
 * active (or under mems_lock); returns the run to give back to the list
 * once the caller has left its fast path, or 0. */
static uint32_t wholly_free(uint32_t r)
{
	struct run *R = run_at(r);
	uint32_t out = 0;
	unsigned i = R->cls;
	pthread_mutex_lock(&list_lock[i]);
	if (R->cls == i && atomic_load(&R->state) == RUN_PARTIAL && all_free(R)) {
		unlink_partial(r);
		atomic_store(&R->state, RUN_RETIRING);
		out = r;
	}
	pthread_mutex_unlock(&list_lock[i]);
	return out;
}

/* Free the block at span offset off.  1 freed (*retire: a run to give
 * back, or 0), 0 not in a run, -1 not an allocated block (*why). */
static int free_block(uint64_t off, const char **why, uint32_t *retire)
{
	*retire = 0;
	if (off >= mems_g.span_size)
		return 0;
	uint32_t r = atomic_load_explicit(&sm.run_of[off / sm.ps], memory_order_acquire);
	if (!r)
		return 0;
	struct run *R = run_at(r);
	uint64_t d = off - R->start, size = block_size(R->cls);
	if (off < R->start || d >= R->bytes)
		return 0;                  /* a stale entry: let the list decide */
	uint64_t b = block_index(d, R->cls);
	if (b * size != d) {
		*why = "inside a block, not its start";
		return -1;
	}
	if (b >= R->nblocks) {
		*why = "past the last block of a run";
		return -1;
	}
	uint64_t bit = 1ull << (b % 64);
	if (atomic_fetch_or(&R->free[b / 64], bit) & bit) {
		*why = "not allocated (double free?)";
		return -1;
	}
	/* From here on another freer may find R wholly free and retire it,
	 * and a new run may reuse the record: what is read of it is some
	 * incarnation's (atomics, the slab is typesafe), and enlist() and
	 * wholly_free() check the class again under its list lock, which
	 * every move onto or off a partial list holds. */
	uint8_t st = atomic_load(&R->state);
	unsigned at;     /* with one thread the bit just set is enough: no count */
	if (st == RUN_DETACHED && ((at = enlist_at(R)) == 1 || free_count(R) >= at)) {
		enlist(r);
		st = atomic_load(&R->state);
	}
	if (st == RUN_PARTIAL && all_free(R))
		*retire = wholly_free(r);
	return 1;
}

/* Give a RETIRING run back to the list (mems_lock held). */
static void retire_locked(uint32_t r, unsigned g)
{
	if (atomic_load(&sm_gen) == g && mems_g.ready && run_at(r)->live &&
	    atomic_load(&run_at(r)->state) == RUN_RETIRING)
		free_run(r);
}

/* ---------------------------------------------------------------------
 * Thread records
 * ------------------------------------------------------------------- */

/* The owner lets go of run r for good (exit, fork). */
static void let_go(uint32_t r)
{
	struct run *R = run_at(r);
	atomic_store(&R->state, RUN_DETACHED);
	if (any_free(R))
		enlist(r);               /* else the next free puts it there */
}

static void thread_gone(void *arg)
{
	struct sm_thread *th = arg;
	uint32_t out[CLASSES];
	unsigned n = 0;

	mems_lock_take();
	unsigned g = atomic_load(&sm_gen);
	if ((g & 1) && th->gen == g && mems_g.ready)
		for (unsigned i = 0; i < CLASSES; i++)
			if (th->cur[i]) {
				let_go(th->cur[i]);
				if ((out[n] = wholly_free(th->cur[i])))
					n++;
			}
	for (unsigned k = 0; k < n; k++)
		retire_locked(out[k], g);
	memset(th->cur, 0, sizeof th->cur);
	mems_lock_drop();
	self = DEAD;
	pthread_mutex_lock(&reg_lock);
	th->in_use = 0;
	__atomic_store_n(&attached, attached - 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&reg_lock);
}

static void make_key(void)
{
	key_ok = pthread_key_create(&key, thread_gone) == 0;
}

static struct sm_thread *attach(void)
{
	if (!(atomic_load_explicit(&sm_gen, memory_order_relaxed) & 1))
		return NULL;
	pthread_once(&key_once, make_key);
	if (!key_ok)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	struct sm_thread *th = reg;
	while (th && th->in_use)
		th = th->next;
	if (!th) {
		int saved = errno;
		th = os_map_meta(sizeof *th);
		errno = saved;
		if (!th) {
			pthread_mutex_unlock(&reg_lock);
			return NULL;      /* this thread takes the slow path */
		}
		th->next = reg;
		reg = th;
	}
	static uint16_t serials;
	th->in_use = 1;
	__atomic_store_n(&attached, attached + 1, __ATOMIC_RELAXED);
	th->gen = 0;
	th->serial = ++serials ? serials : ++serials;
	pthread_mutex_unlock(&reg_lock);
	self = th;
	pthread_setspecific(key, th);
	return th;
}

/* ---------------------------------------------------------------------
 * The fast paths
 * ------------------------------------------------------------------- */

void *sm_malloc(size_t size, int zero)
{
	struct sm_thread *th = self;

	if (size > SM_MAX_SIZE || th == DEAD)
		return NULL;
	if (!th && !(th = attach()))
		return NULL;
	unsigned i = class_of[size ? (size - 1) / GRAIN : 0];
	enter(th);
	unsigned g = gen_now();
	if (!(g & 1)) {
		leave(th);
		return NULL;
	}
	if (th->gen != g) {
		memset(th->cur, 0, sizeof th->cur);
		th->gen = g;
	}
	for (;;) {
		uint32_t r = th->cur[i];
		if (r) {
			struct run *R = run_at(r);
			int b = take_block(R);
			if (b >= 0) {
				char *p = mems_g.span + R->start + (uint64_t)b * block_size(i);
				if (zero)       /* before leave(): finish waits for it */
					memset(p, 0, size);
				leave(th);
				return p;
			}
			/* full: let go, unless a block was freed meanwhile */
			atomic_store(&R->state, RUN_DETACHED);
			uint8_t e = RUN_DETACHED;
			if (any_free(R) && atomic_compare_exchange_strong(&R->state, &e, RUN_OWNED))
				continue;
			th->cur[i] = 0;
		}
		r = pop_partial(i, th->serial);
		if (!r) {
			leave(th);
			r = new_run(i, g, th->serial);
			if (!r)
				return NULL;
			enter(th);
			if (gen_now() != g) {
				leave(th);     /* MeMS finished meanwhile */
				return NULL;
			}
		}
		th->cur[i] = r;
	}
}

int sm_free(void *p, const char **why)
{
	struct sm_thread *th = self;
	uint32_t out;

	if (th == DEAD || (!th && !(th = attach())))
		return 0;
	enter(th);
	unsigned g = gen_now();
	if (!(g & 1)) {
		leave(th);
		return 0;
	}
	int rc = free_block((uintptr_t)p - (uintptr_t)mems_g.span, why, &out);
	leave(th);
	if (out) {
		int saved = errno;     /* free never changes errno */
		mems_lock_take();
		retire_locked(out, g);
		mems_lock_drop();
		errno = saved;
	}
	return rc;
}

/* ---------------------------------------------------------------------
 * The slow paths' questions (mems_lock held)
 * ------------------------------------------------------------------- */

int sm_free_locked(uint64_t off, const char **why, int may_retire)
{
	uint32_t out;
	unsigned g = atomic_load(&sm_gen);
	if (!(g & 1))
		return 0;
	int rc = free_block(off, why, &out);
	if (out && may_retire)
		retire_locked(out, g);
	return rc;
}

size_t sm_block_size_locked(uint64_t off, const char **why)
{
	if (!(atomic_load(&sm_gen) & 1) || off >= mems_g.span_size)
		return 0;
	uint32_t r = atomic_load(&sm.run_of[off / sm.ps]);
	if (!r)
		return 0;
	struct run *R = run_at(r);
	uint64_t d = off - R->start, size = block_size(R->cls);
	if (off < R->start || d >= R->bytes)
		return 0;
	uint64_t b = block_index(d, R->cls);
	if (b * size != d || b >= R->nblocks) {
		*why = "inside a block, not its start";
		return SIZE_MAX;
	}
	if (atomic_load(&R->free[b / 64]) & (1ull << (b % 64))) {
		*why = "not allocated (double free?)";
		return SIZE_MAX;
	}
	return size;
}

/* ---------------------------------------------------------------------
 * Init, finish, fork
 * ------------------------------------------------------------------- */

/* Registering for expedited membarriers costs the kernel a
 * synchronize_rcu() (10-25 ms measured here) unless the process has one
 * thread, so mems_init calls this before it starts the pager's thread.
 * The registration lasts for the process (and is inherited by a fork). */
void sm_register_barrier(void)
{
#if !defined(__SANITIZE_THREAD__) && !MEMS_HAS_TSAN
	if (opt_int(OPT_SMALL_RUNS) && !atomic_load(&asym) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		atomic_store(&asym, 1);
#endif
}

int sm_start_locked(void)
{
	if (!opt_int(OPT_SMALL_RUNS))
		return 0;
	/* once: sm_malloc reads the tables before it looks at sm_gen */
	static pthread_once_t classes_once = PTHREAD_ONCE_INIT;
	pthread_once(&classes_once, class_setup);
	sm.ps = os_page_size();
	for (unsigned i = 0; i < CLASSES; i++) {
		uint64_t size = block_size(i);
		uint64_t pages = (RUN_TARGET * size + sm.ps - 1) / sm.ps;
		if (pages > RUN_PAGES_MAX)
			pages = RUN_PAGES_MAX;
		uint64_t n = pages * sm.ps / size;
		sm.nblocks[i] = (uint16_t)(n > RUN_BLOCKS ? RUN_BLOCKS : n);
		sm.bytes[i] = (uint32_t)(pages * sm.ps);
		sm.partial[i] = 0;
	}
	sm.run_of_bytes = (mems_g.span_size / sm.ps) * sizeof(uint32_t);
	sm.run_of = os_map_meta(sm.run_of_bytes);
	if (!sm.run_of)
		return -1;
	/* a run is at least a page: no more runs than pages in the span */
	uint64_t pages = mems_g.span_size / sm.ps + 1;
	if (slab_init(&sm.runs, sizeof(struct run), pages < RUNS_MAX ? (uint32_t)pages : RUNS_MAX) != 0) {
		os_unmap((void *)sm.run_of, sm.run_of_bytes);
		sm.run_of = NULL;
		return -1;
	}
	sm.runs.typesafe = 1;
	atomic_fetch_add(&sm_gen, 1);          /* odd: on */
	return 0;
}

void sm_stop_locked(void)
{
	if (!(atomic_load(&sm_gen) & 1))
		return;
	atomic_fetch_add(&sm_gen, 1);          /* even: off */
	if (atomic_load(&asym))
		syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	pthread_mutex_lock(&reg_lock);
	for (struct sm_thread *th = reg; th; th = th->next)
		while (atomic_load(&th->active))
			sched_yield();
	pthread_mutex_unlock(&reg_lock);
	/* no fast path is active now, and the slow paths wait for mems_lock:
	 * nothing holds a list lock or looks at a run */
	slab_destroy(&sm.runs);
	os_unmap((void *)sm.run_of, sm.run_of_bytes);
	sm.run_of = NULL;
}

static void lock_lists(void)
{
	for (unsigned i = 0; i < CLASSES; i++)
		pthread_mutex_lock(&list_lock[i]);
}

static void unlock_lists(void)
{
	for (unsigned i = 0; i < CLASSES; i++)
		pthread_mutex_unlock(&list_lock[i]);
}

void sm_fork_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
	lock_lists();
}

void sm_fork_parent(void)
{
	unlock_lists();
	pthread_mutex_unlock(&reg_lock);
}

void sm_fork_child_locked(void)
{
	unlock_lists();
	unsigned g = atomic_load(&sm_gen);
	for (struct sm_thread *th = reg; th; th = th->next)
		if (th->in_use && th != self) {
			if ((g & 1) && th->gen == g)
				for (unsigned i = 0; i < CLASSES; i++)
					if (th->cur[i])
						let_go(th->cur[i]);
			memset(th->cur, 0, sizeof th->cur);
			th->in_use = 0;
			__atomic_store_n(&attached, attached - 1, __ATOMIC_RELAXED);
			atomic_store(&th->active, 0);
		}
	pthread_mutex_unlock(&reg_lock);
}

/* ---------------------------------------------------------------------
 * Stats and checks (mems_lock held)
 * ------------------------------------------------------------------- */

uint64_t sm_counts_locked(uint64_t *blocks, uint64_t *bytes, uint64_t *run_bytes)
{
	uint64_t runs = 0, nb = 0, by = 0, rb = 0;
	if (atomic_load(&sm_gen) & 1)
		for (uint32_t r = 1; r < sm.runs.bump; r++) {
			struct run *R = run_at(r);
			if (!R->live)
				continue;
			unsigned freen = free_count(R);
			runs++;
			rb += R->bytes;
			nb += R->nblocks - freen;
			by += (uint64_t)(R->nblocks - freen) * block_size(R->cls);
		}
	if (blocks)
		*blocks = nb;
	if (bytes)
		*bytes = by;
	if (run_bytes)
		*run_bytes = rb;
	return runs;
}

#define FAIL(...)                                                      \
	do {                                                           \
		snprintf(why, len, __VA_ARGS__);                       \
		return -1;                                             \
	} while (0)

int sm_check_locked(char *why, size_t len)
{
	struct mems_fl *fl = &mems_g.fl;
	uint64_t held = 0, runs = 0;

	for (mems_id s = 1; s < fl->segs.bump; s++)
		if (fl_seg(fl, s)->type == SEG_PROCESS && fl_seg(fl, s)->held)
			held++;
	if (!(atomic_load(&sm_gen) & 1)) {
		if (held)
			FAIL("%" PRIu64 " segments are marked as runs of small blocks, "
			     "but runs are off", held);
		return 0;
	}
	lock_lists();
	for (uint32_t r = 1; r < sm.runs.bump; r++) {
		struct run *R = run_at(r);
		if (!R->live)
			continue;
		runs++;
		const struct mems_seg *s = R->seg < fl->segs.bump ? fl_seg(fl, R->seg) : NULL;
		if (!s || s->type != SEG_PROCESS || !s->held || s->start != R->start ||
		    s->end != R->start + R->bytes) {
			unlock_lists();
			FAIL("run %u at %" PRIu64 " is not its held PROCESS segment", r, R->start);
		}
		for (uint64_t p = R->start / sm.ps; p < (R->start + R->bytes) / sm.ps; p++)
			if (atomic_load(&sm.run_of[p]) != r) {
				unlock_lists();
				FAIL("run_of[%" PRIu64 "] is %u, should be run %u", p,
				     atomic_load(&sm.run_of[p]), r);
			}
		for (unsigned w = 0; w < RUN_WORDS; w++)
			if (atomic_load(&R->free[w]) & ~full_word(R, w)) {
				unlock_lists();
				FAIL("run %u has free bits past its %u blocks", r, R->nblocks);
			}
		uint8_t st = atomic_load(&R->state);
		if (st < RUN_OWNED || st > RUN_RETIRING) {
			unlock_lists();
			FAIL("run %u has state %u", r, st);
		}
	}
	for (unsigned i = 0; i < CLASSES; i++)
		for (uint32_t r = sm.partial[i], n = 0; r; r = run_at(r)->next)
			if (++n > RUNS_MAX || !run_at(r)->live ||
			    atomic_load(&run_at(r)->state) != RUN_PARTIAL || run_at(r)->cls != i) {
				unlock_lists();
				FAIL("partial list of class %u holds run %u, which is not a "
				     "partial run of that class", i, r);
			}
	unlock_lists();
	if (runs != held)
		FAIL("%" PRIu64 " runs of small blocks, but %" PRIu64 " held segments", runs, held);
	return 0;
}
