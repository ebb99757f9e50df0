/* Compiled inner loops of wavelet2: the v3 entropy stage (gancomp.subband3_fast) and the CDF 9/7
 * lifting (gancomp.dwt97).
 *
 * Optional: built by setuptools when a C compiler is there; without it gancomp runs the
 * numpy code in gancomp.subband3, which gives the same bytes and pixels. Every function
 * repeats one numpy step of gancomp.subband3 / gancomp.subband.RD with the same integer
 * arithmetic and the same float64 operations in the same order (compiled with
 * -ffp-contract=off: no fused multiply-adds), so both paths are bit-identical.
 *
 * Arrays come in through the buffer protocol (no numpy headers needed to build); every
 * argument's item size and length are checked here, callers pass C-contiguous arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PAD 2
#define CLIP 7
#define MAG_T 12
#define N_BUCKET 24
#define N_NQ 8
#define N_OQ 6
#define REST_A (MAG_T + N_BUCKET) /* rest-model alphabet */

/* the context quantizers of gancomp.subband (_NQ, _OQ, _AQ), copied in by set_tables() */
static int64_t NQ[200], OQ[200], AQ[401];
static int tables_set = 0;

/* ---- buffers ------------------------------------------------------------------------------ */

typedef struct {
    Py_buffer v;
    int held;
} Buf;

static int get(PyObject *o, Buf *b, Py_ssize_t itemsize, int writable, const char *name) {
    b->held = 0;
    if (PyObject_GetBuffer(o, &b->v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                          (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    b->held = 1;
    if (b->v.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: item size %zd, expected %zd", name, b->v.itemsize,
                     itemsize);
        return -1;
    }
    return 0;
}

static void rel(Buf *b, int n) {
    for (int i = 0; i < n; i++)
        if (b[i].held) PyBuffer_Release(&b[i].v);
}

static Py_ssize_t len(Buf *b) { return b->v.len / b->v.itemsize; }

#define I64(b) ((int64_t *)(b).v.buf)
#define I32(b) ((int32_t *)(b).v.buf)
#define I16(b) ((int16_t *)(b).v.buf)
#define I8(b) ((int8_t *)(b).v.buf)
#define U8(b) ((uint8_t *)(b).v.buf)
#define F64(b) ((double *)(b).v.buf)

static int need(int ok, const char *what) {
    if (!ok) PyErr_Format(PyExc_ValueError, "_w2c: %s", what);
    return ok;
}

/* ---- the four adaptive models ------------------------------------------------------------- */

/* A model: counts (contexts x alphabet, int64) and totals (contexts, int64). */
typedef struct {
    int64_t *c, *t;
    Py_ssize_t nctx;
    int a;
} Model;

/* Models(sig_c, sig_t, gt1_c, gt1_t, rest_c, rest_t, sign_c, sign_t, halve_at, increment):
 * holds the buffers of a Coders' count arrays (updated in place, shared with numpy). */
typedef struct {
    PyObject_HEAD Buf b[8];
    Model m[4]; /* sig, gt1, rest, sign */
    int64_t halve_at, inc;
    int mixing;     /* format v4 (set_mixer): rows are the mixer's */
    int32_t *mix;   /* its tables (one block): */
    int32_t *mt[6]; /* S, G, N, a, lg, exp */
    int32_t *terms; /* scratch: per-context shares of the logits */
} Models;

static void Models_dealloc(Models *self) {
    rel(self->b, 8);
    PyMem_Free(self->mix);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Models_init(Models *self, PyObject *args, PyObject *kw) {
    PyObject *o[8];
    long long h, inc;
    static const int alpha[4] = {2, 2, REST_A, 2};
    rel(self->b, 8);
    memset(self->b, 0, sizeof(self->b));
    PyMem_Free(self->mix);
    self->mix = NULL;
    self->mixing = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOOOLL", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &h, &inc))
        return -1;
    for (int k = 0; k < 4; k++) {
        if (get(o[2 * k], &self->b[2 * k], 8, 1, "counts") < 0 ||
            get(o[2 * k + 1], &self->b[2 * k + 1], 8, 1, "totals") < 0)
            return -1;
        Model *m = &self->m[k];
        m->c = I64(self->b[2 * k]);
        m->t = I64(self->b[2 * k + 1]);
        m->a = alpha[k];
        m->nctx = len(&self->b[2 * k + 1]);
        if (!need(len(&self->b[2 * k]) == m->nctx * m->a, "counts shape")) return -1;
    }
    self->halve_at = h;
    self->inc = inc;
    return 0;
}

/* gancomp.subband._BlockCoder._halve: every row over the limit halved until it fits */
static void halve_all(Model *m, int64_t lim) {
    for (Py_ssize_t r = 0; r < m->nctx; r++) {
        while (m->t[r] > lim) {
            int64_t s = 0, *row = m->c + r * m->a;
            for (int k = 0; k < m->a; k++) {
                row[k] = (row[k] + 1) / 2; /* counts are positive: floor division */
                s += row[k];
            }
            m->t[r] = s;
        }
    }
}

/* gancomp.subband3._add: n binary symbols, `ones` of them 1, in context ctx (that row alone) */
static void add_row(Model *m, int64_t ctx, int64_t ones, int64_t n, int64_t lim, int64_t inc) {
    if (!n) return;
    int64_t c0 = m->c[2 * ctx] + (n - ones) * inc, c1 = m->c[2 * ctx + 1] + ones * inc;
    while (c0 + c1 > lim) {
        c0 = (c0 + 1) / 2;
        c1 = (c1 + 1) / 2;
    }
    m->c[2 * ctx] = c0;
    m->c[2 * ctx + 1] = c1;
    m->t[ctx] = c0 + c1;
}

static int ctx_ok(const Model *m, int64_t c) { return c >= 0 && c < m->nctx; }

/* ---- format v4: the trained integer mixer (gancomp.w2mix) ---------------------------------- */

#define LG_N 8192
#define EXP_N 4096
#define A_SHIFT 6
#define N_ACLS 24 /* scale classes: sig_ctx / (N_NQ * N_OQ) */

/* set_mixer(S, G, N, a, lg, exp): from now on rows() gives the mixed rows of gancomp.w2mix
 * (S: sig contexts x 7, G: 6 x 7, N: sign contexts x 7 bias sums, a: N_ACLS x 7 scales,
 * lg: LG_N log table, exp: EXP_N exp table; all int64, copied in as int32). */
static PyObject *Models_set_mixer(Models *self, PyObject *args) {
    PyObject *o[6];
    Buf b[6] = {0};
    if (!PyArg_ParseTuple(args, "OOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5])) return NULL;
    self->mixing = 0;
    for (int k = 0; k < 6; k++)
        if (get(o[k], &b[k], 8, 0, "mixer table") < 0) goto fail;
    Py_ssize_t ns = self->m[0].nctx, nn = self->m[3].nctx;
    Py_ssize_t sz[6] = {7 * ns, 42, 7 * nn, 7 * N_ACLS, LG_N, EXP_N};
    for (int k = 0; k < 6; k++)
        if (!need(len(&b[k]) == sz[k], "set_mixer: table sizes")) goto fail;
    if (!need(ns == N_ACLS * N_NQ * N_OQ, "set_mixer: sig contexts")) goto fail;
    Py_ssize_t total = 0;
    for (int k = 0; k < 6; k++) total += sz[k];
    /* + scratch: one call's per-context shares of the logits (mixed_rows) */
    total += 7 * (N_NQ * N_OQ + self->m[1].nctx + self->m[2].nctx + nn);
    PyMem_Free(self->mix);
    self->mix = PyMem_Malloc(total * sizeof(int32_t));
    if (!self->mix) {
        PyErr_NoMemory();
        goto fail;
    }
    int32_t *q = self->mix;
    for (int k = 0; k < 6; k++) {
        const int64_t *src = I64(b[k]);
        for (Py_ssize_t i = 0; i < sz[k]; i++) {
            int64_t v = src[i];
            int ok = v >= -(1 << 30) && v < (1 << 30);
            if (k == 3) ok = ok && v >= 0 && v < 32768;          /* scales */
            if (k == 4) ok = ok && v >= -4096 && v < 4096;       /* log table */
            if (k == 5) ok = ok && v >= 1 && v < (1 << 24);      /* exp table */
            if (!need(ok, "set_mixer: table values")) goto fail;
            q[i] = (int32_t)v;
        }
        self->mt[k] = q;
        q += sz[k];
    }
    self->terms = q;
    self->mixing = 1;
    rel(b, 6);
    Py_RETURN_NONE;
fail:
    rel(b, 6);
    return NULL;
}

/* w2mix.Mixer.log: round(256 log2 n) by the table, n >= LG_N halved first (+256 each) */
static inline int64_t lgv(const int32_t *lg, int64_t n) {
    int64_t e = 0;
    if (n < 0) n = 0;
    while (n >= LG_N) {
        n >>= 1;
        e += 256;
    }
    return lg[n] + e;
}

/* w2mix.Snapshot: per context (log P(1), log P(0)) of a binary model (c1 = count of 1) */
static void bin_terms(const int32_t *lg, const Model *m, Py_ssize_t r, int64_t c1, int32_t *t) {
    int64_t lt = lgv(lg, m->t[r]);
    t[0] = (int32_t)(lgv(lg, c1) - lt);
    t[1] = (int32_t)(lgv(lg, m->t[r] - c1) - lt);
}

/* which of a model's two terms (0: log P(1), 1: log P(0), -1: none) each joint symbol uses:
 * sig, gt1, rest ("more than 2"), sign (w2mix.Snapshot.logp) */
static const int8_t USE[4][7] = {{1, 0, 0, 0, 0, 0, 0},
                                 {-1, 1, 1, 0, 0, 0, 0},
                                 {-1, -1, -1, 1, 1, 0, 0},
                                 {-1, 1, 0, 1, 0, 1, 0}};

/* one model's share of the 7 logits: -((a_k * -L_k) >> A_SHIFT) + bias_k (w2mix.mix_rows) */
static inline void share(const int32_t *A, const int32_t *t, int model, const int32_t *bias,
                         int32_t *out) {
    for (int k = 0; k < 7; k++) {
        int u = USE[model][k];
        int64_t L = u < 0 ? 0 : t[u];
        out[k] = (int32_t)(-(((int64_t)A[k] * -L) >> A_SHIFT) + (bias ? bias[k] : 0));
    }
}

/* the row: E[min(max(z) - z_k, EXP_N - 1)] as exact float64 integers (constriction
 * normalizes them) */
static inline void softmax_row(const int32_t *z0, const int32_t *z1, const int32_t *z2,
                               const int32_t *z3, const int32_t *E, double *p) {
    int32_t z[7], zmax;
    for (int k = 0; k < 7; k++) z[k] = z0[k] + z1[k] + z2[k] + z3[k];
    zmax = z[0];
    for (int k = 1; k < 7; k++) zmax = z[k] > zmax ? z[k] : zmax;
    for (int k = 0; k < 7; k++) {
        uint32_t d = (uint32_t)(zmax - z[k]);
        p[k] = (double)E[d < EXP_N - 1 ? d : EXP_N - 1];
    }
}

/* one symbol's row, everything from the counts */
static void mix_direct(const Models *self, int64_t a, int64_t g, int64_t r, int64_t s,
                       double *p) {
    const Model *S = &self->m[0], *G = &self->m[1], *R = &self->m[2], *N = &self->m[3];
    const int32_t *lg = self->mt[4], *A = self->mt[3] + 7 * (a / (N_NQ * N_OQ));
    int32_t t[8], z[4][7];
    bin_terms(lg, S, a, S->c[2 * a + 1], t);
    bin_terms(lg, G, g, G->c[2 * g + 1], t + 2);
    bin_terms(lg, R, r, R->t[r] - R->c[(int64_t)REST_A * r], t + 4);
    bin_terms(lg, N, s, N->c[2 * s + 1], t + 6);
    share(A, t, 0, self->mt[0] + 7 * a, z[0]);
    share(A, t + 2, 1, self->mt[1] + 7 * (g % 6), z[1]);
    share(A, t + 4, 2, NULL, z[2]);
    share(A, t + 6, 3, self->mt[2] + 7 * s, z[3]);
    softmax_row(z[0], z[1], z[2], z[3], self->mt[5], p);
}

/* the mixed rows of n symbols. A call's symbols normally share one scale class (one band
 * group and pass): then each model's share is tabulated once per context of the call; a
 * symbol of another class, and short calls, take the direct path (the same integers). */
static int mixed_rows(Models *self, const int64_t *sc, const int64_t *gc, const int64_t *rc,
                      const int64_t *nc, Py_ssize_t n, double *p) {
    const Model *S = &self->m[0], *G = &self->m[1], *R = &self->m[2], *N = &self->m[3];
    const int32_t *lg = self->mt[4];
    const int64_t per = N_NQ * N_OQ;
    int64_t cls = -1;
    int32_t *PS = self->terms, *PG = PS + 7 * per, *PR = PG + 7 * G->nctx, *PN = PR + 7 * R->nctx;
    if (n >= 256 && ctx_ok(S, sc[0])) {
        int32_t t[2];
        cls = sc[0] / per;
        const int32_t *A = self->mt[3] + 7 * cls;
        for (int64_t c = 0; c < per; c++) {
            int64_t a = cls * per + c;
            bin_terms(lg, S, a, S->c[2 * a + 1], t);
            share(A, t, 0, self->mt[0] + 7 * a, PS + 7 * c);
        }
        for (int64_t g = 0; g < G->nctx; g++) {
            bin_terms(lg, G, g, G->c[2 * g + 1], t);
            share(A, t, 1, self->mt[1] + 7 * (g % 6), PG + 7 * g);
        }
        for (int64_t r = 0; r < R->nctx; r++) {
            bin_terms(lg, R, r, R->t[r] - R->c[(int64_t)REST_A * r], t);
            share(A, t, 2, NULL, PR + 7 * r);
        }
        for (int64_t s = 0; s < N->nctx; s++) {
            bin_terms(lg, N, s, N->c[2 * s + 1], t);
            share(A, t, 3, self->mt[2] + 7 * s, PN + 7 * s);
        }
    }
    for (Py_ssize_t i = 0; i < n; i++, p += 7) {
        int64_t a = sc[i];
        if (!need(ctx_ok(S, a) && ctx_ok(G, gc[i]) && ctx_ok(R, rc[i]) && ctx_ok(N, nc[i]),
                  "rows: context out of range"))
            return -1;
        if (a / per == cls)
            softmax_row(PS + 7 * (a - cls * per), PG + 7 * gc[i], PR + 7 * rc[i], PN + 7 * nc[i],
                        self->mt[5], p);
        else
            mix_direct(self, a, gc[i], rc[i], nc[i], p);
    }
    return 0;
}

/* rows(sig_ctx, g_ctx, r_ctx, s_ctx, out): probability rows of the 7 joint symbols, as
 * subband3._Tables.rows (the chain rule of the four models' count ratios). */
static PyObject *Models_rows(Models *self, PyObject *args) {
    PyObject *o[5];
    Buf b[5] = {0};
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &o[4])) return NULL;
    for (int k = 0; k < 4; k++)
        if (get(o[k], &b[k], 8, 0, "context") < 0) goto fail;
    if (get(o[4], &b[4], 8, 1, "out") < 0) goto fail;
    Py_ssize_t n = len(&b[0]);
    if (!need(len(&b[1]) == n && len(&b[2]) == n && len(&b[3]) == n && len(&b[4]) == 7 * n,
              "rows: lengths"))
        goto fail;
    Model *S = &self->m[0], *G = &self->m[1], *R = &self->m[2], *N = &self->m[3];
    const int64_t *sc = I64(b[0]), *gc = I64(b[1]), *rc = I64(b[2]), *nc = I64(b[3]);
    double *p = F64(b[4]);
    if (self->mixing) {
        if (mixed_rows(self, sc, gc, rc, nc, n, p) < 0) goto fail;
        rel(b, 5);
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < n; i++, p += 7) {
        int64_t a = sc[i], g = gc[i], r = rc[i], s = nc[i];
        if (!need(ctx_ok(S, a) && ctx_ok(G, g) && ctx_ok(R, r) && ctx_ok(N, s),
                  "rows: context out of range"))
            goto fail;
        double p1 = (double)S->c[2 * a + 1] / (double)S->t[a];
        double g1 = (double)G->c[2 * g + 1] / (double)G->t[g];
        double r1 = (double)(R->t[r] - R->c[(int64_t)REST_A * r]) / (double)R->t[r];
        double sn = (double)N->c[2 * s + 1] / (double)N->t[s];
        p[0] = 1.0 - p1;
        double m1 = p1 * (1.0 - g1);
        double m2 = p1 * g1;
        double m3 = m2 * r1;
        m2 -= m3;
        double sp = 1.0 - sn;
        p[1] = m1 * sp;
        p[2] = m1 * sn;
        p[3] = m2 * sp;
        p[4] = m2 * sn;
        p[5] = m3 * sp;
        p[6] = m3 * sn;
    }
    rel(b, 5);
    Py_RETURN_NONE;
fail:
    rel(b, 5);
    return NULL;
}

/* rest_rows(sym, r_ctx, out) -> count: for each joint symbol of class 3 (sym >= 5), in
 * order, the rest model's row P(rest symbol | rest > 0) of its context (subband3._rest_tables);
 * r_ctx has one entry per symbol, or one shared by all. */
static PyObject *Models_rest_rows(Models *self, PyObject *args) {
    PyObject *o[3];
    Buf b[3] = {0};
    Py_ssize_t cnt = 0;
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    if (get(o[0], &b[0], 4, 0, "sym") < 0 || get(o[1], &b[1], 8, 0, "r_ctx") < 0 ||
        get(o[2], &b[2], 8, 1, "out") < 0)
        goto fail;
    Py_ssize_t n = len(&b[0]), nr = len(&b[1]);
    if (!need(nr == n || nr == 1, "rest_rows: lengths")) goto fail;
    Model *R = &self->m[2];
    const int32_t *sym = I32(b[0]);
    const int64_t *rc = I64(b[1]);
    double *out = F64(b[2]);
    Py_ssize_t cap = len(&b[2]) / (REST_A - 1);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (sym[i] < 5) continue;
        int64_t r = rc[nr == 1 ? 0 : i];
        if (!need(ctx_ok(R, r) && cnt < cap, "rest_rows: context or size")) goto fail;
        const int64_t *row = R->c + (int64_t)REST_A * r;
        double above = (double)(R->t[r] - row[0]);
        double *d = out + cnt * (REST_A - 1);
        for (int k = 1; k < REST_A; k++) d[k - 1] = (double)row[k] / above;
        cnt++;
    }
    rel(b, 3);
    return PyLong_FromSsize_t(cnt);
fail:
    rel(b, 3);
    return NULL;
}

/* adapt(sym, sig_ctx, g_ctx, r_ctx, s_ctx, rsym): subband3._adapt for the joint symbols
 * `sym` (int32, 0..6) with per-symbol contexts (int64 arrays) or, when the contexts are ints,
 * one context each shared by all (the quiet coefficients); rsym: the rest symbols (>= 1) of
 * the class-3 symbols in order. */
static PyObject *Models_adapt(Models *self, PyObject *args) {
    PyObject *o[6];
    Buf b[6] = {0};
    if (!PyArg_ParseTuple(args, "OOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    Model *S = &self->m[0], *G = &self->m[1], *R = &self->m[2], *N = &self->m[3];
    int64_t lim = self->halve_at, inc = self->inc;
    if (get(o[0], &b[0], 4, 0, "sym") < 0 || get(o[5], &b[5], 8, 0, "rsym") < 0) goto fail;
    Py_ssize_t n = len(&b[0]), nres = len(&b[5]), k3 = 0;
    const int32_t *sym = I32(b[0]);
    const int64_t *rs = I64(b[5]);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!need(sym[i] >= 0 && sym[i] <= 6, "adapt: symbol out of range")) goto fail;
    if (PyLong_Check(o[1])) { /* quiet: one context per model */
        int64_t ctx[4];
        for (int k = 0; k < 4; k++) {
            ctx[k] = PyLong_AsLongLong(o[1 + k]);
            if (ctx[k] == -1 && PyErr_Occurred()) goto fail;
        }
        if (!need(ctx_ok(S, ctx[0]) && ctx_ok(G, ctx[1]) && ctx_ok(R, ctx[2]) &&
                      ctx_ok(N, ctx[3]),
                  "adapt: context out of range"))
            goto fail;
        int64_t nz = 0, two = 0, neg = 0, three = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            int s = sym[i];
            if (!s) continue;
            nz++;
            two += s >= 3;
            three += s >= 5;
            neg += (s & 1) == 0;
        }
        if (!need(three == nres, "adapt: rest symbols")) goto fail;
        add_row(S, ctx[0], nz, n, lim, inc);
        add_row(G, ctx[1], two, nz, lim, inc);
        add_row(N, ctx[3], neg, nz, lim, inc);
        if (two) {
            for (Py_ssize_t i = 0; i < n; i++) {
                int s = sym[i];
                if (s < 3) continue;
                int64_t v = s >= 5 ? rs[k3++] : 0;
                if (!need(v >= 0 && v < REST_A, "adapt: rest symbol")) goto fail;
                R->c[REST_A * ctx[2] + v] += inc;
                R->t[ctx[2]] += inc;
            }
            halve_all(R, lim);
        }
        rel(b, 6);
        Py_RETURN_NONE;
    }
    for (int k = 1; k <= 4; k++)
        if (get(o[k], &b[k], 8, 0, "context") < 0) goto fail;
    if (!need(len(&b[1]) == n && len(&b[2]) == n && len(&b[3]) == n && len(&b[4]) == n,
              "adapt: lengths"))
        goto fail;
    const int64_t *sc = I64(b[1]), *gc = I64(b[2]), *rc = I64(b[3]), *nc = I64(b[4]);
    int any_two = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int s = sym[i];
        if (!need(ctx_ok(S, sc[i]) && ctx_ok(G, gc[i]) && ctx_ok(R, rc[i]) && ctx_ok(N, nc[i]),
                  "adapt: context out of range"))
            goto fail;
        S->c[2 * sc[i] + (s != 0)] += inc;
        S->t[sc[i]] += inc;
        if (!s) continue;
        G->c[2 * gc[i] + (s >= 3)] += inc;
        G->t[gc[i]] += inc;
        N->c[2 * nc[i] + ((s & 1) == 0)] += inc;
        N->t[nc[i]] += inc;
        if (s >= 3) {
            int64_t v = 0;
            if (s >= 5) {
                if (!need(k3 < nres, "adapt: rest symbols")) goto fail;
                v = rs[k3++];
            }
            if (!need(v >= 0 && v < REST_A, "adapt: rest symbol")) goto fail;
            R->c[REST_A * rc[i] + v] += inc;
            R->t[rc[i]] += inc;
            any_two = 1;
        }
    }
    if (!need(k3 == nres, "adapt: rest symbols")) goto fail;
    halve_all(S, lim);
    halve_all(G, lim);
    halve_all(N, lim);
    if (any_two) halve_all(R, lim);
    rel(b, 6);
    Py_RETURN_NONE;
fail:
    rel(b, 6);
    return NULL;
}

static PyMethodDef Models_methods[] = {
    {"rows", (PyCFunction)Models_rows, METH_VARARGS, "joint-symbol probability rows"},
    {"set_mixer", (PyCFunction)Models_set_mixer, METH_VARARGS, "format v4: mix the rows"},
    {"rest_rows", (PyCFunction)Models_rest_rows, METH_VARARGS, "rest rows of class-3 symbols"},
    {"adapt", (PyCFunction)Models_adapt, METH_VARARGS, "count coded symbols"},
    {NULL}};

static PyTypeObject ModelsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gancomp._w2c.Models",
    .tp_basicsize = sizeof(Models),
    .tp_dealloc = (destructor)Models_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "the count arrays of one wavelet2 Coders",
    .tp_methods = Models_methods,
    .tp_init = (initproc)Models_init,
    .tp_new = PyType_GenericNew,
};

/* ---- per pass: contexts ------------------------------------------------------------------- */

/* pass_ctx(mag, sgn, other, valid, orient, ref, a_or_None, geom, J, sig, g, r, s, busy, quiet)
 * -> (nJ, nQ). geom = (h, w, r0, c0, st, dist, p, bcls, chroma). The candidates J (busy, or
 * with a: busy or |a| >= 0.5) in pass order with their four contexts and busy flag, and the
 * quiet positions (valid, not busy), as subband3.code_group computes them. */
static PyObject *pass_ctx(PyObject *mod, PyObject *args) {
    PyObject *o[15];
    Buf b[15] = {0};
    long long h, w, r0, c0, st, dist, p, bcls, chroma;
    if (!PyArg_ParseTuple(args, "OOOOOOO(LLLLLLLLL)OOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &h, &w, &r0, &c0, &st, &dist, &p, &bcls, &chroma, &o[8],
                          &o[9], &o[10], &o[11], &o[12], &o[13], &o[14]))
        return NULL;
    if (!need(tables_set, "set_tables() not called")) return NULL;
    int has_a = o[6] != Py_None;
    if (get(o[0], &b[0], 2, 0, "mag") < 0 || get(o[1], &b[1], 2, 0, "sgn") < 0 ||
        get(o[2], &b[2], 2, 0, "other") < 0 || get(o[3], &b[3], 1, 0, "valid") < 0 ||
        get(o[4], &b[4], 1, 0, "orient") < 0 || get(o[5], &b[5], 1, 0, "ref") < 0 ||
        (has_a && get(o[6], &b[6], 8, 0, "a") < 0))
        goto fail;
    for (int k = 8; k < 13; k++)
        if (get(o[k], &b[k], 8, 1, "out") < 0) goto fail;
    if (get(o[13], &b[13], 1, 1, "busy") < 0 || get(o[14], &b[14], 8, 1, "quiet") < 0)
        goto fail;
    Py_ssize_t wp = w + 2 * PAD;
    Py_ssize_t nr = (h - r0 + st - 1) / st, nc = (w - c0 + st - 1) / st, n = nr * nc;
    if (!need(h > 0 && w > 0 && st > 0 && dist > 0 && dist <= PAD && r0 >= 0 && c0 >= 0 &&
                  nr > 0 && nc > 0,
              "pass_ctx: geometry"))
        goto fail;
    if (!need(len(&b[0]) == (h + 2 * PAD) * wp && len(&b[1]) == (h + 2 * PAD) * wp &&
                  len(&b[2]) == h * w && len(&b[3]) == h * w && len(&b[4]) == h * w &&
                  len(&b[5]) == h * w && (!has_a || len(&b[6]) == h * w),
              "pass_ctx: canvas sizes"))
        goto fail;
    for (int k = 8; k < 15; k++)
        if (!need(len(&b[k]) >= n, "pass_ctx: output sizes")) goto fail;
    const int16_t *mag = I16(b[0]), *sgn = I16(b[1]), *oth = I16(b[2]);
    const uint8_t *val = U8(b[3]);
    const int8_t *ori = I8(b[4]), *ref = I8(b[5]);
    const double *a = has_a ? F64(b[6]) : NULL;
    int64_t *J = I64(b[8]), *SC = I64(b[9]), *GC = I64(b[10]), *RC = I64(b[11]),
            *NC = I64(b[12]), *Q = I64(b[14]);
    uint8_t *busy = U8(b[13]);
    int64_t pp = p > 0;
    int64_t sig0 = (bcls * 4 + p) * N_NQ, g0 = (bcls * 2 + pp) * 6, r0c = (chroma * 2 + pp) * 6;
    int64_t s1 = (chroma * 2 + dist - 1) * 3;
    Py_ssize_t d = dist, dw = dist * wp, nj = 0, nq = 0, i = 0;
    for (Py_ssize_t pr = 0; pr < nr; pr++) {
        Py_ssize_t rr = r0 + st * pr;
        for (Py_ssize_t pc = 0; pc < nc; pc++, i++) {
            Py_ssize_t cc = c0 + st * pc, pos = (PAD + rr) * wp + PAD + cc, cp = rr * w + cc;
            int64_t nb = 2 * (mag[pos - dw] + mag[pos + dw] + mag[pos - d] + mag[pos + d]) +
                         mag[pos - dw - d] + mag[pos - dw + d] + mag[pos + dw - d] +
                         mag[pos + dw + d];
            int64_t ot = oth[cp];
            int isb = ((nb | ot) != 0) && val[cp];
            if (val[cp] && !isb) Q[nq++] = i;
            if (!(isb || (a && fabs(a[cp]) >= 0.5))) continue;
            int64_t nb1 = nb < 199 ? nb : 199, ot1 = ot < 199 ? ot : 199;
            int64_t sa = nb + ot < 400 ? nb + ot : 400;
            if (!need(nb >= 0 && ot >= 0, "pass_ctx: negative magnitude")) goto fail;
            int64_t act = AQ[sa];
            int hsum = sgn[pos - d] + sgn[pos + d], vsum = sgn[pos - dw] + sgn[pos + dw];
            int64_t hs = (hsum > 0) - (hsum < 0) + 1, vs = (vsum > 0) - (vsum < 0) + 1;
            J[nj] = i;
            SC[nj] = (sig0 + NQ[nb1]) * N_OQ + OQ[ot1];
            GC[nj] = g0 + act;
            RC[nj] = r0c + act;
            NC[nj] = (((s1 + ori[cp]) * 3 + hs) * 3 + vs) * 3 + ref[cp];
            busy[nj] = (uint8_t)isb;
            nj++;
        }
    }
    rel(b, 15);
    return Py_BuildValue("nn", nj, nq);
fail:
    rel(b, 15);
    return NULL;
}

/* ---- encoder: joint symbols; decoder: values; both: the canvases ---------------------------- */

/* joint(qv, idx, sym, esc) -> number of class-3 values: the joint symbols of qv[idx]
 * (0, 2 * min(|v|, 3) - 1 + (v < 0)) and, for |v| >= 3 in order, |v| - 2 into esc. */
static PyObject *joint(PyObject *mod, PyObject *args) {
    PyObject *o[4];
    Buf b[4] = {0};
    Py_ssize_t ne = 0;
    if (!PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &o[3])) return NULL;
    if (get(o[0], &b[0], 8, 0, "qv") < 0 || get(o[1], &b[1], 8, 0, "idx") < 0 ||
        get(o[2], &b[2], 4, 1, "sym") < 0 || get(o[3], &b[3], 8, 1, "esc") < 0)
        goto fail;
    Py_ssize_t n = len(&b[1]), nv = len(&b[0]);
    if (!need(len(&b[2]) >= n && len(&b[3]) >= n, "joint: sizes")) goto fail;
    const int64_t *qv = I64(b[0]), *idx = I64(b[1]);
    int32_t *sym = I32(b[2]);
    int64_t *esc = I64(b[3]);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!need(idx[i] >= 0 && idx[i] < nv, "joint: index")) goto fail;
        int64_t v = qv[idx[i]], m = v < 0 ? -v : v;
        if (!m) {
            sym[i] = 0;
            continue;
        }
        sym[i] = (int32_t)(2 * (m < 3 ? m : 3) - 1 + (v < 0));
        if (m >= 3) esc[ne++] = m - 2;
    }
    rel(b, 4);
    return PyLong_FromSsize_t(ne);
fail:
    rel(b, 4);
    return NULL;
}

/* fill(vals, idx, sym, escmag): decoder: vals[idx[i]] = the signed value of joint symbol
 * sym[i], class-3 magnitudes taken in order from escmag. */
static PyObject *fill(PyObject *mod, PyObject *args) {
    PyObject *o[4];
    Buf b[4] = {0};
    if (!PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &o[3])) return NULL;
    if (get(o[0], &b[0], 8, 1, "vals") < 0 || get(o[1], &b[1], 8, 0, "idx") < 0 ||
        get(o[2], &b[2], 4, 0, "sym") < 0 || get(o[3], &b[3], 8, 0, "escmag") < 0)
        goto fail;
    Py_ssize_t n = len(&b[1]), nv = len(&b[0]), ne = len(&b[3]), k = 0;
    if (!need(len(&b[2]) == n, "fill: sizes")) goto fail;
    int64_t *vals = I64(b[0]);
    const int64_t *idx = I64(b[1]), *em = I64(b[3]);
    const int32_t *sym = I32(b[2]);
    for (Py_ssize_t i = 0; i < n; i++) {
        int s = sym[i];
        if (!need(idx[i] >= 0 && idx[i] < nv && s >= 0 && s <= 6, "fill: index or symbol"))
            goto fail;
        if (!s) continue;
        int64_t m = (s + 1) >> 1;
        if (m == 3) {
            if (!need(k < ne, "fill: escapes")) goto fail;
            m = em[k++];
        }
        vals[idx[i]] = (s & 1) ? m : -m;
    }
    if (!need(k == ne, "fill: escapes")) goto fail;
    rel(b, 4);
    Py_RETURN_NONE;
fail:
    rel(b, 4);
    return NULL;
}

/* scatter(vals, out, mag, sgn, (h, w, r0, c0, st)): a pass's values into the band canvas
 * and the clipped-magnitude / sign canvases the later contexts read. */
static PyObject *scatter(PyObject *mod, PyObject *args) {
    PyObject *o[4];
    Buf b[4] = {0};
    long long h, w, r0, c0, st;
    if (!PyArg_ParseTuple(args, "OOOO(LLLLL)", &o[0], &o[1], &o[2], &o[3], &h, &w, &r0, &c0,
                          &st))
        return NULL;
    if (get(o[0], &b[0], 8, 0, "vals") < 0 || get(o[1], &b[1], 8, 1, "out") < 0 ||
        get(o[2], &b[2], 2, 1, "mag") < 0 || get(o[3], &b[3], 2, 1, "sgn") < 0)
        goto fail;
    Py_ssize_t wp = w + 2 * PAD, nr = (h - r0 + st - 1) / st, nc = (w - c0 + st - 1) / st;
    if (!need(st > 0 && r0 >= 0 && c0 >= 0 && nr > 0 && nc > 0 && len(&b[0]) == nr * nc &&
                  len(&b[1]) == h * w && len(&b[2]) == (h + 2 * PAD) * wp &&
                  len(&b[3]) == (h + 2 * PAD) * wp,
              "scatter: sizes"))
        goto fail;
    const int64_t *v = I64(b[0]);
    int64_t *out = I64(b[1]);
    int16_t *mag = I16(b[2]), *sgn = I16(b[3]);
    for (Py_ssize_t pr = 0, i = 0; pr < nr; pr++) {
        Py_ssize_t rr = r0 + st * pr;
        for (Py_ssize_t pc = 0; pc < nc; pc++, i++) {
            int64_t x = v[i];
            if (!x) continue;
            Py_ssize_t cc = c0 + st * pc, pos = (rr + PAD) * wp + cc + PAD;
            int64_t m = x < 0 ? -x : x;
            out[rr * w + cc] = x;
            mag[pos] = (int16_t)(m < CLIP ? m : CLIP);
            sgn[pos] = (int16_t)(x > 0 ? 1 : -1);
        }
    }
    rel(b, 4);
    Py_RETURN_NONE;
fail:
    rel(b, 4);
    return NULL;
}

/* ---- encoder: rate-distortion optimized quantization (subband.RD.choose) ------------------- */

static int64_t floor_log2(int64_t e) { /* e >= 1 */
    int64_t b = 0;
    while (e >> (b + 1)) b++;
    return b;
}

/* choose(a, idx, sig_ctx, g_ctx, r_ctx, s_ctx, sig_t, gt_t, sign_t, rest_t,
 * (kappa, lam, o1, o2, nz), out): for candidate i the signed value chosen from
 * {round(|a|), one less, 0}, with a = a[idx[i]] (in steps); the tables hold the bits of each
 * (context, symbol) at the pass's start (subband._cost_table). */
static PyObject *choose(PyObject *mod, PyObject *args) {
    PyObject *o[11];
    Buf b[11] = {0};
    double kappa, lam, o1, o2, nzb;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO(ddddd)O", &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &o[7], &o[8], &o[9], &kappa, &lam, &o1, &o2, &nzb,
                          &o[10]))
        return NULL;
    if (get(o[0], &b[0], 8, 0, "a") < 0 || get(o[1], &b[1], 8, 0, "idx") < 0) goto fail;
    for (int k = 2; k < 6; k++)
        if (get(o[k], &b[k], 8, 0, "context") < 0) goto fail;
    for (int k = 6; k < 10; k++)
        if (get(o[k], &b[k], 8, 0, "cost table") < 0) goto fail;
    if (get(o[10], &b[10], 8, 1, "out") < 0) goto fail;
    Py_ssize_t n = len(&b[1]), na = len(&b[0]);
    Py_ssize_t nsig = len(&b[6]) / 2, ngt = len(&b[7]) / 2, nsg = len(&b[8]) / 2,
               nrest = len(&b[9]) / REST_A;
    if (!need(len(&b[2]) >= n && len(&b[3]) >= n && len(&b[4]) >= n && len(&b[5]) >= n &&
                  len(&b[10]) >= n,
              "choose: sizes"))
        goto fail;
    const double *A = F64(b[0]), *sig_t = F64(b[6]), *gt_t = F64(b[7]), *sign_t = F64(b[8]),
                 *rest_t = F64(b[9]);
    const int64_t *idx = I64(b[1]), *sc = I64(b[2]), *gc = I64(b[3]), *rc = I64(b[4]),
                  *nc = I64(b[5]);
    int64_t *out = I64(b[10]);
    const double rec1 = 1.0 + o1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!need(idx[i] >= 0 && idx[i] < na, "choose: index")) goto fail;
        double ca = A[idx[i]], a = fabs(ca);
        out[i] = 0;
        if (!(a >= 0.5)) continue;
        int neg = ca < 0;
        if (!need(sc[i] >= 0 && sc[i] < nsig && gc[i] >= 0 && gc[i] < ngt && nc[i] >= 0 &&
                      nc[i] < nsg && rc[i] >= 0 && rc[i] < nrest,
                  "choose: context"))
            goto fail;
        int64_t m0 = (int64_t)floor(a + 0.5);
        double z_bits = sig_t[2 * sc[i]];
        double nz_bits = nzb + sig_t[2 * sc[i] + 1] + sign_t[2 * nc[i] + neg];
        double g0 = gt_t[2 * gc[i]], g1 = gt_t[2 * gc[i] + 1];
        const double *rt = rest_t + REST_A * rc[i];
        double best = kappa * a * a + lam * z_bits;
        int64_t res = 0;
        for (int t = 0; t < 2; t++) {
            int64_t m = m0 - t, mm = m > 1 ? m : 1;
            double rec = mm == 1 ? rec1 : (double)mm + o2;
            int64_t v = mm - 2 > 0 ? mm - 2 : 0;
            int big = v >= MAG_T;
            int64_t e = v - MAG_T + 1 > 1 ? v - MAG_T + 1 : 1;
            int64_t bk = floor_log2(e);
            if (bk > N_BUCKET - 1) bk = N_BUCKET - 1;
            int64_t sym = big ? MAG_T + bk : (v < MAG_T - 1 ? v : MAG_T - 1);
            double rest = rt[sym] + (double)(big ? bk : 0);
            double bits = nz_bits + (mm == 1 ? g0 : g1 + rest);
            double d = a - rec;
            double j = kappa * (d * d) + lam * bits;
            if (m >= 1 && j < best) {
                best = j;
                res = mm;
            }
        }
        out[i] = neg ? -res : res;
    }
    rel(b, 11);
    Py_RETURN_NONE;
fail:
    rel(b, 11);
    return NULL;
}


/* ---- CDF 9/7 lifting (gancomp.dwt97): the same float64 operations per sample -------------- */

static const double LA = -1.586134342059924, LB = -0.052980118572961, LG = 0.882911075530934,
                    LD = 0.443506852043971, LK = 1.230174104914001;

/* lines of samples: s is ns x m, d is nd x m (row-major), the transform runs down the rows */

/* d[i] (+/-)= coef * (s[i] + s[i + 1]), s mirrored at the end (dwt97._lift_d) */
static void lift_d(double *d, const double *s, Py_ssize_t ns, Py_ssize_t nd, Py_ssize_t m,
                   double coef, int sub) {
    for (Py_ssize_t i = 0; i < nd; i++) {
        const double *a = s + i * m, *b = s + (i + 1 < ns ? i + 1 : i) * m;
        double *o = d + i * m;
        if (sub)
            for (Py_ssize_t j = 0; j < m; j++) o[j] = o[j] - coef * (a[j] + b[j]);
        else
            for (Py_ssize_t j = 0; j < m; j++) o[j] = o[j] + coef * (a[j] + b[j]);
    }
}

/* s[i] (+/-)= coef * (d[i - 1] + d[i]), d mirrored at both ends (dwt97._lift_s) */
static void lift_s(double *s, const double *d, Py_ssize_t ns, Py_ssize_t nd, Py_ssize_t m,
                   double coef, int sub) {
    for (Py_ssize_t i = 0; i < ns; i++) {
        const double *a = d + (i > 0 ? i - 1 : 0) * m, *b = d + (i < nd ? i : nd - 1) * m;
        double *o = s + i * m;
        if (sub)
            for (Py_ssize_t j = 0; j < m; j++) o[j] = o[j] - coef * (a[j] + b[j]);
        else
            for (Py_ssize_t j = 0; j < m; j++) o[j] = o[j] + coef * (a[j] + b[j]);
    }
}

static void scale(double *x, Py_ssize_t n, double f) {
    for (Py_ssize_t i = 0; i < n; i++) x[i] = x[i] * f;
}

/* dwt97._fwd_axis0 on lines already split into s (even samples) and d (odd samples) */
static void fwd_lines(double *s, double *d, Py_ssize_t ns, Py_ssize_t nd, Py_ssize_t m) {
    if (nd == 0) return; /* n < 2: no lifting */
    lift_d(d, s, ns, nd, m, LA, 0);
    lift_s(s, d, ns, nd, m, LB, 0);
    lift_d(d, s, ns, nd, m, LG, 0);
    lift_s(s, d, ns, nd, m, LD, 0);
    scale(s, ns * m, 1.0 / LK);
    scale(d, nd * m, LK / 2.0);
}

/* dwt97._inv_axis0 before interleaving: s, d modified in place */
static void inv_lines(double *s, double *d, Py_ssize_t ns, Py_ssize_t nd, Py_ssize_t m) {
    if (nd == 0) return; /* out = s unchanged */
    scale(s, ns * m, LK);
    scale(d, nd * m, 2.0 / LK);
    lift_s(s, d, ns, nd, m, LD, 1);
    lift_d(d, s, ns, nd, m, LG, 1);
    lift_s(s, d, ns, nd, m, LB, 1);
    lift_d(d, s, ns, nd, m, LA, 1);
}

/* the horizontal transform of rows: each row of x (w samples) into a row of lo and hi */
static void fwd_rows(const double *x, Py_ssize_t h, Py_ssize_t w, double *lo, double *hi,
                     double *buf) {
    Py_ssize_t ns = (w + 1) / 2, nd = w / 2;
    for (Py_ssize_t r = 0; r < h; r++) {
        const double *row = x + r * w;
        double *s = buf, *d = buf + ns;
        for (Py_ssize_t i = 0; i < ns; i++) s[i] = row[2 * i];
        for (Py_ssize_t i = 0; i < nd; i++) d[i] = row[2 * i + 1];
        fwd_lines(s, d, ns, nd, 1);
        memcpy(lo + r * ns, s, ns * sizeof(double));
        memcpy(hi + r * nd, d, nd * sizeof(double));
    }
}

static void inv_rows(const double *lo, const double *hi, Py_ssize_t h, Py_ssize_t w, double *x,
                     double *buf) {
    Py_ssize_t ns = (w + 1) / 2, nd = w / 2;
    for (Py_ssize_t r = 0; r < h; r++) {
        double *s = buf, *d = buf + ns, *row = x + r * w;
        memcpy(s, lo + r * ns, ns * sizeof(double));
        memcpy(d, hi + r * nd, nd * sizeof(double));
        inv_lines(s, d, ns, nd, 1);
        for (Py_ssize_t i = 0; i < ns; i++) row[2 * i] = s[i];
        for (Py_ssize_t i = 0; i < nd; i++) row[2 * i + 1] = d[i];
    }
}

/* dwt_fwd(x, ll, hl, lh, hh): one level of dwt97.forward (x: h x w float64; ll: ceil x ceil,
 * hl: ceil(h/2) x floor(w/2), lh: floor x ceil, hh: floor x floor) */
static PyObject *dwt_fwd(PyObject *mod, PyObject *args) {
    PyObject *o[5];
    Buf b[5] = {0};
    long long h, w;
    double *tmp = NULL;
    if (!PyArg_ParseTuple(args, "O(LL)OOOO", &o[0], &h, &w, &o[1], &o[2], &o[3], &o[4]))
        return NULL;
    if (get(o[0], &b[0], 8, 0, "x") < 0) goto fail;
    for (int k = 1; k < 5; k++)
        if (get(o[k], &b[k], 8, 1, "band") < 0) goto fail;
    Py_ssize_t h2 = (h + 1) / 2, hd = h / 2, w2 = (w + 1) / 2, wd = w / 2;
    if (!need(h > 0 && w > 0 && len(&b[0]) == h * w && len(&b[1]) == h2 * w2 &&
                  len(&b[2]) == h2 * wd && len(&b[3]) == hd * w2 && len(&b[4]) == hd * wd,
              "dwt_fwd: sizes"))
        goto fail;
    tmp = PyMem_Malloc((size_t)(h * w + w + 2) * sizeof(double));
    if (!tmp) {
        PyErr_NoMemory();
        goto fail;
    }
    const double *x = F64(b[0]);
    double *lo = tmp, *hi = tmp + h2 * w, *buf = tmp + h * w;
    for (Py_ssize_t i = 0; i < h2; i++) memcpy(lo + i * w, x + 2 * i * w, w * sizeof(double));
    for (Py_ssize_t i = 0; i < hd; i++) memcpy(hi + i * w, x + (2 * i + 1) * w, w * sizeof(double));
    fwd_lines(lo, hi, h2, hd, w);                       /* vertical split */
    fwd_rows(lo, h2, w, F64(b[1]), F64(b[2]), buf);     /* LL, HL */
    fwd_rows(hi, hd, w, F64(b[3]), F64(b[4]), buf);     /* LH, HH */
    PyMem_Free(tmp);
    rel(b, 5);
    Py_RETURN_NONE;
fail:
    PyMem_Free(tmp);
    rel(b, 5);
    return NULL;
}

/* dwt_inv(ll, hl, lh, hh, (h, w), x): one level of dwt97.inverse into x (h x w) */
static PyObject *dwt_inv(PyObject *mod, PyObject *args) {
    PyObject *o[5];
    Buf b[5] = {0};
    long long h, w;
    double *tmp = NULL;
    if (!PyArg_ParseTuple(args, "OOOO(LL)O", &o[0], &o[1], &o[2], &o[3], &h, &w, &o[4]))
        return NULL;
    for (int k = 0; k < 4; k++)
        if (get(o[k], &b[k], 8, 0, "band") < 0) goto fail;
    if (get(o[4], &b[4], 8, 1, "x") < 0) goto fail;
    Py_ssize_t h2 = (h + 1) / 2, hd = h / 2, w2 = (w + 1) / 2, wd = w / 2;
    if (!need(h > 0 && w > 0 && len(&b[4]) == h * w && len(&b[0]) == h2 * w2 &&
                  len(&b[1]) == h2 * wd && len(&b[2]) == hd * w2 && len(&b[3]) == hd * wd,
              "dwt_inv: sizes"))
        goto fail;
    tmp = PyMem_Malloc((size_t)(h * w + w + 2) * sizeof(double));
    if (!tmp) {
        PyErr_NoMemory();
        goto fail;
    }
    double *lo = tmp, *hi = tmp + h2 * w, *buf = tmp + h * w, *x = F64(b[4]);
    inv_rows(F64(b[0]), F64(b[1]), h2, w, lo, buf);
    inv_rows(F64(b[2]), F64(b[3]), hd, w, hi, buf);
    inv_lines(lo, hi, h2, hd, w);                        /* vertical */
    for (Py_ssize_t i = 0; i < h2; i++) memcpy(x + 2 * i * w, lo + i * w, w * sizeof(double));
    for (Py_ssize_t i = 0; i < hd; i++) memcpy(x + (2 * i + 1) * w, hi + i * w, w * sizeof(double));
    PyMem_Free(tmp);
    rel(b, 5);
    Py_RETURN_NONE;
fail:
    PyMem_Free(tmp);
    rel(b, 5);
    return NULL;
}


/* ---- pixels: colour transforms, dequantization, post-filter (gancomp.codecs.wavelet2) ------ */

/* rgb_to_ycc(img (h*w*3 uint8), m (9 doubles), y, cb, cr): wavelet2._mix(img - 128.0, _R2Y) */
static PyObject *rgb_to_ycc(PyObject *mod, PyObject *args) {
    PyObject *o[5];
    Buf b[5] = {0};
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &o[4])) return NULL;
    if (get(o[0], &b[0], 1, 0, "image") < 0 || get(o[1], &b[1], 8, 0, "matrix") < 0) goto fail;
    for (int k = 2; k < 5; k++)
        if (get(o[k], &b[k], 8, 1, "plane") < 0) goto fail;
    Py_ssize_t n = len(&b[2]);
    if (!need(len(&b[0]) == 3 * n && len(&b[1]) == 9 && len(&b[3]) == n && len(&b[4]) == n,
              "rgb_to_ycc: sizes"))
        goto fail;
    const uint8_t *im = U8(b[0]);
    const double *m = F64(b[1]);
    double *out[3] = {F64(b[2]), F64(b[3]), F64(b[4])};
    for (Py_ssize_t i = 0; i < n; i++) {
        double x0 = (double)im[3 * i] - 128.0, x1 = (double)im[3 * i + 1] - 128.0,
               x2 = (double)im[3 * i + 2] - 128.0;
        for (int c = 0; c < 3; c++) out[c][i] = m[3 * c] * x0 + m[3 * c + 1] * x1 + m[3 * c + 2] * x2;
    }
    rel(b, 5);
    Py_RETURN_NONE;
fail:
    rel(b, 5);
    return NULL;
}

static double round_clip(double v) {
    v = nearbyint(v); /* round half to even, as np.round */
    return !(v >= 0.0) ? 0.0 : (v > 255.0 ? 255.0 : v); /* (NaN: 0, never met: finite input) */
}

/* ycc_to_rgb(y, cb, cr, (m01, m02, m11, m12, m21, m22), out (h*w*3 uint8)): the end of
 * Wavelet2Codec.decode -- per channel v = y (+ m1 * cb) (+ m2 * cr) + 128, rounded, clipped;
 * zero terms skipped as there. gray: ycc_to_rgb(y, None, None, None, out (h*w)). */
static PyObject *ycc_to_rgb(PyObject *mod, PyObject *args) {
    PyObject *o[4], *mo;
    Buf b[4] = {0};
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &mo, &o[3])) return NULL;
    int gray = o[1] == Py_None;
    double m[6] = {0};
    if (!gray && !PyArg_ParseTuple(mo, "dddddd", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]))
        return NULL;
    if (get(o[0], &b[0], 8, 0, "y") < 0 || (!gray && (get(o[1], &b[1], 8, 0, "cb") < 0 ||
                                                       get(o[2], &b[2], 8, 0, "cr") < 0)) ||
        get(o[3], &b[3], 1, 1, "out") < 0)
        goto fail;
    Py_ssize_t n = len(&b[0]);
    if (!need(len(&b[3]) == (gray ? 1 : 3) * n &&
                  (gray || (len(&b[1]) == n && len(&b[2]) == n)),
              "ycc_to_rgb: sizes"))
        goto fail;
    const double *y = F64(b[0]);
    uint8_t *out = U8(b[3]);
    if (gray) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = (uint8_t)round_clip(y[i] + 128.0);
    } else {
        const double *cb = F64(b[1]), *cr = F64(b[2]);
        for (Py_ssize_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) {
                double v = y[i], m1 = m[2 * c], m2 = m[2 * c + 1];
                if (m1 != 0.0) v = v + m1 * cb[i];
                if (m2 != 0.0) v = v + m2 * cr[i];
                out[3 * i + c] = (uint8_t)round_clip(v + 128.0);
            }
    }
    rel(b, 4);
    Py_RETURN_NONE;
fail:
    rel(b, 4);
    return NULL;
}

/* dequant(q, (o1, o2, step), out): wavelet2._planes for one band -- out = 0 where q = 0, else
 * sign(q) * (|q| + (o1 if |q| == 1 else o2)) * step. q may be a strided 2-D int64 view. */
static PyObject *dequant(PyObject *mod, PyObject *args) {
    PyObject *qo, *oo;
    double o1, o2, step;
    Py_buffer q;
    Buf ob = {0};
    if (!PyArg_ParseTuple(args, "O(ddd)O", &qo, &o1, &o2, &step, &oo)) return NULL;
    if (PyObject_GetBuffer(qo, &q, PyBUF_RECORDS_RO) < 0) return NULL;
    if (q.itemsize != 8 || q.ndim != 2) {
        PyBuffer_Release(&q);
        PyErr_SetString(PyExc_TypeError, "dequant: 2-D int64 band expected");
        return NULL;
    }
    if (get(oo, &ob, 8, 1, "out") < 0) goto fail;
    Py_ssize_t h = q.shape[0], w = q.shape[1];
    if (!need(len(&ob) == h * w, "dequant: sizes")) goto fail;
    double *out = F64(ob);
    for (Py_ssize_t r = 0; r < h; r++) {
        const char *row = (const char *)q.buf + r * q.strides[0];
        for (Py_ssize_t c = 0; c < w; c++) {
            int64_t v = *(const int64_t *)(row + c * q.strides[1]);
            if (!v) {
                out[r * w + c] = 0.0;
                continue;
            }
            double mg = (double)(v < 0 ? -v : v);
            double rr = mg == 1.0 ? mg + o1 : mg + o2;
            out[r * w + c] = (v < 0 ? -rr : rr) * step;
        }
    }
    PyBuffer_Release(&q);
    rel(&ob, 1);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&q);
    rel(&ob, 1);
    return NULL;
}

/* pf_apply(p, x, wts, pairs, out): postfilter.apply on plane x (h x w) with p = x padded
 * by r (symmetric): out = x * w0, then out += w_k * (p[+i, +j] + p[-i, -j]) pair by pair. */
static PyObject *pf_apply(PyObject *mod, PyObject *args) {
    PyObject *o[5];
    Buf b[5] = {0};
    long long h, w, r;
    if (!PyArg_ParseTuple(args, "OO(LLL)OOO", &o[0], &o[1], &h, &w, &r, &o[2], &o[3], &o[4]))
        return NULL;
    if (get(o[0], &b[0], 8, 0, "p") < 0 || get(o[1], &b[1], 8, 0, "x") < 0 ||
        get(o[2], &b[2], 8, 0, "wts") < 0 || get(o[3], &b[3], 8, 0, "pairs") < 0 ||
        get(o[4], &b[4], 8, 1, "out") < 0)
        goto fail;
    Py_ssize_t np_ = len(&b[3]) / 2, wp = w + 2 * r;
    if (!need(len(&b[0]) == (h + 2 * r) * wp && len(&b[1]) == h * w && len(&b[4]) == h * w &&
                  len(&b[2]) == np_ + 1 && np_ <= 64,
              "pf_apply: sizes"))
        goto fail;
    const double *p = F64(b[0]), *x = F64(b[1]), *wt = F64(b[2]);
    const int64_t *pr = I64(b[3]);
    double *out = F64(b[4]);
    Py_ssize_t offa[64], offb[64];
    for (Py_ssize_t k = 0; k < np_; k++) {
        if (!need(pr[2 * k] >= -r && pr[2 * k] <= r && pr[2 * k + 1] >= -r && pr[2 * k + 1] <= r,
                  "pf_apply: pair"))
            goto fail;
        offa[k] = pr[2 * k] * wp + pr[2 * k + 1];
        offb[k] = -offa[k];
    }
    for (Py_ssize_t i = 0; i < h; i++) {
        const double *pc = p + (i + r) * wp + r;
        for (Py_ssize_t j = 0; j < w; j++) {
            double acc = x[i * w + j] * wt[0];
            for (Py_ssize_t k = 0; k < np_; k++)
                acc = acc + (pc[j + offa[k]] + pc[j + offb[k]]) * wt[k + 1];
            out[i * w + j] = acc;
        }
    }
    rel(b, 5);
    Py_RETURN_NONE;
fail:
    rel(b, 5);
    return NULL;
}

/* set_tables(NQ, OQ, AQ): the context quantizers (int64, lengths 200, 200, >= 401) */
static PyObject *set_tables(PyObject *mod, PyObject *args) {
    PyObject *o[3];
    Buf b[3] = {0};
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    for (int k = 0; k < 3; k++)
        if (get(o[k], &b[k], 8, 0, "table") < 0) goto fail;
    if (!need(len(&b[0]) == 200 && len(&b[1]) == 200 && len(&b[2]) >= 401, "set_tables"))
        goto fail;
    memcpy(NQ, b[0].v.buf, sizeof(NQ));
    memcpy(OQ, b[1].v.buf, sizeof(OQ));
    memcpy(AQ, b[2].v.buf, sizeof(AQ));
    tables_set = 1;
    rel(b, 3);
    Py_RETURN_NONE;
fail:
    rel(b, 3);
    return NULL;
}

static PyMethodDef methods[] = {
    {"set_tables", set_tables, METH_VARARGS, "copy in the context quantizers"},
    {"pass_ctx", pass_ctx, METH_VARARGS, "candidates, contexts and quiet positions of a pass"},
    {"joint", joint, METH_VARARGS, "encoder: joint symbols and escapes"},
    {"fill", fill, METH_VARARGS, "decoder: values of joint symbols"},
    {"scatter", scatter, METH_VARARGS, "a pass's values into the canvases"},
    {"choose", choose, METH_VARARGS, "RDO choice of the quantized values"},
    {"dwt_fwd", dwt_fwd, METH_VARARGS, "one level of the forward CDF 9/7 transform"},
    {"dwt_inv", dwt_inv, METH_VARARGS, "one level of the inverse CDF 9/7 transform"},
    {"rgb_to_ycc", rgb_to_ycc, METH_VARARGS, "RGB - 128 to YCbCr planes"},
    {"ycc_to_rgb", ycc_to_rgb, METH_VARARGS, "YCbCr planes to rounded, clipped 8-bit RGB"},
    {"dequant", dequant, METH_VARARGS, "dequantize one band"},
    {"pf_apply", pf_apply, METH_VARARGS, "apply the post-filter to a plane"},
    {NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_w2c",
                                    "compiled inner loops of wavelet2 v3", -1, methods};

PyMODINIT_FUNC PyInit__w2c(void) {
    if (PyType_Ready(&ModelsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    Py_INCREF(&ModelsType);
    if (PyModule_AddObject(m, "Models", (PyObject *)&ModelsType) < 0) {
        Py_DECREF(&ModelsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
