/* mapmodel.c — global map-versus-model metrics (see mapmodel.h): the model map on the
 * map's grid, CC_box / CC_mask / CC_volume / CC_peaks as phenix.map_model_cc defines
 * them, the map-model FSC with its 0.143 and 0.5 crossings, and mtriage's d_model.
 * Sums are in double; the "N highest voxels" sets come from a quickselect threshold, not
 * a full sort, so 300^3 maps stay fast. */
#include "cryolvm/fft.h"
#include "cryolvm/mapmodel.h"
#include "cryolvm/mem.h"
#include "cryolvm/molmap.h"

#include <fftw3.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void cryo_mapmodel_result_free(struct cryo_mapmodel_result *r)
{
    free(r->shell_s);
    free(r->fsc);
    memset(r, 0, sizeof *r);
}

double cryo_cc_masked(const float *a, const float *b, const unsigned char *sel, size_t n)
{
    double sa = 0, sb = 0, cnt = 0;
#pragma omp parallel for reduction(+ : sa, sb, cnt) schedule(static)
    for (size_t i = 0; i < n; i++)
        if (!sel || sel[i]) {
            sa += a[i];
            sb += b[i];
            cnt += 1;
        }
    if (cnt < 2)
        return NAN;
    double ma = sa / cnt, mb = sb / cnt, sab = 0, saa = 0, sbb = 0;
#pragma omp parallel for reduction(+ : sab, saa, sbb) schedule(static)
    for (size_t i = 0; i < n; i++)
        if (!sel || sel[i]) {
            double x = a[i] - ma, y = b[i] - mb;
            sab += x * y;
            saa += x * x;
            sbb += y * y;
        }
    if (!(saa > 0) || !(sbb > 0))
        return NAN;
    return sab / sqrt(saa * sbb);
}

int cryo_atom_mask(unsigned char *sel, const struct cryo_volume *like, const struct cryo_model *m,
                   double radius, size_t *count, struct cryo_error *err)
{
    if (!(radius > 0) || !isfinite(radius))
        return cryo_fail(err, CRYO_E_INVALID, "mask radius must be > 0 Å (got %g)", radius);
    const int64_t nx = like->nx, ny = like->ny, nz = like->nz;
    const int64_t nn[3] = {nx, ny, nz};
    size_t n = cryo_volume_channel_count(like);
    memset(sel, 0, n);
    const double r2 = radius * radius;
    for (size_t a = 0; a < m->n; a++) {
        int64_t lo[3], hi[3];
        double u[3];
        int skip = 0;
        for (int d = 0; d < 3; d++) {
            u[d] = (m->atoms[a].xyz[d] - like->origin[d]) / like->apix[d];
            double rv = radius / like->apix[d];
            double l = ceil(u[d] - rv), h = floor(u[d] + rv);
            if (l < 0)
                l = 0;
            if (h > (double)(nn[d] - 1))
                h = (double)(nn[d] - 1);
            if (!(l <= h)) {
                skip = 1;
                break;
            }
            lo[d] = (int64_t)l, hi[d] = (int64_t)h;
        }
        if (skip)
            continue;
        for (int64_t k = lo[2]; k <= hi[2]; k++) {
            double dz = (k - u[2]) * like->apix[2];
            for (int64_t j = lo[1]; j <= hi[1]; j++) {
                double dy = (j - u[1]) * like->apix[1];
                double rest = r2 - dz * dz - dy * dy;
                if (rest < 0)
                    continue;
                unsigned char *row = sel + ((size_t)k * (size_t)ny + (size_t)j) * (size_t)nx;
                for (int64_t i = lo[0]; i <= hi[0]; i++) {
                    double dx = (i - u[0]) * like->apix[0];
                    if (dx * dx <= rest)
                        row[i] = 1;
                }
            }
        }
    }
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += sel[i];
    *count = c;
    return CRYO_OK;
}

/* k-th smallest (0-based) of x[0..n-1], reordering x (Hoare partition quickselect). */
static float quickselect(float *x, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (lo < hi) {
        float pivot = x[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pivot)
                i++;
            while (x[j] > pivot)
                j--;
            if (i <= j) {
                float t = x[i];
                x[i] = x[j];
                x[j] = t;
                i++;
                j--;
            }
        }
        if (kk <= j)
            hi = j;
        else if (kk >= i)
            lo = i;
        else
            return x[k];
    }
    return x[k];
}

int cryo_top_voxels(unsigned char *sel, const float *a, size_t n, size_t count, struct cryo_error *err)
{
    memset(sel, 0, n);
    if (count == 0)
        return CRYO_OK;
    if (count >= n) {
        memset(sel, 1, n);
        return CRYO_OK;
    }
    float *tmp = cryo_alloc_big(n * sizeof *tmp, err);
    if (!tmp)
        return CRYO_E_NOMEM;
    memcpy(tmp, a, n * sizeof *tmp);
    float thr = quickselect(tmp, n, n - count); /* count values are >= thr */
    cryo_free_big(tmp);
    size_t taken = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] > thr)
            sel[i] = 1, taken++;
    for (size_t i = 0; i < n && taken < count; i++)
        if (a[i] == thr)
            sel[i] = 1, taken++;
    return CRYO_OK;
}

int cryo_fsc_simple(const struct cryo_volume *a, const struct cryo_volume *b, double **s_out,
                    double **fsc_out, size_t *nshell_out, struct cryo_error *err)
{
    if (a->dtype != CRYO_DTYPE_F32 || b->dtype != CRYO_DTYPE_F32 || a->nx != b->nx || a->ny != b->ny ||
        a->nz != b->nz)
        return cryo_fail(err, CRYO_E_INVALID, "FSC needs two float32 volumes of the same shape");
    const int64_t nx = a->nx, ny = a->ny, nz = a->nz, nh = nx / 2 + 1;
    size_t nr = cryo_volume_channel_count(a), nc = (size_t)nz * (size_t)ny * (size_t)nh;
    double L = 0, nyq = INFINITY;
    const double n3[3] = {(double)nx, (double)ny, (double)nz};
    for (int d = 0; d < 3; d++) {
        L = n3[d] * a->apix[d] > L ? n3[d] * a->apix[d] : L;
        nyq = 0.5 / a->apix[d] < nyq ? 0.5 / a->apix[d] : nyq;
    }
    const double ds = 1.0 / L;
    size_t nshell = (size_t)floor(nyq / ds + 1e-9) + 1;
    float *r = cryo_alloc_big(nr * sizeof *r, err);
    fftwf_complex *fa = cryo_alloc_big(nc * sizeof *fa, err);
    fftwf_complex *fb = cryo_alloc_big(nc * sizeof *fb, err);
    double *acc = cryo_alloc_array(3 * nshell, sizeof *acc, err);
    double *s = cryo_alloc_array(nshell, sizeof *s, err);
    double *fsc = cryo_alloc_array(nshell, sizeof *fsc, err);
    int st = CRYO_OK;
    if (!r || !fa || !fb || !acc || !s || !fsc)
        st = CRYO_E_NOMEM;
    fftwf_plan p = NULL;
    if (st == CRYO_OK) {
        p = fftwf_plan_dft_r2c_3d((int)nz, (int)ny, (int)nx, r, fa, FFTW_ESTIMATE);
        if (!p)
            st = cryo_fail(err, CRYO_E_NOMEM, "FFTW could not plan the FSC transform");
    }
    if (st == CRYO_OK) {
        memcpy(r, a->data, nr * sizeof *r);
        fftwf_execute_dft_r2c(p, r, fa);
        memcpy(r, b->data, nr * sizeof *r);
        fftwf_execute_dft_r2c(p, r, fb);
        for (int64_t k = 0; k < nz; k++) {
            int64_t kk = k <= nz / 2 ? k : k - nz;
            for (int64_t j = 0; j < ny; j++) {
                int64_t jj = j <= ny / 2 ? j : j - ny;
                for (int64_t i = 0; i < nh; i++) {
                    double kx = i / (nx * a->apix[0]), ky = jj / (ny * a->apix[1]), kz = kk / (nz * a->apix[2]);
                    size_t sh = (size_t)lround(sqrt(kx * kx + ky * ky + kz * kz) / ds);
                    if (sh >= nshell)
                        continue;
                    double w = (i == 0 || (nx % 2 == 0 && i == nx / 2)) ? 1.0 : 2.0;
                    size_t idx = ((size_t)k * (size_t)ny + (size_t)j) * (size_t)nh + (size_t)i;
                    double ar = fa[idx][0], ai = fa[idx][1], br = fb[idx][0], bi = fb[idx][1];
                    acc[3 * sh] += w * (ar * br + ai * bi);
                    acc[3 * sh + 1] += w * (ar * ar + ai * ai);
                    acc[3 * sh + 2] += w * (br * br + bi * bi);
                }
            }
        }
        for (size_t q = 0; q < nshell; q++) {
            s[q] = q * ds;
            double den = sqrt(acc[3 * q + 1] * acc[3 * q + 2]);
            fsc[q] = den > 0 ? acc[3 * q] / den : 0.0;
        }
    }
    if (p)
        fftwf_destroy_plan(p);
    cryo_free_big(r);
    cryo_free_big(fa);
    cryo_free_big(fb);
    free(acc);
    if (st < 0) {
        free(s);
        free(fsc);
        return st;
    }
    *s_out = s;
    *fsc_out = fsc;
    *nshell_out = nshell;
    return CRYO_OK;
}

double cryo_fsc_crossing(const double *s, const double *fsc, size_t nshell, double thr)
{
    for (size_t i = 1; i < nshell; i++)
        if (fsc[i] < thr) {
            if (i == 1)
                return 1.0 / s[1];
            double t = (fsc[i - 1] - thr) / (fsc[i - 1] - fsc[i]);
            double sx = s[i - 1] + t * (s[i] - s[i - 1]);
            return 1.0 / sx;
        }
    return 1.0 / s[nshell - 1];
}

/* CC_mask of the model map at resolution d. */
/* mtriage's trial resolutions (cctbx maptbx.resolution_from_map_and_model,
 * get_trial_resolutions): 1.7–2.9 Å and 3.0–6.0 Å by 0.1, 6.5–10.4 Å by 0.1, 11–99 Å by 1,
 * kept within [2a, max(8, 10a)] (a = the largest voxel size, each bound rounded to 0.1 Å). */
static int trial_resolutions(double *d, double amax)
{
    double lo = round(20 * amax) / 10, hi = fmax(8.0, round(100 * amax) / 10);
    int n = 0;
    for (int i = 17; i < 30; i++)
        if (i / 10.0 >= lo - 1e-9 && i / 10.0 <= hi + 1e-9)
            d[n++] = i / 10.0;
    for (int i = 300; i < 610; i += 10)
        if (i / 100.0 >= lo - 1e-9 && i / 100.0 <= hi + 1e-9)
            d[n++] = i / 100.0;
    for (int i = 65; i < 105; i++)
        if (i / 10.0 >= lo - 1e-9 && i / 10.0 <= hi + 1e-9)
            d[n++] = i / 10.0;
    for (int i = 11; i < 100; i++)
        if (i >= lo - 1e-9 && i <= hi + 1e-9)
            d[n++] = i;
    return n;
}

enum { DM_NB = 101, DM_MAXD = 256 }; /* B = −500, −490, ..., 500 Å² */

/* d_model as phenix.mtriage defines it (cctbx maptbx.resolution_from_map_and_model.run):
 * fo = the map's Fourier coefficients, fc = those of the model with B = 0; for every overall
 * B in −500..500 Å² (step 10) and trial resolution d, the complex correlation
 *   CC(B, d) = Σ_{s<=1/d} Re(fo·conj(fc))·w / sqrt(Σ_all |fo|² · Σ_{s<=1/d} |fc|²·w²),
 * w = exp(−B s²/4), F000 left out, "all" = every coefficient to the finest trial
 * resolution (cctbx's cc_complex_complex: the full map against the truncated model map);
 * d_model is the d of the largest CC (ties: the smallest d). Our fc is the molmap of the model at the finest resolution the grid holds
 * (σ = half the largest voxel); its Gaussian fall-off is one more B, absorbed by the scan.
 * One pass over the spectrum accumulates, per resolution bin, the sums for every B (w for
 * successive B is a running product), so the scan costs 101 multiply-adds per coefficient. */
static int find_d_model(const struct cryo_volume *map, const struct cryo_model *m, struct cryo_volume *mm,
                        double *d_best, struct cryo_error *err)
{
    double amax = fmax(map->apix[0], fmax(map->apix[1], map->apix[2]));
    double dl[DM_MAXD], t[DM_MAXD];
    int K = trial_resolutions(dl, amax);
    if (K == 0)
        return cryo_fail(err, CRYO_E_INVALID, "d_model: no trial resolution fits voxels of %g Å", amax);
    for (int k = 0; k < K; k++) /* bins by s² = 1/d², ascending: d descending */
        t[k] = 1.0 / (dl[K - 1 - k] * dl[K - 1 - k]);
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, 0.5 * amax * M_PI * sqrt(2.0)); /* sigma = res/(pi sqrt 2) */
    CRYO_TRY(cryo_molmap_render(mm, m, &mo, err));
    const struct cryo_fft3 *plan;
    CRYO_TRY(cryo_fft3_get(&plan, map->nx, map->ny, map->nz, err));
    size_t nc = cryo_fft3_complex_count(plan), bytes;
    CRYO_TRY(cryo_mul_size(nc, 4 * sizeof(float), &bytes, err));
    float *fo = cryo_alloc_big(bytes, err);
    if (!fo)
        return CRYO_E_NOMEM;
    float *fc = fo + 2 * nc;
    int st = cryo_fft3_forward(plan, map->data, fo, err);
    if (st == CRYO_OK)
        st = cryo_fft3_forward(plan, mm->data, fc, err);
    const int nthr = omp_get_max_threads();
    double *acc = st == CRYO_OK ? cryo_alloc_array((size_t)nthr * (2 * DM_NB + 1) * K, sizeof *acc, err) : NULL;
    if (!acc) {
        cryo_free_big(fo);
        return st < 0 ? st : CRYO_E_NOMEM;
    }
    const int64_t nx = map->nx, ny = map->ny, nz = map->nz, hx = nx / 2 + 1;
    #pragma omp parallel num_threads(nthr)
    {
        double *mine = acc + (size_t)omp_get_thread_num() * (2 * DM_NB + 1) * K;
        #pragma omp for schedule(static)
        for (int64_t z = 0; z < nz; z++)
            for (int64_t y = 0; y < ny; y++)
                for (int64_t x = 0; x < hx; x++) {
                    if (x == 0 && y == 0 && z == 0)
                        continue; /* F000 is not a Fourier coefficient in cctbx's sense */
                    double kx = x / (nx * map->apix[0]);
                    double ky = (y <= ny / 2 ? y : y - ny) / (ny * map->apix[1]);
                    double kz = (z <= nz / 2 ? z : z - nz) / (nz * map->apix[2]);
                    double s2 = kx * kx + ky * ky + kz * kz;
                    if (s2 > t[K - 1])
                        continue;
                    int lo = 0, hi = K - 1; /* first bin with s2 <= t[k] */
                    while (lo < hi) {
                        int mid = (lo + hi) / 2;
                        if (s2 <= t[mid])
                            hi = mid;
                        else
                            lo = mid + 1;
                    }
                    /* the half spectrum holds each conjugate pair once, except x = 0 and x = nx/2 */
                    double g = (x == 0 || (nx % 2 == 0 && x == nx / 2)) ? 1 : 2;
                    size_t i = ((size_t)z * ny + (size_t)y) * hx + (size_t)x;
                    double ore = fo[2 * i], oim = fo[2 * i + 1], cre = fc[2 * i], cim = fc[2 * i + 1];
                    double a = g * (ore * cre + oim * cim), c = g * (cre * cre + cim * cim);
                    double q = exp(-2.5 * s2), w = exp(125.0 * s2); /* B = −500 first */
                    double *row = mine + (size_t)lo * (2 * DM_NB + 1);
                    for (int j = 0; j < DM_NB; j++, w *= q) {
                        row[2 * j] += w * a;
                        row[2 * j + 1] += w * w * c;
                    }
                    row[2 * DM_NB] += g * (ore * ore + oim * oim);
                }
    }
    for (int th = 1; th < nthr; th++)
        for (size_t i = 0; i < (size_t)(2 * DM_NB + 1) * K; i++)
            acc[i] += acc[(size_t)th * (2 * DM_NB + 1) * K + i];
    double best = -INFINITY, sum[2 * DM_NB] = {0}, fo_all = 0;
    for (int k = 0; k < K; k++)
        fo_all += acc[(size_t)k * (2 * DM_NB + 1) + 2 * DM_NB];
    *d_best = 0;
    for (int k = 0; k < K; k++) { /* cumulative over s² */
        for (int j = 0; j < 2 * DM_NB; j++)
            sum[j] += acc[(size_t)k * (2 * DM_NB + 1) + j];
        for (int j = 0; j < DM_NB; j++) {
            double den = sqrt(fo_all * sum[2 * j + 1]);
            double cc = den > 0 ? sum[2 * j] / den : -INFINITY;
            /* k ascends in s² (d descends): >= keeps the smallest d among ties */
            if (cc >= best && isfinite(cc)) {
                best = cc;
                *d_best = dl[K - 1 - k];
            }
        }
    }
    free(acc);
    cryo_free_big(fo);
    if (!(best > -INFINITY))
        return cryo_fail(err, CRYO_E_NUMERIC, "d_model: map or model has no Fourier power");
    return CRYO_OK;
}

/* phenix.map_model_cc's automatic atom radius (mmtbx.maps.correlation, five_cc's
 * _atom_radius): twice the first inflection point of the radial Fourier image of a carbon
 * atom, truncated at d_min and blurred by the model's mean B:
 *   image(r) = ∫_0^{1/d_min} (2/r) s f(s²/4) e^{−B s²/4} sin(2π r s) ds   (4π s² f(...) at r = 0)
 * with f the electron scattering factor of carbon (Peng et al. 1996, Acta A52:257; ITC Vol. C
 * Table 4.3.2.2): Σ a_i exp(−b_i x), x = (sin θ/λ)². Simpson's rule with 2000 intervals,
 * radii in 0.01 Å steps up to max(10, d_min), inflection where the discrete second
 * difference first turns positive — the same numerical recipe as mmtbx, so the radius
 * agrees with phenix's to its 0.01 Å step. Returns 0 if no inflection is found. */
double cryo_mapmodel_atom_radius(double d_min, double b_iso)
{
    static const double pa[5] = {0.0489, 0.2091, 0.7537, 1.1420, 0.3555};
    static const double pb[5] = {0.1140, 1.0825, 5.4281, 17.8811, 51.1341};
    const int nint = 2000;
    const double smax = 1.0 / d_min, h = smax / nint, step = 0.01;
    const double rmax = d_min > 10 ? d_min : 10;
    double prev2 = 0, prev1 = 0;
    int count = 0;
    for (double r = 0; r < rmax; r += step, count++) {
        double acc = 0;
        for (int k = 0; k <= nint; k++) {
            double s = k * h, x = 0.25 * s * s, f = 0;
            for (int i = 0; i < 5; i++)
                f += pa[i] * exp(-pb[i] * x);
            f *= exp(-b_iso * x);
            double g = r > 1e-9 ? 2.0 / r * s * f * sin(2 * M_PI * r * s) : 4 * M_PI * s * s * f;
            acc += g * (k == 0 || k == nint ? 1 : (k % 2 ? 4 : 2));
        }
        double v = acc * h / 3;
        /* second difference centred on the previous radius (index count − 1) */
        if (count >= 2 && prev2 + v - 2 * prev1 > 0)
            return 2 * (r - 1.5 * step); /* midpoint of radii count−2 and count−1, doubled */
        prev2 = prev1;
        prev1 = v;
    }
    return 0;
}

int cryo_mapmodel_eval(const struct cryo_volume *map, const struct cryo_model *m,
                       const struct cryo_mapmodel_opts *o, struct cryo_mapmodel_result *r,
                       struct cryo_error *err)
{
    memset(r, 0, sizeof *r);
    if (map->dtype != CRYO_DTYPE_F32 || map->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "map-model metrics need a single-channel float32 map");
    if (!(o->resolution > 0) || !isfinite(o->resolution))
        return cryo_fail(err, CRYO_E_INVALID, "resolution must be > 0 Å (got %g)", o->resolution);
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_INVALID, "model has no atoms");
    const size_t n = cryo_volume_channel_count(map);
    struct cryo_volume mm;
    cryo_volume_init(&mm);
    CRYO_TRY(cryo_volume_alloc(&mm, CRYO_DTYPE_F32, 1, map->nz, map->ny, map->nx, err));
    memcpy(mm.apix, map->apix, sizeof mm.apix);
    memcpy(mm.origin, map->origin, sizeof mm.origin);
    unsigned char *mask = cryo_alloc_big(n, err), *sel = cryo_alloc_big(n, err), *sel2 = cryo_alloc_big(n, err);
    int st = (!mask || !sel || !sel2) ? CRYO_E_NOMEM : CRYO_OK;
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, o->resolution);
    if (st == CRYO_OK)
        st = cryo_molmap_render(&mm, m, &mo, err);
    if (o->mask_radius > 0) {
        r->mask_radius = o->mask_radius;
    } else {
        double bsum = 0;
        for (size_t i = 0; i < m->n; i++)
            bsum += m->atoms[i].b;
        r->mask_radius = cryo_mapmodel_atom_radius(o->resolution, bsum / (double)m->n);
        if (!(r->mask_radius > 0))
            r->mask_radius = fmax(3.0, fmin(10.0, o->resolution));
    }
    if (st == CRYO_OK)
        st = cryo_atom_mask(mask, map, m, r->mask_radius, &r->n_mask, err);
    if (st == CRYO_OK && r->n_mask == 0)
        st = cryo_fail(err, CRYO_E_INVALID, "no atom of the model lies inside the map's box");
    const float *a = map->data, *b = mm.data;
    if (st == CRYO_OK) {
        r->cc_box = cryo_cc_masked(a, b, NULL, n);
        r->cc_mask = cryo_cc_masked(a, b, mask, n);
        st = cryo_top_voxels(sel, b, n, r->n_mask, err);
    }
    if (st == CRYO_OK) {
        r->cc_volume = cryo_cc_masked(a, b, sel, n);
        st = cryo_top_voxels(sel2, a, n, r->n_mask, err);
    }
    if (st == CRYO_OK) {
        for (size_t i = 0; i < n; i++)
            sel2[i] |= sel[i];
        r->cc_peaks = cryo_cc_masked(a, b, sel2, n);
        if (!isfinite(r->cc_box))
            st = cryo_fail(err, CRYO_E_NUMERIC, "map or model map is constant: correlation undefined");
    }
    if (st == CRYO_OK)
        st = cryo_fsc_simple(map, &mm, &r->shell_s, &r->fsc, &r->nshell, err);
    if (st == CRYO_OK) {
        r->d_fsc_0143 = cryo_fsc_crossing(r->shell_s, r->fsc, r->nshell, 0.143);
        r->d_fsc_05 = cryo_fsc_crossing(r->shell_s, r->fsc, r->nshell, 0.5);
    }
    if (st == CRYO_OK && o->d_model)
        st = find_d_model(map, m, &mm, &r->d_model, err);
    cryo_free_big(mask);
    cryo_free_big(sel);
    cryo_free_big(sel2);
    cryo_volume_free(&mm);
    if (st < 0)
        cryo_mapmodel_result_free(r);
    return st;
}
