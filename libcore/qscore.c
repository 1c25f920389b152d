/* qscore.c — Q-scores (Pintilie et al. 2020) exactly as mapq 1.9.11 computes them
 * (gregdp/mapq, qscores.py, function Qscore with numPts=8, toRAD=2.0, dRAD=0.1); the
 * definition is in mapmodel.h. An atom resolved in the map has density that falls off like
 * a Gaussian of ~0.6 Å around it; Q is the correlation between map values sampled on
 * shells around the atom and that ideal profile. On each shell mapq tries spirals of 8,
 * 10, 12, ... points and keeps the first whose points clear of other atoms (0.9 R) number
 * at least 8, so neighbours do not inflate Q. Atoms are independent, so they are spread
 * over OpenMP threads; other atoms are found through a uniform cell grid. */
#include "cryolvm/mapmodel.h"
#include "cryolvm/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cryo_qscore_opts_default(struct cryo_qscore_opts *o)
{
    o->sigma = 0.6;
    o->r_max = 2.0;
    o->r_step = 0.1;
    o->n_points = 8;
    o->max_tries = 50;
}

double cryo_qscore_expected(double d) { return -0.1775 * d + 1.1192; }

double cryo_qscore_mean(const double *q, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(q[i]))
            s += q[i], k++;
    return k ? s / (double)k : NAN;
}

void cryo_sphere_points(int n, double *p)
{
    /* mapq's SpherePts (Saff & Kuijlaars 1997 spiral): for k = 0..n-1 the height
     * h = -1 + 2k/(n-1), polar angle acos(h); the longitude is 0 at both poles and
     * otherwise the previous one plus 3.6/sqrt(n (1 - h^2)), modulo 2 pi. */
    if (n == 1) {
        p[0] = 0, p[1] = 0, p[2] = 1;
        return;
    }
    double lon = 0;
    for (int k = 0; k < n; k++) {
        double h = -1.0 + 2.0 * k / (n - 1);
        double lat = acos(h);
        lon = k == 0 || k == n - 1 ? 0 : fmod(lon + 3.6 / sqrt(n * (1.0 - h * h)), 2 * M_PI);
        p[3 * k] = sin(lat) * cos(lon);
        p[3 * k + 1] = sin(lat) * sin(lon);
        p[3 * k + 2] = cos(lat);
    }
}

static double sample(const struct cryo_volume *v, const double p[3])
{
    double u[3];
    int64_t i0[3];
    double f[3];
    const int64_t n[3] = {v->nx, v->ny, v->nz};
    for (int d = 0; d < 3; d++) {
        u[d] = (p[d] - v->origin[d]) / v->apix[d];
        if (!(u[d] >= 0) || u[d] > (double)(n[d] - 1))
            return 0.0; /* outside the box: no density */
        i0[d] = (int64_t)floor(u[d]);
        if (i0[d] >= n[d] - 1)
            i0[d] = n[d] >= 2 ? n[d] - 2 : 0;
        f[d] = n[d] >= 2 ? u[d] - (double)i0[d] : 0;
    }
    const float *x = v->data;
    double acc = 0;
    for (int dz = 0; dz < 2; dz++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                int64_t ii = i0[0] + (n[0] >= 2 ? dx : 0), jj = i0[1] + (n[1] >= 2 ? dy : 0),
                        kk = i0[2] + (n[2] >= 2 ? dz : 0);
                double w = (dx ? f[0] : 1 - f[0]) * (dy ? f[1] : 1 - f[1]) * (dz ? f[2] : 1 - f[2]);
                if (w != 0)
                    acc += w * x[((size_t)kk * (size_t)n[1] + (size_t)jj) * (size_t)n[0] + (size_t)ii];
            }
    return acc;
}

struct cellgrid {
    double lo[3], h;
    int64_t n[3];
    size_t *head, *next; /* linked lists of atom indices, SIZE_MAX terminated */
};

static int grid_build(struct cellgrid *g, const struct cryo_model *m, double h, struct cryo_error *err)
{
    double hi[3];
    CRYO_TRY(cryo_model_bounds(m, g->lo, hi, err));
    g->h = h;
    size_t ncell = 1;
    for (int d = 0; d < 3; d++) {
        g->n[d] = (int64_t)floor((hi[d] - g->lo[d]) / h) + 1;
        if (g->n[d] > 100000)
            return cryo_fail(err, CRYO_E_INVALID, "model spans %.0f Å: too large", hi[d] - g->lo[d]);
        CRYO_TRY(cryo_mul_size(ncell, (size_t)g->n[d], &ncell, err));
    }
    g->head = cryo_alloc_array(ncell, sizeof *g->head, err);
    g->next = cryo_alloc_array(m->n, sizeof *g->next, err);
    if (!g->head || !g->next) {
        free(g->head);
        free(g->next);
        return CRYO_E_NOMEM;
    }
    for (size_t c = 0; c < ncell; c++)
        g->head[c] = SIZE_MAX;
    for (size_t a = m->n; a-- > 0;) {
        size_t c = 0;
        for (int d = 2; d >= 0; d--)
            c = c * (size_t)g->n[d] + (size_t)floor((m->atoms[a].xyz[d] - g->lo[d]) / h);
        g->next[a] = g->head[c];
        g->head[c] = a;
    }
    return CRYO_OK;
}

/* 1 if some atom lies closer than sqrt(r2) to p. The atom being scored is included, as in
 * mapq: it lies at exactly R > 0.9 R from its own sample points, so it never counts. */
static int near_any(const struct cellgrid *g, const struct cryo_model *m, const double p[3], double r2)
{
    int64_t c[3];
    for (int d = 0; d < 3; d++)
        c[d] = (int64_t)floor((p[d] - g->lo[d]) / g->h);
    for (int64_t k = c[2] - 1; k <= c[2] + 1; k++) {
        if (k < 0 || k >= g->n[2])
            continue;
        for (int64_t j = c[1] - 1; j <= c[1] + 1; j++) {
            if (j < 0 || j >= g->n[1])
                continue;
            for (int64_t i = c[0] - 1; i <= c[0] + 1; i++) {
                if (i < 0 || i >= g->n[0])
                    continue;
                size_t cell = ((size_t)k * (size_t)g->n[1] + (size_t)j) * (size_t)g->n[0] + (size_t)i;
                for (size_t a = g->head[cell]; a != SIZE_MAX; a = g->next[a]) {
                    const double *x = m->atoms[a].xyz;
                    double dx = x[0] - p[0], dy = x[1] - p[1], dz = x[2] - p[2];
                    if (dx * dx + dy * dy + dz * dz < r2)
                        return 1;
                }
            }
        }
    }
    return 0;
}

/* Pearson correlation of u and v; 0 when either side is constant, as Chimera's
 * FitMap.overlap_and_correlation (which mapq calls) returns. */
static double pearson(const double *u, const double *v, size_t k)
{
    double mu = 0, mv = 0;
    for (size_t i = 0; i < k; i++)
        mu += u[i], mv += v[i];
    mu /= (double)k, mv /= (double)k;
    double suv = 0, suu = 0, svv = 0;
    for (size_t i = 0; i < k; i++) {
        suv += (u[i] - mu) * (v[i] - mv);
        suu += (u[i] - mu) * (u[i] - mu);
        svv += (v[i] - mv) * (v[i] - mv);
    }
    return suu > 0 && svv > 0 ? suv / sqrt(suu * svv) : 0.0;
}

/* mapq's radii: R = step, 2 step, ... while R < r_max + step/10 (mapq: RAD < toRAD + 0.01
 * with dRAD = 0.1), R accumulated by repeated addition exactly as mapq does. */
static int shell_count(const struct cryo_qscore_opts *o)
{
    int n = 0;
    for (double R = o->r_step; R < o->r_max + 0.1 * o->r_step; R += o->r_step)
        n++;
    return n;
}

int cryo_qscore(const struct cryo_volume *map, const struct cryo_model *m,
                const struct cryo_qscore_opts *o, double *q, struct cryo_error *err)
{
    return cryo_qscore_among(map, m, NULL, o, q, err);
}

int cryo_qscore_among(const struct cryo_volume *map, const struct cryo_model *m, const struct cryo_model *env,
                      const struct cryo_qscore_opts *o, double *q, struct cryo_error *err)
{
    if (map->dtype != CRYO_DTYPE_F32 || map->c != 1 || !map->data)
        return cryo_fail(err, CRYO_E_INVALID, "Q-score needs a single-channel float32 map");
    /* the limits keep the spiral table and the per-thread scratch (shells x the last
     * try's points) within tens of megabytes */
    if (!(o->sigma > 0) || !(o->r_step > 0) || !(o->r_max >= 0) || o->n_points < 1 || o->n_points > 1024 ||
        o->max_tries < 1 || o->max_tries > 1024 || !isfinite(o->sigma) || !isfinite(o->r_max) ||
        !(o->r_max / o->r_step <= 1000))
        return cryo_fail(err, CRYO_E_INVALID,
                         "Q-score options out of range (sigma %g, r_max %g, r_step %g, points %d, tries %d)",
                         o->sigma, o->r_max, o->r_step, o->n_points, o->max_tries);
    if (!env)
        env = m;
    if (m->n == 0 || env->n == 0)
        return cryo_fail(err, CRYO_E_INVALID, "model has no atoms");
    const size_t n = cryo_volume_channel_count(map);
    const float *x = map->data;
    double s = 0, s2 = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double avg = s / (double)n;
#pragma omp parallel for reduction(+ : s2) schedule(static)
    for (size_t i = 0; i < n; i++)
        s2 += (x[i] - avg) * (x[i] - avg);
    double sd = sqrt(s2 / (double)n);
    if (!(sd > 0) || !isfinite(sd))
        return cryo_fail(err, CRYO_E_NUMERIC, "map is flat or not finite: Q-score undefined");
    const int N = o->n_points, T = o->max_tries, nshell = shell_count(o);
    const int most = N + 2 * (T - 1); /* points in the last try's spiral */
    /* cells at least as wide as the largest clearance radius, so 3x3x3 cells suffice */
    struct cellgrid g;
    CRYO_TRY(grid_build(&g, env, fmax(1.0, o->r_max + o->r_step), err));
    /* the spirals of every try, one after another: try t has N + 2t points from off[t] */
    size_t total = (size_t)T * (size_t)N + (size_t)T * (size_t)(T - 1);
    double *unit = cryo_alloc_array(total * 3, sizeof *unit, err);
    size_t *off = cryo_alloc_array((size_t)T, sizeof *off, err);
    if (!unit || !off) {
        free(unit);
        free(off);
        free(g.head);
        free(g.next);
        return CRYO_E_NOMEM;
    }
    for (int t = 0, k = 0; t < T; t++) {
        off[t] = (size_t)k;
        cryo_sphere_points(N + 2 * t, unit + 3 * (size_t)k);
        k += N + 2 * t;
    }
    const size_t cap = (size_t)N + (size_t)nshell * (size_t)most;
    int failed = 0;
#pragma omp parallel
    {
        double *pts = malloc(sizeof(double) * 3 * (size_t)most);
        double *uu = malloc(sizeof(double) * cap);
        double *vv = malloc(sizeof(double) * cap);
        if (!pts || !uu || !vv) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 64)
        for (size_t a = 0; a < m->n; a++) {
            if (!pts || !uu || !vv)
                continue;
            const double *c = m->atoms[a].xyz;
            /* radius 0: the value at the atom, counted N times (mapq repeats it numPts times) */
            size_t k = 0;
            double u0 = (sample(map, c) - avg) / sd;
            for (int i = 0; i < N; i++, k++)
                uu[k] = u0, vv[k] = 1.0;
            int sh = 0;
            for (double R = o->r_step; sh < nshell; R += o->r_step, sh++) {
                double ref = exp(-R * R / (2 * o->sigma * o->sigma));
                double excl2 = (0.9 * R) * (0.9 * R);
                /* try N, N + 2, N + 4, ... spiral points; the first try that leaves at least
                 * N of them clear of every atom gives all its clear points. None: no points. */
                for (int t = 0; t < T; t++) {
                    const int nt = N + 2 * t;
                    const double *e = unit + 3 * off[t];
                    int cnt = 0;
                    for (int i = 0; i < nt; i++) {
                        /* this try can no longer reach N clear points */
                        if (cnt + (nt - i) < N)
                            break;
                        double p[3];
                        for (int d = 0; d < 3; d++)
                            p[d] = c[d] + e[3 * i + d] * R;
                        if (near_any(&g, env, p, excl2))
                            continue;
                        memcpy(pts + 3 * cnt, p, sizeof p);
                        cnt++;
                    }
                    if (cnt >= N) {
                        for (int i = 0; i < cnt; i++, k++) {
                            uu[k] = (sample(map, pts + 3 * i) - avg) / sd;
                            vv[k] = ref;
                        }
                        break;
                    }
                }
            }
            q[a] = pearson(uu, vv, k);
        }
        free(pts);
        free(uu);
        free(vv);
    }
    free(unit);
    free(off);
    free(g.head);
    free(g.next);
    if (failed)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory for Q-score scratch");
    return CRYO_OK;
}

static int same_res(const struct cryo_atom *a, const struct cryo_atom *b)
{
    return a->resseq == b->resseq && a->icode == b->icode && strcmp(a->chain, b->chain) == 0 &&
           strcmp(a->resname, b->resname) == 0;
}

int cryo_qscore_write_atoms(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                            struct cryo_error *err)
{
    int bad = fprintf(f, "chain\tresseq\ticode\tresname\tatom\telement\tq\n") < 0;
    for (size_t i = 0; i < m->n && !bad; i++) {
        const struct cryo_atom *a = &m->atoms[i];
        bad = fprintf(f, "%s\t%d\t%c\t%s\t%s\t%s\t%.4f\n", a->chain[0] ? a->chain : "-", a->resseq,
                      a->icode == ' ' ? '-' : a->icode, a->resname, a->name, a->element, q[i]) < 0;
    }
    if (bad || fflush(f) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: write failed", name);
    return CRYO_OK;
}

int cryo_qscore_write_residues(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                               struct cryo_error *err)
{
    int bad = fprintf(f, "chain\tresseq\ticode\tresname\tn_atoms\tq\n") < 0;
    size_t i = 0;
    while (i < m->n && !bad) {
        size_t j = i;
        double s = 0;
        size_t k = 0;
        while (j < m->n && same_res(&m->atoms[j], &m->atoms[i])) {
            if (isfinite(q[j]))
                s += q[j], k++;
            j++;
        }
        const struct cryo_atom *a = &m->atoms[i];
        bad = fprintf(f, "%s\t%d\t%c\t%s\t%zu\t%.4f\n", a->chain[0] ? a->chain : "-", a->resseq,
                      a->icode == ' ' ? '-' : a->icode, a->resname, j - i, k ? s / (double)k : NAN) < 0;
        i = j;
    }
    if (bad || fflush(f) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: write failed", name);
    return CRYO_OK;
}

int cryo_qscore_write_defattr(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                              struct cryo_error *err)
{
    int bad = fprintf(f, "# Q-scores (Pintilie et al. 2020, as mapq computes them), written by cryolvm\n"
                         "attribute: qscore\nrecipient: atoms\nmatch mode: 1-to-1\n") < 0;
    for (size_t i = 0; i < m->n && !bad; i++) {
        const struct cryo_atom *a = &m->atoms[i];
        if (!isfinite(q[i]))
            continue;
        char ic[2] = {a->icode == ' ' ? 0 : a->icode, 0};
        bad = fprintf(f, "\t%s%s:%d%s@%s\t%.4f\n", a->chain[0] ? "/" : "", a->chain, a->resseq, ic, a->name,
                      q[i]) < 0;
    }
    if (bad || fflush(f) != 0)
        return cryo_fail(err, CRYO_E_IO, "%s: write failed", name);
    return CRYO_OK;
}
