/* qscore.c — Q-scores (Pintilie et al. 2020) as mapq computes them; definition in
 * mapmodel.h. The idea: an atom resolved in the map has density that falls off like a
 * Gaussian of ~0.6 Å around it; Q is the correlation between map values sampled on shells
 * around the atom and that ideal profile. Sample points that fall nearer (0.9 r) to another
 * atom are avoided by rotating the shell's point set, so neighbours do not inflate Q.
 * Atoms are independent, so they are spread over OpenMP threads; other atoms are found
 * through a uniform 2 Å cell grid. */
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

void cryo_sphere_point(int i, int n, double p[3])
{
    /* Saff & Kuijlaars (1997) generalised spiral: heights evenly spaced, longitudes
     * advanced by 3.6/sqrt(n (1 - h^2)). The longitude is a running sum, recomputed here. */
    if (n == 1) {
        p[0] = 0, p[1] = 0, p[2] = 1;
        return;
    }
    double phi = 0;
    double h = 0;
    for (int k = 0; k <= i; k++) {
        h = -1.0 + 2.0 * k / (n - 1);
        if (k == 0 || k == n - 1)
            phi = 0;
        else
            phi = fmod(phi + 3.6 / sqrt(n * (1 - h * h)), 2 * M_PI);
    }
    double t = acos(h < -1 ? -1 : h > 1 ? 1 : h);
    p[0] = sin(t) * cos(phi);
    p[1] = sin(t) * sin(phi);
    p[2] = cos(t);
}

/* Rotation of try t: identity for t = 0, then Rz(t alpha) Ry(t beta) with irrational
 * fractions of a turn so successive tries do not repeat. */
static void try_rotation(int t, double R[9])
{
    double a = t * 2 * M_PI * 0.6180339887498949, b = t * M_PI * 0.4142135623730951;
    double ca = cos(a), sa = sin(a), cb = cos(b), sb = sin(b);
    /* Rz(a) * Ry(b) */
    R[0] = ca * cb, R[1] = -sa, R[2] = ca * sb;
    R[3] = sa * cb, R[4] = ca, R[5] = sa * sb;
    R[6] = -sb, R[7] = 0, R[8] = cb;
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

/* 1 if some atom other than `self` lies closer than sqrt(r2) to p. */
static int near_other(const struct cellgrid *g, const struct cryo_model *m, size_t self, const double p[3],
                      double r2)
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
                    if (a == self)
                        continue;
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

int cryo_qscore(const struct cryo_volume *map, const struct cryo_model *m,
                const struct cryo_qscore_opts *o, double *q, struct cryo_error *err)
{
    if (map->dtype != CRYO_DTYPE_F32 || map->c != 1 || !map->data)
        return cryo_fail(err, CRYO_E_INVALID, "Q-score needs a single-channel float32 map");
    if (!(o->sigma > 0) || !(o->r_step > 0) || !(o->r_max >= 0) || o->n_points < 1 || o->n_points > 4096 ||
        o->max_tries < 1 || !isfinite(o->sigma) || !isfinite(o->r_max))
        return cryo_fail(err, CRYO_E_INVALID,
                         "Q-score options out of range (sigma %g, r_max %g, r_step %g, points %d)", o->sigma,
                         o->r_max, o->r_step, o->n_points);
    if (m->n == 0)
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
    const int nshell = (int)floor(o->r_max / o->r_step + 1e-9) + 1;
    const int N = o->n_points;
    double h = 0.9 * o->r_max > 1.0 ? 0.9 * o->r_max : 1.0;
    struct cellgrid g;
    CRYO_TRY(grid_build(&g, m, h, err));
    double *unit = cryo_alloc_array((size_t)N * 3, sizeof *unit, err);
    double *rots = cryo_alloc_array((size_t)o->max_tries * 9, sizeof *rots, err);
    if (!unit || !rots) {
        free(unit);
        free(rots);
        free(g.head);
        free(g.next);
        return CRYO_E_NOMEM;
    }
    for (int i = 0; i < N; i++)
        cryo_sphere_point(i, N, unit + 3 * i);
    for (int t = 0; t < o->max_tries; t++)
        try_rotation(t, rots + 9 * t);
    int failed = 0;
#pragma omp parallel
    {
        double *pts = malloc(sizeof(double) * 3 * (size_t)N * 2);
        double *uu = malloc(sizeof(double) * (size_t)N * (size_t)nshell);
        double *vv = malloc(sizeof(double) * (size_t)N * (size_t)nshell);
        if (!pts || !uu || !vv) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 64)
        for (size_t a = 0; a < m->n; a++) {
            if (!pts || !uu || !vv)
                continue;
            const double *c = m->atoms[a].xyz;
            size_t k = 0;
            for (int sh = 0; sh < nshell; sh++) {
                double r = sh * o->r_step;
                double ref = 10.0 * exp(-r * r / (2 * o->sigma * o->sigma)) - 1.0;
                double excl2 = (0.9 * r) * (0.9 * r);
                int best_cnt = -1;
                double *best = pts + 3 * (size_t)N; /* best try so far */
                for (int t = 0; t < o->max_tries; t++) {
                    const double *R = rots + 9 * t;
                    int cnt = 0;
                    for (int i = 0; i < N; i++) {
                        /* this try can no longer beat the best one (ties keep the earlier) */
                        if (cnt + (N - i) <= best_cnt)
                            break;
                        const double *e = unit + 3 * i;
                        double p[3];
                        for (int d = 0; d < 3; d++)
                            p[d] = c[d] + r * (R[3 * d] * e[0] + R[3 * d + 1] * e[1] + R[3 * d + 2] * e[2]);
                        if (r > 0 && near_other(&g, m, a, p, excl2))
                            continue;
                        memcpy(pts + 3 * cnt, p, sizeof p);
                        cnt++;
                    }
                    if (cnt > best_cnt) {
                        best_cnt = cnt;
                        memcpy(best, pts, sizeof(double) * 3 * (size_t)cnt);
                    }
                    if (cnt == N || r == 0)
                        break;
                }
                for (int i = 0; i < best_cnt; i++) {
                    uu[k] = (sample(map, best + 3 * i) - avg) / sd;
                    vv[k] = ref;
                    k++;
                }
            }
            /* Pearson correlation of uu and vv */
            double mu = 0, mv = 0;
            for (size_t i = 0; i < k; i++)
                mu += uu[i], mv += vv[i];
            double qv = NAN;
            if (k >= 2) {
                mu /= (double)k, mv /= (double)k;
                double suv = 0, suu = 0, svv = 0;
                for (size_t i = 0; i < k; i++) {
                    suv += (uu[i] - mu) * (vv[i] - mv);
                    suu += (uu[i] - mu) * (uu[i] - mu);
                    svv += (vv[i] - mv) * (vv[i] - mv);
                }
                if (suu > 0 && svv > 0)
                    qv = suv / sqrt(suu * svv);
            }
            q[a] = qv;
        }
        free(pts);
        free(uu);
        free(vv);
    }
    free(unit);
    free(rots);
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
