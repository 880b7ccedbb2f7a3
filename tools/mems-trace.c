/*
 * mems-trace - see where and when a program's heap faults.
 *
 *   mems-trace [-o FILE] [--json OUT] [--svg OUT] [--csv OUT] [--top N] -- PROGRAM [ARGS...]
 *   mems-trace report [--json OUT] [--svg OUT] [--csv OUT] [--top N] FILE
 *
 * The first form runs PROGRAM on libmems-preload.so with MEMS_TRACE set,
 * passes its exit status through and prints a summary of the trace; the
 * second reads a trace written earlier (by mems-trace or by a program run
 * with MEMS_TRACE=FILE).  The file format is in docs/TRACE.md.
 *
 * Every process writes its own file: the program's is FILE, processes it
 * starts write FILE.PID (a second MeMS in one process FILE.PID.2); the
 * summary lists them.  A program that execs
 * appends a new segment to its file, and the report covers every segment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mems.h"
#include "trace.h"

static const char *prog = "mems-trace";

#ifndef MEMS_VERSION
#define MEMS_VERSION "unknown"    /* the Makefile passes its VERSION */
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-o FILE] [--json OUT] [--svg OUT] [--csv OUT] [--top N] -- PROGRAM [ARGS...]\n"
		"       %s report [--json OUT] [--svg OUT] [--csv OUT] [--top N] FILE\n"
		"\n"
		"Runs PROGRAM with its heap on MeMS (libmems-preload.so), records every fault\n"
		"the pager resolves and every release of pages, passes PROGRAM's exit status\n"
		"through and prints a summary.  'report' reads a trace written earlier.\n"
		"\n"
		"  -o, --output FILE  the trace file (default mems-trace.out); processes that\n"
		"                     PROGRAM starts write FILE.PID; those of an earlier\n"
		"                     run with this FILE are removed first\n"
		"      --json OUT     Chrome Trace Event Format, for Perfetto (ui.perfetto.dev)\n"
		"                     or chrome://tracing: a slice per fault on its thread,\n"
		"                     counters of touched and mapped pages\n"
		"      --svg OUT      heatmap of faults: address against time\n"
		"      --csv OUT      the raw records\n"
		"      --top N        how many threads and address ranges to list (default 5)\n"
		"      --preload LIB  the preload library (default: MEMS_PRELOAD, else\n"
		"                     ../lib/libmems-preload.so beside this program)\n"
		"      --no-preload   PROGRAM is linked with libmems: only set MEMS_TRACE\n"
		"  -h, --help         this text\n"
		"      --version      the version of MeMS this comes with\n"
		"\n"
		"Exit status: PROGRAM's; 2 for a bad option or an output that cannot be\n"
		"written (said before PROGRAM runs, or the trace is read); 127 or 126 when\n"
		"PROGRAM cannot be run; 1 for any other error, and for a trace that\n"
		"'report' cannot read.\n", prog, prog);
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
#include <stdarg.h>
static void die(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* ------------------------------------------------------------ reading */

struct seg {
	struct mems_trace_header h;
	struct mems_trace_rec *r;
	size_t n;
};

struct trace {
	struct seg *seg;
	size_t nseg;
	size_t total;
};

static void read_trace(const char *path, struct trace *t)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(1, "%s: %s", path, strerror(errno));
	struct stat st;
	fstat(fileno(f), &st);
	size_t len = (size_t)st.st_size;
	unsigned char *buf = malloc(len ? len : 1);
	if (!buf || fread(buf, 1, len, f) != len)
		die(1, "%s: cannot read", path);
	fclose(f);
	memset(t, 0, sizeof *t);
	size_t off = 0;
	if (len == 0)
		die(1, "%s: empty file, not a MeMS trace", path);
	while (off < len) {
		if (len - off < sizeof(struct mems_trace_header))
			die(1, "%s: truncated: %zu bytes at offset %zu are not a whole header", path,
			    len - off, off);
		struct mems_trace_header h;
		memcpy(&h, buf + off, sizeof h);
		if (memcmp(h.magic, MEMS_TRACE_MAGIC, 8))
			die(1, "%s: offset %zu: not a MeMS trace (bad magic)", path, off);
		if (h.version < 1 || h.version > MEMS_TRACE_VERSION)
			die(1, "%s: trace version %u, this mems-trace reads versions 1 to %d", path,
			    h.version, MEMS_TRACE_VERSION);
		if (h.record_size != sizeof(struct mems_trace_rec))
			die(1, "%s: corrupt header: record size %u", path, h.record_size);
		if (!h.os_page_size || (h.os_page_size & (h.os_page_size - 1)))
			die(1, "%s: corrupt header: page size %u", path, h.os_page_size);
		off += sizeof h;
		size_t start = off;
		while (off < len && !(len - off >= 8 && !memcmp(buf + off, MEMS_TRACE_MAGIC, 8))) {
			if (len - off < sizeof(struct mems_trace_rec))
				die(1, "%s: truncated: %zu bytes after the last whole record", path,
				    len - off);
			off += sizeof(struct mems_trace_rec);
		}
		size_t n = (off - start) / sizeof(struct mems_trace_rec);
		struct mems_trace_rec *r = malloc(n * sizeof *r + 1);
		memcpy(r, buf + start, n * sizeof *r);
		for (size_t i = 0; i < n; i++) {
			if (r[i].kind < TRACE_READ || r[i].kind > TRACE_KIND_MAX)
				die(1, "%s: corrupt record %zu: kind %u", path, t->total + i, r[i].kind);
			if (r[i].vaddr < MEMS_VIRTUAL_BASE || (i && r[i].t_ns + 1000000000000ull < r[i - 1].t_ns))
				die(1, "%s: corrupt record %zu", path, t->total + i);
		}
		t->seg = realloc(t->seg, (t->nseg + 1) * sizeof *t->seg);
		t->seg[t->nseg++] = (struct seg){ h, r, n };
		t->total += n;
	}
	free(buf);
}

static const char *kind_name(int k)
{
	static const char *const n[] = { "?", "read", "write", "write-protect", "release",
					 "evict", "page-in", "clean-drop", "populate", "ahead" };
	return k >= 0 && k <= TRACE_KIND_MAX ? n[k] : "?";
}

/* Faults carry a thread and a latency; the rest are the pager's own events
 * (releases on free, evictions and clean drops under a resident cap). */
static int is_fault(int k)
{
	return k == TRACE_READ || k == TRACE_WRITE || k == TRACE_WP || k == TRACE_PAGEIN;
}

/* ------------------------------------------------------------ summary */

struct count { uint64_t key, n, pages; };

static int by_n(const void *a, const void *b)
{
	const struct count *x = a, *y = b;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : (x->key > y->key) - (x->key < y->key);
}

/* Count into a small open-addressing table. */
static void tally(struct count **tab, size_t *cap, size_t *used, uint64_t key, uint64_t pages)
{
	if (*used * 2 >= *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct count *nt = calloc(ncap, sizeof *nt);
		for (size_t i = 0; i < *cap; i++)
			if ((*tab)[i].n) {
				size_t j = (*tab)[i].key * 0x9e3779b97f4a7c15ull % ncap;
				while (nt[j].n)
					j = (j + 1) % ncap;
				nt[j] = (*tab)[i];
			}
		free(*tab);
		*tab = nt;
		*cap = ncap;
	}
	size_t j = key * 0x9e3779b97f4a7c15ull % *cap;
	while ((*tab)[j].n && (*tab)[j].key != key)
		j = (j + 1) % *cap;
	if (!(*tab)[j].n) {
		(*tab)[j].key = key;
		(*used)++;
	}
	(*tab)[j].n++;
	(*tab)[j].pages += pages;
}

static void top(const char *title, struct count *tab, size_t cap, int n, int ranges, uint64_t span)
{
	size_t m = 0;
	for (size_t i = 0; i < cap; i++)
		if (tab[i].n)
			tab[m++] = tab[i];
	if (m)
		qsort(tab, m, sizeof *tab, by_n);
	printf("%s\n", title);
	if (!m)
		printf("  (none)\n");
	for (size_t i = 0; i < m && (int)i < n; i++) {
		if (ranges)
			printf("  [%" PRIu64 ", %" PRIu64 ")  %8" PRIu64 " faults %10" PRIu64 " pages\n",
			       MEMS_VIRTUAL_BASE + tab[i].key * span,
			       MEMS_VIRTUAL_BASE + (tab[i].key + 1) * span, tab[i].n, tab[i].pages);
		else
			printf("  thread %-8" PRIu64 " %8" PRIu64 " faults %10" PRIu64 " pages\n", tab[i].key,
			       tab[i].n, tab[i].pages);
	}
}

static void summary(const char *path, const struct trace *t, int ntop)
{
	uint64_t faults[TRACE_KIND_MAX + 1] = { 0 }, pages[TRACE_KIND_MAX + 1] = { 0 }, hist[40] = { 0 };
	uint64_t peak_t = 0, peak_m = 0, dur = 0, maxv = MEMS_VIRTUAL_BASE;
	struct count *thr = NULL, *rng = NULL;
	size_t tcap = 0, tused = 0, rcap = 0, rused = 0;

	for (size_t s = 0; s < t->nseg; s++)
		for (size_t i = 0; i < t->seg[s].n; i++) {
			const struct mems_trace_rec *r = &t->seg[s].r[i];
			if (r->vaddr > maxv)
				maxv = r->vaddr;
		}
	/* address ranges: 64 buckets over what the trace covers, in whole MiB */
	uint64_t span = ((maxv - MEMS_VIRTUAL_BASE) / 64 + (1 << 20)) >> 20 << 20;

	for (size_t s = 0; s < t->nseg; s++)
		for (size_t i = 0; i < t->seg[s].n; i++) {
			const struct mems_trace_rec *r = &t->seg[s].r[i];
			faults[r->kind]++;
			pages[r->kind] += r->pages;
			peak_t = r->touched > peak_t ? r->touched : peak_t;
			peak_m = r->mapped > peak_m ? r->mapped : peak_m;
			dur = r->t_ns > dur ? r->t_ns : dur;
			if (!is_fault(r->kind))
				continue;
			int b = 0;
			for (uint64_t us = r->latency_ns / 1000; us; us >>= 1)
				b++;
			hist[b < 39 ? b : 39]++;
			tally(&thr, &tcap, &tused, r->tid, r->pages);
			tally(&rng, &rcap, &rused, (r->vaddr - MEMS_VIRTUAL_BASE) / span, r->pages);
		}
	uint64_t nf = faults[1] + faults[2] + faults[3] + faults[6];
	printf("mems-trace: %s: %zu segment%s, %zu events over %.3f ms (pid %u)\n", path, t->nseg,
	       t->nseg == 1 ? "" : "s", t->total, (double)dur / 1e6, t->seg[0].h.pid);
	printf("faults            %10" PRIu64 "  (read %" PRIu64 ", write %" PRIu64 ", write-protect %" PRIu64
	       ", page-in %" PRIu64 ")\n", nf, faults[1], faults[2], faults[3], faults[6]);
	printf("pages populated   %10" PRIu64 "  (%.1f a fault)\n", pages[1] + pages[2] + pages[3],
	       nf > faults[6] ? (double)(pages[1] + pages[2] + pages[3]) / (double)(nf - faults[6]) : 0.0);
	if (faults[TRACE_ALLOC])
		printf("populated at malloc %8" PRIu64 "  pages, in %" PRIu64 " calls by allocating threads (no fault)\n",
		       pages[TRACE_ALLOC], faults[TRACE_ALLOC]);
	if (faults[TRACE_AHEAD])
		printf("populated ahead   %10" PRIu64 "  pages, in %" PRIu64 " windows by the fault-ahead helper (no fault)\n",
		       pages[TRACE_AHEAD], faults[TRACE_AHEAD]);
	printf("releases          %10" PRIu64 "  (%" PRIu64 " pages given back)\n", faults[4], pages[4]);
	if (faults[5] + faults[6] + faults[7]) {
		printf("pages read back   %10" PRIu64 "  (%" PRIu64 " page-in faults)\n", pages[6], faults[6]);
		printf("pages evicted     %10" PRIu64 "  (written, then dropped in %" PRIu64 " runs)\n", pages[5], faults[5]);
		printf("clean drops       %10" PRIu64 "  (pages dropped without a write)\n", pages[7]);
	}
	printf("peak touched      %10" PRIu64 " pages\n", peak_t);
	printf("peak mapped       %10" PRIu64 " pages\n", peak_m);
	printf("fault latency (read to resolved), microseconds\n");
	uint64_t hmax = 1;
	int last = 0;
	for (int b = 0; b < 40; b++)
		if (hist[b]) {
			hmax = hist[b] > hmax ? hist[b] : hmax;
			last = b;
		}
	for (int b = 0; b <= last && nf; b++) {
		uint64_t lo = b ? 1ull << (b - 1) : 0, hi = 1ull << b;
		int bar = (int)(hist[b] * 40 / hmax);
		printf("  [%6" PRIu64 ", %6" PRIu64 ")  %8" PRIu64 "  %.*s\n", lo, hi, hist[b], bar,
		       "########################################");
	}
	char title[64];
	snprintf(title, sizeof title, "busiest threads");
	top(title, thr, tcap, ntop, 0, 0);
	snprintf(title, sizeof title, "busiest address ranges (MeMS virtual, %" PRIu64 " KiB each)", span >> 10);
	top(title, rng, rcap, ntop, 1, span);
	free(thr);
	free(rng);
}

/* ------------------------------------------------------------ outputs */

static FILE *out_open(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die(1, "%s: %s", path, strerror(errno));
	return f;
}

static void out_close(FILE *f, const char *path)
{
	if (ferror(f) | fclose(f))
		die(1, "%s: write error", path);
}

static void write_csv(const char *path, const struct trace *t)
{
	FILE *f = out_open(path);
	fprintf(f, "segment,pid,t_ns,kind,vaddr,real,pages,tid,latency_ns,touched,mapped\n");
	for (size_t s = 0; s < t->nseg; s++)
		for (size_t i = 0; i < t->seg[s].n; i++) {
			const struct mems_trace_rec *r = &t->seg[s].r[i];
			fprintf(f, "%zu,%u,%" PRIu64 ",%s,%" PRIu64 ",0x%" PRIx64 ",%u,%u,%u,%" PRIu64 ",%" PRIu64 "\n",
				s, t->seg[s].h.pid, r->t_ns, kind_name(r->kind), r->vaddr, r->real, r->pages,
				r->tid, r->latency_ns, r->touched, r->mapped);
		}
	out_close(f, path);
}

static void write_json(const char *path, const struct trace *t)
{
	FILE *f = out_open(path);
	fprintf(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
	int first = 1;
	for (size_t s = 0; s < t->nseg; s++) {
		const struct seg *g = &t->seg[s];
		/* segments of one file are one after the other: place each at
		 * its own start, from the header's wall clock */
		double base = (double)(g->h.start_realtime_ns - t->seg[0].h.start_realtime_ns) / 1e3;
		fprintf(f, "%s{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%u,\"args\":{\"name\":\"MeMS heap (pid %u, segment %zu)\"}}",
			first ? "" : ",\n", g->h.pid, g->h.pid, s);
		first = 0;
		for (size_t i = 0; i < g->n; i++) {
			const struct mems_trace_rec *r = &g->r[i];
			double ts = base + (double)r->t_ns / 1e3;
			if (r->kind == TRACE_ALLOC || r->kind == TRACE_AHEAD)
				fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"populate\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%u,\"tid\":%u,"
					"\"args\":{\"vaddr\":%" PRIu64 ",\"real\":\"0x%" PRIx64 "\",\"pages\":%u}}",
					kind_name(r->kind), ts, (double)r->latency_ns / 1e3, g->h.pid, r->tid,
					r->vaddr, r->real, r->pages);
			else if (!is_fault(r->kind))
				fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"i\",\"s\":\"p\",\"ts\":%.3f,\"pid\":%u,\"tid\":0,"
					"\"args\":{\"vaddr\":%" PRIu64 ",\"pages\":%u}}", kind_name(r->kind),
					r->kind == TRACE_RELEASE ? "release" : "evict", ts, g->h.pid, r->vaddr, r->pages);
			else
				fprintf(f, ",\n{\"name\":\"%s fault\",\"cat\":\"fault\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%u,\"tid\":%u,"
					"\"args\":{\"vaddr\":%" PRIu64 ",\"real\":\"0x%" PRIx64 "\",\"pages\":%u}}",
					kind_name(r->kind), ts, (double)r->latency_ns / 1e3, g->h.pid, r->tid,
					r->vaddr, r->real, r->pages);
			fprintf(f, ",\n{\"name\":\"pages\",\"ph\":\"C\",\"ts\":%.3f,\"pid\":%u,"
				"\"args\":{\"touched\":%" PRIu64 ",\"mapped\":%" PRIu64 "}}", ts, g->h.pid,
				r->touched, r->mapped);
		}
	}
	fprintf(f, "\n]}\n");
	out_close(f, path);
}

/* Heatmap: time on x, MeMS virtual address on y, colour = faults in a cell. */
static void write_svg(const char *path, const struct trace *t)
{
	enum { W = 800, H = 480, L = 90, T = 40, NX = 100, NY = 60 };
	static uint64_t cell[NX][NY];
	uint64_t tmax = 1, vmin = UINT64_MAX, vmax = 0, cmax = 0, nf = 0;
	memset(cell, 0, sizeof cell);
	for (size_t s = 0; s < t->nseg; s++)
		for (size_t i = 0; i < t->seg[s].n; i++) {
			const struct mems_trace_rec *r = &t->seg[s].r[i];
			if (!is_fault(r->kind))
				continue;
			tmax = r->t_ns > tmax ? r->t_ns : tmax;
			vmin = r->vaddr < vmin ? r->vaddr : vmin;
			vmax = r->vaddr > vmax ? r->vaddr : vmax;
		}
	if (vmin > vmax)
		vmin = vmax = MEMS_VIRTUAL_BASE;
	uint64_t vspan = vmax - vmin + 1;
	for (size_t s = 0; s < t->nseg; s++)
		for (size_t i = 0; i < t->seg[s].n; i++) {
			const struct mems_trace_rec *r = &t->seg[s].r[i];
			if (!is_fault(r->kind))
				continue;
			int x = (int)((double)r->t_ns / (double)tmax * (NX - 1));
			int y = (int)((double)(r->vaddr - vmin) / (double)vspan * NY);
			if (y >= NY)
				y = NY - 1;
			cell[x][y]++;
			cmax = cell[x][y] > cmax ? cell[x][y] : cmax;
			nf++;
		}
	FILE *f = out_open(path);
	double cw = (double)W / NX, ch = (double)H / NY;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
		"<text x=\"%d\" y=\"22\" font-size=\"15\">MeMS faults: address against time (%" PRIu64 " fault%s, pid %u)</text>\n"
		"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f4f4f4\" stroke=\"#333\"/>\n",
		L + W + 130, T + H + 70, L + W + 130, T + H + 70, L, nf, nf == 1 ? "" : "s",
		t->seg[0].h.pid, L, T, W, H);
	for (int x = 0; x < NX; x++)
		for (int y = 0; y < NY; y++) {
			if (!cell[x][y])
				continue;
			/* log scale: 1 fault light yellow, cmax dark red */
			double v = cmax > 1 ? log1p((double)cell[x][y]) / log1p((double)cmax) : 1.0;
			int g = (int)(220 - 200 * v), b = (int)(120 - 110 * v);
			fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"rgb(255,%d,%d)\"><title>%" PRIu64 " fault%s</title></rect>\n",
				L + x * cw, T + H - (y + 1) * ch, cw, ch, g < 0 ? 0 : g, b < 0 ? 0 : b, cell[x][y],
				cell[x][y] == 1 ? "" : "s");
		}
	/* axes */
	for (int i = 0; i <= 5; i++) {
		double x = L + (double)W * i / 5, y = T + H - (double)H * i / 5;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n"
			"<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.1f</text>\n",
			x, T + H, x, T + H + 5, x, T + H + 20, (double)tmax * i / 5 / 1e6);
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
			L - 5, y, L, y, L - 8, y + 4, (double)(vmin + vspan * (uint64_t)i / 5) / 1048576.0);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since the trace began (ms)</text>\n"
		"<text x=\"20\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 20 %d)\">MeMS virtual address (MiB)</text>\n",
		L + W / 2, T + H + 45, T + H / 2, T + H / 2);
	/* legend */
	int lx = L + W + 30;
	fprintf(f, "<text x=\"%d\" y=\"%d\">faults per cell</text>\n", lx, T + 10);
	uint64_t prev = 0;
	for (int i = 0, row = 0; i < 5; i++) {
		double v = i / 4.0;
		uint64_t n = cmax > 1 ? (uint64_t)(expm1(v * log1p((double)cmax)) + 0.5) : 1;
		if (n < 1)
			n = 1;
		if (n <= prev)
			continue;       /* few distinct counts: no repeated rows */
		prev = n;
		v = cmax > 1 ? log1p((double)n) / log1p((double)cmax) : 1.0;
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"18\" height=\"18\" fill=\"rgb(255,%d,%d)\" stroke=\"#333\"/>"
			"<text x=\"%d\" y=\"%d\">%" PRIu64 "</text>\n", lx, T + 25 + row * 26,
			(int)(220 - 200 * v), (int)(120 - 110 * v), lx + 26, T + 39 + row * 26, n);
		row++;
	}
	fprintf(f, "</svg>\n");
	out_close(f, path);
}

/* ------------------------------------------------------------ running */

static const char *find_preload(const char *given)
{
	static char path[PATH_MAX + 64];
	if (given)
		return given;
	if (getenv("MEMS_PRELOAD"))
		return getenv("MEMS_PRELOAD");
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		static const char *const rel[] = { "/../lib/libmems-preload.so", "/../libmems-preload.so" };
		for (int i = 0; i < 2; i++) {
			snprintf(path, sizeof path, "%s%s", exe, rel[i]);
			if (access(path, R_OK) == 0)
				return path;
		}
	}
	die(1, "cannot find libmems-preload.so: give --preload LIB or set MEMS_PRELOAD");
}

/* Other processes' traces: FILE.PID (and FILE.PID.N), in the directory of
 * FILE.  other_traces() gives their paths in order of PID, in one block
 * the caller frees. */
static int by_pid(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	const char *dx = strrchr(x, '/'), *dy = strrchr(y, '/');
	return strverscmp(dx, dy);
}

static char **other_traces(const char *file, size_t *count)
{
	const char *slash = strrchr(file, '/');
	char dir[PATH_MAX];
	/* FILE's directory: ".", "/" or what comes before the last slash */
	snprintf(dir, sizeof dir, "%.*s", !slash ? 1 : slash == file ? 1 : (int)(slash - file),
		 slash ? file : ".");
	const char *base = slash ? slash + 1 : file;
	size_t bl = strlen(base), n = 0, cap = 0;
	char **v = NULL;
	*count = 0;
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *tail = e->d_name + bl + 1;
		if (strncmp(e->d_name, base, bl) || e->d_name[bl] != '.' || !*tail ||
		    strspn(tail, "0123456789.") != strlen(tail))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			char **w = realloc(v, cap * sizeof *v);
			if (!w)
				break;
			v = w;
		}
		if (asprintf(&v[n], "%s%s%s", dir, slash == file ? "" : "/", e->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof *v, by_pid);
	*count = n;
	return v;
}

static void free_traces(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A run starts afresh: an earlier run's FILE.PID would be listed as this
 * run's, and a process that got the same PID would append to it. */
static void remove_others(const char *file)
{
	size_t n;
	char **v = other_traces(file, &n);
	for (size_t i = 0; i < n; i++)
		if (unlink(v[i]) != 0 && errno != ENOENT)
			die(1, "%s: %s", v[i], strerror(errno));
	free_traces(v, n);
}

static void list_others(const char *file)
{
	size_t n;
	char **v = other_traces(file, &n);
	if (n) {
		printf("%zu other process%s traced:", n, n == 1 ? "" : "es");
		for (size_t i = 0; i < n; i++)
			printf(" %s", v[i]);
		printf("\n");
	}
	free_traces(v, n);
}

static int run(const char *file, const char *preload, char **argv)
{
	char pattern[PATH_MAX + 8];
	snprintf(pattern, sizeof pattern, "%s.%%p", file);
	unlink(file);           /* traces append: start afresh */
	remove_others(file);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die(1, "fork: %s", strerror(errno));
	if (pid == 0) {
		const char *old = getenv("LD_PRELOAD");
		if (preload) {
			char *pre = malloc(strlen(preload) + (old ? strlen(old) : 0) + 2);
			sprintf(pre, "%s%s%s", preload, old && *old ? ":" : "", old && *old ? old : "");
			setenv("LD_PRELOAD", pre, 1);
		}
		setenv("MEMS_TRACE", pattern, 1);
		execvp(argv[0], argv);
		int e = errno;
		unsetenv("LD_PRELOAD");
		fprintf(stderr, "%s: %s: %s\n", prog, argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(1, "waitpid: %s", strerror(errno));
	char mine[PATH_MAX + 32];
	snprintf(mine, sizeof mine, "%s.%d", file, (int)pid);
	if (rename(mine, file) != 0 && errno != ENOENT)
		die(1, "%s: %s", mine, strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* An output that cannot be written stops mems-trace before it runs the
 * program or reads the trace, rather than after (the trace file: the
 * library would only say so in the child, and the run would leave
 * nothing).  A file made for the probe goes again; one that was there is
 * left as it is. */
static void probe_output(const char *path)
{
	if (!path)
		return;
	int existed = access(path, F_OK) == 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		die(2, "%s: %s", path, strerror(errno));
	close(fd);
	if (!existed)
		unlink(path);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, 0, 'o' }, { "json", required_argument, 0, 'j' },
		{ "svg", required_argument, 0, 's' }, { "csv", required_argument, 0, 'c' },
		{ "top", required_argument, 0, 't' }, { "preload", required_argument, 0, 'p' },
		{ "no-preload", no_argument, 0, 'n' }, { "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 },
	};
	const char *file = "mems-trace.out", *json = NULL, *svg = NULL, *csv = NULL, *preload = NULL;
	int ntop = 5, report = 0, no_preload = 0, c;

	if (argc > 1 && !strcmp(argv[1], "report")) {
		report = 1;
		argv++;
		argc--;
	}
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': file = optarg; break;
		case 'j': json = optarg; break;
		case 's': svg = optarg; break;
		case 'c': csv = optarg; break;
		case 'p': preload = optarg; break;
		case 'n': no_preload = 1; break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1000)
				die(2, "--top: expected a number from 1 to 1000, not '%s'", optarg);
			ntop = (int)v;
			break;
		}
		case 'h': usage(stdout); return 0;
		case 'V': printf("mems-trace (MeMS) %s\n", MEMS_VERSION); return 0;
		default:
			fprintf(stderr, "Try '%s --help'.\n", prog);
			return 2;
		}
	}
	const char *outs[] = { json, svg, csv };
	for (int i = 0; i < 3; i++)
		probe_output(outs[i]);
	int status = 0;
	if (report) {
		if (optind != argc - 1)
			die(2, "report: expected one trace FILE (try --help)");
		file = argv[optind];
	} else {
		if (optind >= argc)
			die(2, "no PROGRAM to run (try --help)");
		probe_output(file);
		status = run(file, no_preload ? NULL : find_preload(preload), argv + optind);
		if (access(file, F_OK) != 0) {
			fprintf(stderr, "%s: no trace: %s never started MeMS (no allocation, or "
				"MeMS ran on the kernel's paging)\n", prog, argv[optind]);
			list_others(file);
			return status;      /* the program's status, whatever we saw */
		}
	}
	struct trace t;
	read_trace(file, &t);
	summary(file, &t, ntop);
	if (!report)
		list_others(file);
	if (json)
		write_json(json, &t);
	if (svg)
		write_svg(svg, &t);
	if (csv)
		write_csv(csv, &t);
	return status;
}
