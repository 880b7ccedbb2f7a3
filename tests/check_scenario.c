/*
 * check_scenario.c - the assignment's scenario byte for byte, its example
 * program, and random operation sequences against a reference model.
 */
#include <sys/wait.h>

#include "testutil.h"

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
}

static const char block1[] =
	"----- MeMS SYSTEM STATS -----\n"
	"MAIN[1000:5095]-> P[1000:1999] <-> P[2000:2999] <-> P[3000:3999] <-> P[4000:4999] <-> H[5000:5095] <-> NULL\n"
	"MAIN[5096:9191]-> P[5096:6095] <-> P[6096:7095] <-> P[7096:8095] <-> P[8096:9095] <-> H[9096:9191] <-> NULL\n"
	"MAIN[9192:13287]-> P[9192:10191] <-> P[10192:11191] <-> H[11192:13287] <-> NULL\n"
	"Pages used:\t3\n"
	"Space unused:\t2288\n"
	"Main Chain Length:\t3\n"
	"Sub-chain Length array: [5, 5, 3, ]\n";

static const char block2[] =
	"----- MeMS SYSTEM STATS -----\n"
	"MAIN[1000:5095]-> P[1000:1999] <-> P[2000:2999] <-> P[3000:3999] <-> H[4000:5095] <-> NULL\n"
	"MAIN[5096:9191]-> P[5096:6095] <-> P[6096:7095] <-> P[7096:8095] <-> P[8096:9095] <-> H[9096:9191] <-> NULL\n"
	"MAIN[9192:13287]-> P[9192:10191] <-> P[10192:11191] <-> H[11192:13287] <-> NULL\n"
	"Pages used:\t3\n"
	"Space unused:\t3288\n"
	"Main Chain Length:\t3\n"
	"Sub-chain Length array: [4, 5, 3, ]\n";

/* The assignment's scenario for a MeMS page of mp bytes: ten blocks of
 * 1000 bytes, as many to a node of one page as fit, the fourth (at 4000)
 * freed when freed is set.  The seed lines of its stats block go into out;
 * with 4 KiB pages they are block1 and block2, literally. */
static void scenario_block(char *out, size_t n, uint64_t mp, int freed)
{
	uint64_t k = mp / 1000, nodes = (10 + k - 1) / k, holes = 0;
	size_t len = (size_t)snprintf(out, n, "----- MeMS SYSTEM STATS -----\n");
	char sub[64] = "";
	for (uint64_t i = 0; i < nodes; i++) {
		uint64_t base = 1000 + i * mp, end = base + mp, nseg = 0;
		len += (size_t)snprintf(out + len, n - len, "MAIN[%llu:%llu]->", (unsigned long long)base,
					(unsigned long long)(end - 1));
		/* the node's blocks, then its tail; a hole runs on through the
		 * holes after it, as a free merges them */
		uint64_t j = i * k, last = i + 1 == nodes ? 10 : (i + 1) * k;
		for (uint64_t at = base; at < end; nseg++) {
			int proc = j < last && !(freed && j == 3);
			uint64_t e = at;
			do
				e = j++ < last ? e + 1000 : end;
			while (!proc && e < end && (j >= last || (freed && j == 3)));
			len += (size_t)snprintf(out + len, n - len, " %c[%llu:%llu] <->", proc ? 'P' : 'H',
						(unsigned long long)at, (unsigned long long)(e - 1));
			holes += proc ? 0 : e - at;
			at = e;
		}
		len += (size_t)snprintf(out + len, n - len, " NULL\n");
		snprintf(sub + strlen(sub), sizeof sub - strlen(sub), "%llu, ", (unsigned long long)nseg);
	}
	snprintf(out + len, n - len,
		 "Pages used:\t%llu\nSpace unused:\t%llu\nMain Chain Length:\t%llu\n"
		 "Sub-chain Length array: [%s]\n",
		 (unsigned long long)nodes, (unsigned long long)holes, (unsigned long long)nodes, sub);
}

/* the address of the scenario's ith block */
static uintptr_t scenario_addr(uint64_t mp, int i)
{
	uint64_t k = mp / 1000;
	return (uintptr_t)(1000 + i / k * mp + i % k * 1000);
}

static char want1[2048], want2[2048];

static void scenario_setup(void)
{
	scenario_block(want1, sizeof want1, MEMS_PAGE_SIZE, 0);
	scenario_block(want2, sizeof want2, MEMS_PAGE_SIZE, 1);
}

START_TEST(scenario_blocks_are_the_assignments)
{
	char b[2048];
	scenario_block(b, sizeof b, 4096, 0);
	ck_assert_str_eq(b, block1);
	scenario_block(b, sizeof b, 4096, 1);
	ck_assert_str_eq(b, block2);
	static const uintptr_t want[] = { 1000, 2000, 3000, 4000, 5096, 6096, 7096,
					  8096, 9192, 10192 };
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(scenario_addr(4096, i), want[i]);
	/* with 16 KiB pages all ten share a node, and the freed block's hole
	 * stands alone */
	scenario_block(b, sizeof b, 16384, 1);
	ck_assert_str_eq(b, "----- MeMS SYSTEM STATS -----\n"
			    "MAIN[1000:17383]-> P[1000:1999] <-> P[2000:2999] <-> P[3000:3999] <-> "
			    "H[4000:4999] <-> P[5000:5999] <-> P[6000:6999] <-> P[7000:7999] <-> "
			    "P[8000:8999] <-> P[9000:9999] <-> P[10000:10999] <-> H[11000:17383] <-> NULL\n"
			    "Pages used:\t1\nSpace unused:\t7384\nMain Chain Length:\t1\n"
			    "Sub-chain Length array: [11, ]\n");
	ck_assert_uint_eq(scenario_addr(16384, 9), 10000);
}
END_TEST

/* The block is the seed lines, then the pager's lines, then the rule. */
static void check_block(const char *got, const char *seed)
{
	size_t n = strlen(seed);
	ck_assert_msg(!strncmp(got, seed, n), "got:\n%s\nwanted:\n%s", got, seed);
	const char *rest = got + n;
	ck_assert_msg(!strncmp(rest, "Pages touched:\t", 15), "%s", rest);
	char mapped[64];
	uint64_t k = MEMS_PAGE_SIZE / 1000, nodes = (10 + k - 1) / k;
	snprintf(mapped, sizeof mapped, "\nPages mapped:\t%llu\n",
		 (unsigned long long)(nodes * MEMS_PAGE_SIZE / os_page_size()));
	ck_assert_ptr_nonnull(strstr(rest, mapped));
	ck_assert_ptr_nonnull(strstr(rest, "\nPager:\t"));
	const char *rule = "-----------------------------\n";
	ck_assert_str_eq(got + strlen(got) - strlen(rule), rule);
}

START_TEST(assignment_scenario_byte_for_byte)
{
	static const char *const modes[] = { "uffd", "uffd-user", "kernel" };
	mems_option_set("pager", modes[_i]);
	mems_init();
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(U(mems_malloc(1000)), scenario_addr(MEMS_PAGE_SIZE, i));
	char *s = t_capture_stats();
	check_block(s, want1);
	free(s);
	mems_free(V(4000));
	s = t_capture_stats();
	check_block(s, want2);
	free(s);
	ck_assert_uint_eq(U(mems_malloc(1000)), 4000);
	s = t_capture_stats();
	check_block(s, want1);
	free(s);
}
END_TEST

START_TEST(example_program_output)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "%s/examples/example", t_build());
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	static char out[16384];
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	ck_assert_int_eq(pclose(p), 0);
	char addrs[400] = "";
	for (int i = 0; i < 10; i++)
		snprintf(addrs + strlen(addrs), sizeof addrs - strlen(addrs), "Virtual address: %llu\n",
			 (unsigned long long)scenario_addr(MEMS_PAGE_SIZE, i));
	ck_assert_msg(strstr(out, addrs) != NULL, "wanted:\n%s\ngot:\n%s", addrs, out);
	ck_assert_ptr_nonnull(strstr(out, "Value written: 200\n"));
	const char *s1 = strstr(out, want1);
	ck_assert_ptr_nonnull(s1);
	const char *s2 = strstr(s1 + 1, want2);
	ck_assert_ptr_nonnull(s2);
	ck_assert_ptr_nonnull(strstr(s2 + 1, want1));
	ck_assert_ptr_nonnull(strstr(out, "Pages touched:\t"));
}
END_TEST

/* ---------------------------------------------------------------------
 * Reference model: the assignment's list, written the obvious way.
 * ------------------------------------------------------------------- */

struct mseg { uint64_t s, e; int proc; };
struct mnode { uint64_t s, e; int n, cap; struct mseg *seg; };
static struct mnode *mn;
static int nn;

static uint64_t m_malloc(uint64_t size)
{
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < mn[i].n; j++) {
			struct mseg *g = &mn[i].seg[j];
			if (g->proc || g->e - g->s < size)
				continue;
			uint64_t at = g->s;
			if (g->e - g->s > size) {
				if (mn[i].n == mn[i].cap) {
					mn[i].cap *= 2;
					mn[i].seg = realloc(mn[i].seg, sizeof(struct mseg) * (size_t)mn[i].cap);
					g = &mn[i].seg[j];
				}
				memmove(g + 1, g, sizeof *g * (size_t)(mn[i].n - j));
				mn[i].n++;
				g[1].s = at + size;
			}
			g->e = at + size;
			g->proc = 1;
			return at;
		}
	uint64_t start = nn ? mn[nn - 1].e : 0;
	uint64_t bytes = (size + MEMS_PAGE_SIZE - 1) / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
	mn = realloc(mn, sizeof *mn * (size_t)(nn + 1));
	mn[nn] = (struct mnode){ start, start + bytes, 1, 4, malloc(4 * sizeof(struct mseg)) };
	mn[nn].seg[0] = (struct mseg){ start, start + bytes, 0 };
	nn++;
	return m_malloc(size);
}

static void m_free(uint64_t at)
{
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < mn[i].n; j++) {
			struct mseg *g = mn[i].seg;
			if (g[j].s != at)
				continue;
			ck_assert(g[j].proc);
			g[j].proc = 0;
			if (j + 1 < mn[i].n && !g[j + 1].proc) {
				g[j].e = g[j + 1].e;
				memmove(g + j + 1, g + j + 2, sizeof *g * (size_t)(mn[i].n - j - 2));
				mn[i].n--;
			}
			if (j > 0 && !g[j - 1].proc) {
				g[j - 1].e = g[j].e;
				memmove(g + j, g + j + 1, sizeof *g * (size_t)(mn[i].n - j - 1));
				mn[i].n--;
			}
			return;
		}
	ck_abort_msg("model: free of unknown %lu", (unsigned long)at);
}

static char *m_render(void)
{
	size_t cap = 1 << 20, len = 0;
	char *b = malloc(cap);
	uint64_t holes = 0;
#define P(...) (len += (size_t)snprintf(b + len, cap - len, __VA_ARGS__))
	P("----- MeMS SYSTEM STATS -----\n");
	for (int i = 0; i < nn; i++) {
		P("MAIN[%lu:%lu]-> ", (unsigned long)(1000 + mn[i].s), (unsigned long)(999 + mn[i].e));
		for (int j = 0; j < mn[i].n; j++) {
			struct mseg *g = &mn[i].seg[j];
			P("%c[%lu:%lu] <-> ", g->proc ? 'P' : 'H', (unsigned long)(1000 + g->s),
			  (unsigned long)(999 + g->e));
			if (!g->proc)
				holes += g->e - g->s;
		}
		P("NULL\n");
	}
	P("Pages used:\t%lu\n", (unsigned long)(nn ? mn[nn - 1].e / MEMS_PAGE_SIZE : 0));
	P("Space unused:\t%lu\n", (unsigned long)holes);
	P("Main Chain Length:\t%d\n", nn);
	P("Sub-chain Length array: [");
	for (int i = 0; i < nn; i++)
		P("%d, ", mn[i].n);
	P("]\n");
#undef P
	ck_assert_uint_lt(len, cap);
	return b;
}

static void m_reset(void)
{
	for (int i = 0; i < nn; i++)
		free(mn[i].seg);
	free(mn);
	mn = NULL;
	nn = 0;
}

START_TEST(random_sequences_match_the_reference_model)
{
	static const char *const modes[] = { "uffd", "uffd-user", "kernel" };
	mems_option_set("pager", modes[_i % 3]);
	mems_init();
	uint64_t seed = 1000 + (uint64_t)_i, live[400], sizes[400];
	int n = 0;
	for (int op = 0; op < 4000; op++) {
		uint64_t r = t_rand(&seed) % 100;
		if (n < 400 && (n == 0 || r < 52)) {
			uint64_t k = t_rand(&seed) % 100;
			uint64_t size = k < 60 ? 1 + t_rand(&seed) % 200 :
					k < 95 ? 1 + t_rand(&seed) % 9000 :
						 1 + t_rand(&seed) % 200000;
			uintptr_t v = U(mems_malloc(size));
			ck_assert_uint_eq(v, 1000 + m_malloc(size));
			unsigned char *p = mems_get(V(v));
			p[size - 1] = (unsigned char)(v >> 3);
			p[0] = (unsigned char)v;
			live[n] = v;
			sizes[n++] = size;
		} else {
			int k = (int)(t_rand(&seed) % (uint64_t)n);
			unsigned char *p = mems_get(V(live[k]));
			ck_assert_int_eq(p[0], (unsigned char)live[k]);
			if (sizes[k] > 1)
				ck_assert_int_eq(p[sizes[k] - 1], (unsigned char)(live[k] >> 3));
			ck_assert_ptr_eq(mems_get(V(live[k] + sizes[k] / 2)), p + sizes[k] / 2);
			mems_free(V(live[k]));
			ck_assert_ptr_null(mems_get(V(live[k])));
			m_free(live[k] - 1000);
			live[k] = live[--n];
			sizes[k] = sizes[n];
		}
		if (op % 50 == 0)
			ck_assert_int_eq(mems_check(), 0);
		if (op % 400 == 0 || op == 3999) {
			char *got = t_capture_stats(), *seedl = t_seed_lines(got), *want = m_render();
			ck_assert_str_eq(seedl, want);
			ck_assert_touched_exact();
			free(got); free(seedl); free(want);
		}
	}
	while (n)
		mems_free(V(live[--n]));
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_touched_exact();
	m_reset();
}
END_TEST

Suite *scenario_suite(void)
{
	Suite *s = suite_create("scenario");
	TCase *tc = tcase_create("scenario");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, scenario_setup, teardown);
	tcase_add_test(tc, scenario_blocks_are_the_assignments);
	tcase_add_loop_test(tc, assignment_scenario_byte_for_byte, 0, 3);
	tcase_add_test(tc, example_program_output);
	tcase_add_loop_test(tc, random_sequences_match_the_reference_model, 0, 6);
	suite_add_tcase(s, tc);
	return s;
}
