/*
 * stats.c - mems_print_stats(), the stats struct and its JSON rendering.
 *
 * The block printed is the assignment's, byte for byte, followed by the
 * pager's lines before the closing rule.  It is rendered into a scratch
 * mapping under the allocator lock and written to stdout after the lock
 * is dropped, so no stdio runs under the lock and the output is ordered
 * with the program's own printf()s.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <unistd.h>

#include "diag.h"
#include "internal.h"
#include "options.h"
#include "small.h"
#include "span.h"

struct sbuf {
	char *p;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n;
	if (b->len >= b->cap)
		b->len = b->cap - 1;
}

/* Caller holds mems_lock. */
static void fill(struct mems_stats *st)
{
	memset(st, 0, sizeof *st);
	st->page_size = MEMS_PAGE_SIZE;
	st->os_page_size = os_page_size();
	st->invalid_frees = mems_g.invalid_frees;
	st->invalid_gets = mems_g.invalid_gets;
	st->failed_allocs = mems_g.failed_allocs;
	st->errors = st->invalid_frees + st->invalid_gets + st->failed_allocs;
	if (!mems_g.ready) {
		snprintf(st->mode_name, sizeof st->mode_name, "none");
		snprintf(st->mode_reason, sizeof st->mode_reason, "not initialised");
		return;
	}
	const struct mems_fl *fl = &mems_g.fl;
	struct mems_pager *pg = &mems_g.pg;
	st->pages_used = fl->committed / MEMS_PAGE_SIZE;
	st->main_nodes = fl->nnodes;
	st->process_segments = fl->nprocess;
	st->hole_segments = fl->nholes;
	st->segments = fl->nprocess + fl->nholes;
	st->bytes_in_use = fl->bytes_in_use;
	st->bytes_in_holes = fl->bytes_in_holes;
	st->pages_mapped = fl->committed / st->os_page_size;
	pager_counters(pg, &st->pages_touched, &st->faults, &st->pages_populated,
		       &st->pages_released, &st->pages_prepopulated, &st->pages_ahead);
	st->span_size = mems_g.span_size;
	st->mode = pg->mode;
	snprintf(st->mode_name, sizeof st->mode_name, "%s", pager_mode_name(pg->mode));
	snprintf(st->mode_reason, sizeof st->mode_reason, "%s", pg->reason);
	struct pager_evict_counters c;
	pager_evict_counters(pg, &c);
	st->resident_cap = c.cap;
	st->evictions = c.evictions;
	st->page_ins = c.page_ins;
	st->clean_drops = c.clean_drops;
	st->evictions_cancelled = c.cancelled;
	st->store_bytes = c.store_pages * st->os_page_size;
	st->store_written = c.bytes_written;
	st->store_read = c.bytes_read;
	st->io_wait_ns = c.io_wait_ns;
	st->store_errors = c.store_errors;
	st->over_cap = c.over_cap;
	snprintf(st->store_path, sizeof st->store_path, "%s", c.store_where);
	st->store_direct = c.direct;
	st->small_runs = sm_counts_locked(&st->small_blocks, &st->small_bytes, &st->small_run_bytes);
}

int mems_stats_get(struct mems_stats *st)
{
	if (!st) {
		errno = EINVAL;
		return -1;
	}
	mems_lock_take();
	fill(st);
	mems_lock_drop();
	return 0;
}

void mems_stats_holes(struct mems_stats *st, struct mems_hole_class cls[64])
{
	memset(cls, 0, 64 * sizeof *cls);
	mems_lock_take();
	fill(st);
	const struct mems_fl *fl = &mems_g.fl;
	for (mems_id n = 1; mems_g.ready && n <= fl->nnodes; n++)
		for (mems_id s = fl_node(fl, n)->head; s; s = fl_seg(fl, s)->next) {
			const struct mems_seg *sg = fl_seg(fl, s);
			if (sg->type != SEG_HOLE)
				continue;
			uint64_t len = sg->end - sg->start;
			struct mems_hole_class *c = &cls[63 - __builtin_clzll(len)];
			if (!c->count || len < c->min)
				c->min = len;
			if (len > c->max)
				c->max = len;
			c->count++;
			c->bytes += len;
		}
	mems_lock_drop();
}

static void render(struct sbuf *b, const struct mems_stats *st)
{
	const struct mems_fl *fl = &mems_g.fl;
	const uint64_t v = MEMS_VIRTUAL_BASE;

	sb_printf(b, "----- MeMS SYSTEM STATS -----\n");
	for (mems_id n = 1; mems_g.ready && n <= fl->nnodes; n++) {
		const struct mems_node *nd = fl_node(fl, n);
		sb_printf(b, "MAIN[%" PRIu64 ":%" PRIu64 "]-> ", v + nd->start, v + nd->end - 1);
		for (mems_id s = nd->head; s; s = fl_seg(fl, s)->next) {
			const struct mems_seg *sg = fl_seg(fl, s);
			sb_printf(b, "%c[%" PRIu64 ":%" PRIu64 "] <-> ",
				  sg->type == SEG_PROCESS ? 'P' : 'H',
				  v + sg->start, v + sg->end - 1);
		}
		sb_printf(b, "NULL\n");
	}
	sb_printf(b, "Pages used:\t%" PRIu64 "\n", st->pages_used);
	sb_printf(b, "Space unused:\t%" PRIu64 "\n", st->bytes_in_holes);
	sb_printf(b, "Main Chain Length:\t%" PRIu64 "\n", st->main_nodes);
	sb_printf(b, "Sub-chain Length array: [");
	for (mems_id n = 1; mems_g.ready && n <= fl->nnodes; n++)
		sb_printf(b, "%" PRIu64 ", ", fl_node(fl, n)->nsegs);
	sb_printf(b, "]\n");
	sb_printf(b, "Pages touched:\t%" PRIu64 "\n", st->pages_touched);
	sb_printf(b, "Pages mapped:\t%" PRIu64 "\n", st->pages_mapped);
	sb_printf(b, "Faults:\t%" PRIu64 "\n", st->faults);
	sb_printf(b, "Errors:\t%" PRIu64 "\n", st->errors);
	sb_printf(b, "Pager:\t%s (%s)\n", st->mode_name, st->mode_reason);
	if (mems_g.ready && mems_g.span_size != mems_g.span_asked)
		sb_printf(b, "Span:\t%" PRIu64 " bytes (the default, %" PRIu64 ", did not fit "
			  "the address space: ulimit -v or valgrind)\n", mems_g.span_size,
			  mems_g.span_asked);
	if (st->small_runs)
		sb_printf(b, "Small blocks:\t%" PRIu64 " blocks of %" PRIu64 " bytes in %" PRIu64
			  " runs of %" PRIu64 " bytes\n", st->small_blocks, st->small_bytes,
			  st->small_runs, st->small_run_bytes);
	if (st->pages_prepopulated)
		sb_printf(b, "Populated at malloc:\t%" PRIu64 " pages (of %" PRIu64 " populated)\n",
			  st->pages_prepopulated, st->pages_populated);
	if (st->pages_ahead)
		sb_printf(b, "Populated ahead:\t%" PRIu64 " pages (of %" PRIu64 " populated)\n",
			  st->pages_ahead, st->pages_populated);
	if (st->resident_cap) {
		sb_printf(b, "Resident cap:\t%" PRIu64 " pages; evictions %" PRIu64
			  ", page-ins %" PRIu64 ", clean drops %" PRIu64 ", cancelled %" PRIu64
			  ", over cap %" PRIu64 "\n", st->resident_cap, st->evictions,
			  st->page_ins, st->clean_drops, st->evictions_cancelled, st->over_cap);
		sb_printf(b, "Store:\t%" PRIu64 " bytes in use, %" PRIu64 " written, %" PRIu64
			  " read, I/O wait %.3f ms, errors %" PRIu64 " (%s%s)\n",
			  st->store_bytes, st->store_written, st->store_read,
			  (double)st->io_wait_ns / 1e6, st->store_errors, st->store_path,
			  st->store_direct ? ", direct I/O" : "");
	}
	sb_printf(b, "-----------------------------\n");
}

/* The stats block, rendered into a scratch mapping (os_unmap it, b->cap
 * bytes), or b->p = NULL when out of memory. */
static void render_block(struct sbuf *b)
{
	struct mems_stats st;

	mems_lock_take();
	fill(&st);
	/* upper bound: a segment prints in at most 50 bytes, a node in 90 */
	b->len = 0;
	b->cap = 1600 + 64 * st.segments + 96 * st.main_nodes;
	b->cap = (b->cap + os_page_size() - 1) / os_page_size() * os_page_size();
	b->p = os_map_meta(b->cap);
	if (b->p)
		render(b, &st);
	mems_lock_drop();
}

void mems_print_stats(void)
{
	struct sbuf b;

	render_block(&b);
	if (!b.p) {
		mems_diag("mems_print_stats: out of memory");
		return;
	}
	fwrite(b.p, 1, b.len, stdout);
	os_unmap(b.p, b.cap);
}

/* The block, written to fd with write(2) (the preload library's
 * malloc_stats, and the report at exit). */
void mems_stats_to_fd(int fd)
{
	struct sbuf b;

	render_block(&b);
	if (!b.p)
		return;
	for (size_t done = 0; done < b.len;) {
		ssize_t w = write(fd, b.p + done, b.len - done);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	os_unmap(b.p, b.cap);
}

/* MEMS_STATS_ON_EXIT=1: the block on stderr when the process exits, with
 * write(2) to the copy of stderr taken at initialisation: stdio, and fd 2
 * itself, may be gone by now, and nothing here allocates.  A program that
 * closed the copy (closing every descriptor above 2 is common in daemons)
 * gets the block on fd 2 if that is still the same file.  Called from
 * mems.c's destructor (see there). */
void mems_stats_at_exit(void)
{
	int fd = mems_g.stats_fd;

	if (!mems_g.ready || fd < 0)
		return;
	if (!os_fd_mine(fd)) {
		if (!os_fd_mine_as(STDERR_FILENO, fd))
			return;
		fd = STDERR_FILENO;
	}
	mems_stats_to_fd(fd);
}

static void json_str(struct sbuf *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sb_printf(b, "\\%c", c);
		else if (c < 0x20)
			sb_printf(b, "\\u%04x", c);
		else
			sb_printf(b, "%c", c);
	}
	sb_printf(b, "\"");
}

int mems_stats_json(char *buf, size_t len)
{
	struct mems_stats st;
	char tmp[4096];
	struct sbuf b = { tmp, 0, sizeof tmp };

	mems_stats_get(&st);
	sb_printf(&b, "{");
#define F(name) sb_printf(&b, "\"" #name "\":%" PRIu64 ",", st.name)
	F(page_size); F(pages_used); F(main_nodes); F(segments);
	F(process_segments); F(hole_segments); F(bytes_in_use); F(bytes_in_holes);
	F(os_page_size); F(pages_mapped); F(pages_touched); F(faults);
	F(pages_populated); F(pages_released); F(span_size);
	F(invalid_frees); F(invalid_gets); F(failed_allocs); F(errors);
	F(resident_cap); F(evictions); F(page_ins); F(clean_drops); F(evictions_cancelled);
	F(store_bytes); F(store_written); F(store_read); F(io_wait_ns); F(store_errors);
	F(over_cap); F(small_runs); F(small_blocks); F(small_bytes); F(small_run_bytes);
	F(pages_prepopulated); F(pages_ahead);
#undef F
	sb_printf(&b, "\"store_path\":");
	json_str(&b, st.store_path);
	sb_printf(&b, ",\"store_direct\":%s,", st.store_direct ? "true" : "false");
	sb_printf(&b, "\"mode\":");
	json_str(&b, st.mode_name);
	sb_printf(&b, ",\"mode_reason\":");
	json_str(&b, st.mode_reason);
	sb_printf(&b, "}");
	return snprintf(buf, len, "%s", tmp);
}
