/* molmap.c — sum of per-atom Gaussians on a grid (see molmap.h for the definition).
 * Per atom only its cut-off box is visited, and exp() is computed per axis (3 short
 * vectors) instead of per voxel. Atoms are bucketed into z slabs; OpenMP threads take whole
 * slabs, so writes never race and the result does not depend on the thread count beyond
 * float summation order within a voxel (atoms are added in file order in every slab). */
#include "cryolvm/mem.h"
#include "cryolvm/molmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SLAB 4 /* z planes per work unit */

void cryo_molmap_opts_default(struct cryo_molmap_opts *o, double resolution)
{
    o->resolution = resolution;
    o->sigma_factor = CRYO_MOLMAP_SIGMA_FACTOR;
    o->cutoff = CRYO_MOLMAP_CUTOFF;
    o->use_bfactor = 0;
    o->threads = 0;
}

int cryo_molmap_grid(struct cryo_volume *v, const struct cryo_model *m, double apix, double pad,
                     struct cryo_error *err)
{
    if (!(apix > 0) || !isfinite(apix))
        return cryo_fail(err, CRYO_E_INVALID, "voxel size must be > 0 (got %g)", apix);
    if (!(pad >= 0) || !isfinite(pad))
        return cryo_fail(err, CRYO_E_INVALID, "padding must be >= 0 (got %g)", pad);
    double lo[3], hi[3];
    CRYO_TRY(cryo_model_bounds(m, lo, hi, err));
    int64_t n[3];
    for (int d = 0; d < 3; d++) {
        double cells = ceil((hi[d] - lo[d] + 2 * pad) / apix - 1e-9);
        if (cells > 65535)
            return cryo_fail(err, CRYO_E_INVALID,
                             "box of %.0f voxels along %c is too large (model spans %.1f Å at %g Å/voxel)",
                             cells + 1, "xyz"[d], hi[d] - lo[d], apix);
        n[d] = (int64_t)cells + 1;
    }
    CRYO_TRY(cryo_volume_alloc(v, CRYO_DTYPE_F32, 1, n[2], n[1], n[0], err));
    memset(v->data, 0, cryo_volume_bytes(v));
    for (int d = 0; d < 3; d++) {
        v->apix[d] = apix;
        v->origin[d] = lo[d] - pad;
    }
    return CRYO_OK;
}

struct atom_job {
    double u[3];     /* centre in voxel units */
    double inv2s2[3]; /* 1/(2 sigma^2) per axis, voxel units */
    int lo[3], hi[3]; /* inclusive voxel box, clipped */
    float w;          /* Z * normalisation */
};

int cryo_molmap_render(struct cryo_volume *v, const struct cryo_model *m,
                       const struct cryo_molmap_opts *o, struct cryo_error *err)
{
    if (v->dtype != CRYO_DTYPE_F32 || !v->data)
        return cryo_fail(err, CRYO_E_INVALID, "molmap needs a float32 volume");
    if (!(o->resolution > 0) || !isfinite(o->resolution))
        return cryo_fail(err, CRYO_E_INVALID, "resolution must be > 0 (got %g)", o->resolution);
    if (!(o->sigma_factor > 0) || !isfinite(o->sigma_factor))
        return cryo_fail(err, CRYO_E_INVALID, "sigma factor must be > 0 (got %g)", o->sigma_factor);
    if (!(o->cutoff > 0) || !isfinite(o->cutoff))
        return cryo_fail(err, CRYO_E_INVALID, "cutoff must be > 0 sigma (got %g)", o->cutoff);
    for (int d = 0; d < 3; d++)
        if (!(v->apix[d] > 0))
            return cryo_fail(err, CRYO_E_INVALID, "voxel size must be > 0");
    const int64_t nx = v->nx, ny = v->ny, nz = v->nz;
    float *out = v->data;
    memset(out, 0, (size_t)nx * (size_t)ny * (size_t)nz * sizeof *out);

    struct atom_job *jobs = cryo_alloc_array(m->n ? m->n : 1, sizeof *jobs, err);
    if (!jobs)
        return CRYO_E_NOMEM;
    const double sigma0 = o->sigma_factor * o->resolution;
    const double norm = pow(2 * M_PI, -1.5);
    const int64_t nn[3] = {nx, ny, nz};
    size_t known = 0;
    for (size_t i = 0; i < m->n; i++)
        known += m->atoms[i].z > 0;
    if (m->n > 0 && known == 0) {
        free(jobs);
        return cryo_fail(err, CRYO_E_FORMAT, "none of the %zu atoms has a known element "
                         "(element columns 77-78 or the atom name): the map would be empty", m->n);
    }
    size_t njobs = 0;
    int maxw = 1;
    for (size_t i = 0; i < m->n; i++) {
        const struct cryo_atom *a = &m->atoms[i];
        if (a->z <= 0)
            continue;
        double s2 = sigma0 * sigma0;
        if (o->use_bfactor && a->b > 0)
            s2 += a->b / (8 * M_PI * M_PI);
        double s = sqrt(s2);
        struct atom_job *j = &jobs[njobs];
        int inside = 1;
        for (int d = 0; d < 3; d++) {
            double u = (a->xyz[d] - v->origin[d]) / v->apix[d];
            double sv = s / v->apix[d];
            double r = o->cutoff * sv;
            double lo = ceil(u - r), hi = floor(u + r);
            if (lo < 0)
                lo = 0;
            if (hi > (double)(nn[d] - 1))
                hi = (double)(nn[d] - 1);
            if (!(lo <= hi)) { /* also false for NaN coordinates */
                inside = 0;
                break;
            }
            j->u[d] = u;
            j->inv2s2[d] = 1.0 / (2 * sv * sv);
            j->lo[d] = (int)lo;
            j->hi[d] = (int)hi;
            if ((int)(hi - lo) + 1 > maxw)
                maxw = (int)(hi - lo) + 1;
        }
        if (!inside)
            continue;
        j->w = (float)(a->z * norm / (s2 * s));
        njobs++;
    }

    /* Bucket atoms by the slabs their z range touches (counting sort, file order kept). */
    size_t nslab = (size_t)((nz + SLAB - 1) / SLAB);
    size_t *start = cryo_alloc_array(nslab + 1, sizeof *start, err);
    if (!start) {
        free(jobs);
        return CRYO_E_NOMEM;
    }
    size_t total = 0;
    for (size_t i = 0; i < njobs; i++)
        for (int s = jobs[i].lo[2] / SLAB; s <= jobs[i].hi[2] / SLAB; s++)
            start[s + 1]++, total++;
    for (size_t s = 0; s < nslab; s++)
        start[s + 1] += start[s];
    size_t *list = cryo_alloc_array(total ? total : 1, sizeof *list, err);
    size_t *fill = cryo_alloc_array(nslab, sizeof *fill, err);
    if (!list || !fill) {
        free(list);
        free(fill);
        free(start);
        free(jobs);
        return CRYO_E_NOMEM;
    }
    for (size_t i = 0; i < njobs; i++)
        for (int s = jobs[i].lo[2] / SLAB; s <= jobs[i].hi[2] / SLAB; s++)
            list[start[s] + fill[s]++] = i;
    free(fill);

    int nthreads = o->threads > 0 ? o->threads : 0;
    int failed = 0;
#pragma omp parallel num_threads(nthreads > 0 ? nthreads : omp_get_max_threads()) if (nslab > 1)
    {
        float *ex = malloc(3 * (size_t)maxw * sizeof *ex);
        if (!ex) {
#pragma omp atomic write
            failed = 1;
        }
        float *ey = ex ? ex + maxw : NULL, *ez = ex ? ex + 2 * maxw : NULL;
#pragma omp for schedule(dynamic, 1)
        for (size_t s = 0; s < nslab; s++) {
            if (!ex)
                continue;
            int z0 = (int)(s * SLAB), z1 = z0 + SLAB - 1;
            for (size_t t = start[s]; t < start[s + 1]; t++) {
                const struct atom_job *j = &jobs[list[t]];
                int kl = j->lo[2] > z0 ? j->lo[2] : z0;
                int kh = j->hi[2] < z1 ? j->hi[2] : z1;
                for (int i = j->lo[0]; i <= j->hi[0]; i++) {
                    double d = i - j->u[0];
                    ex[i - j->lo[0]] = (float)exp(-d * d * j->inv2s2[0]);
                }
                for (int i = j->lo[1]; i <= j->hi[1]; i++) {
                    double d = i - j->u[1];
                    ey[i - j->lo[1]] = (float)exp(-d * d * j->inv2s2[1]);
                }
                for (int k = kl; k <= kh; k++) {
                    double d = k - j->u[2];
                    ez[k - kl] = (float)exp(-d * d * j->inv2s2[2]) * j->w;
                }
                const int wx = j->hi[0] - j->lo[0] + 1;
                for (int k = kl; k <= kh; k++) {
                    for (int jj = j->lo[1]; jj <= j->hi[1]; jj++) {
                        float f = ez[k - kl] * ey[jj - j->lo[1]];
                        float *row = out + ((size_t)k * (size_t)ny + (size_t)jj) * (size_t)nx + j->lo[0];
                        for (int i = 0; i < wx; i++)
                            row[i] += f * ex[i];
                    }
                }
            }
        }
        free(ex);
    }
    free(list);
    free(start);
    free(jobs);
    if (failed)
        return cryo_fail(err, CRYO_E_NOMEM, "out of memory for molmap scratch");
    return CRYO_OK;
}
