/* resample_plan.c — where a target grid falls on the input and which transform sizes make
 * Fourier resampling onto it exact (definitions in resample.h, "Onto a grid"). Pure
 * arithmetic: resample.c does the work. */
#include "cryolvm/resample.h"

#include <math.h>

#define MAX_SIDE ((int64_t)1 << 30)

int cryo_resample_grid_for_apix(const struct cryo_volume *v, const double apix_new[3], struct cryo_grid *g,
                                struct cryo_error *err)
{
    CRYO_TRY(cryo_resample_box_for_apix(v, apix_new, g->n, err));
    for (int d = 0; d < 3; d++) {
        g->apix[d] = apix_new[d];
        g->origin[d] = v->origin[d] - v->apix[d] / 2 + apix_new[d] / 2;
    }
    return CRYO_OK;
}

/* Operation count of a mixed-radix FFT of size x, up to a constant: x times the sum of its
 * prime factors, primes above 7 counted thrice (FFTW has fast codelets for 2, 3, 5, 7 and
 * their powers; larger primes go through its generic or Rader code). */
static double fft_cost(int64_t x)
{
    double s = 0;
    int64_t r = x;
    for (int64_t p = 2; p * p <= r; p++)
        while (r % p == 0) {
            s += p <= 7 ? (double)p : 3.0 * (double)p;
            r /= p;
        }
    if (r > 1)
        s += r <= 7 ? (double)r : 3.0 * (double)r;
    return (double)x * (s > 0 ? s : 1);
}

/* The grid voxels whose cells overlap the input box [-1/2, n - 1/2) along one axis. */
static int data_span(struct cryo_resample_axis *ax, int64_t n, double a, double o, int64_t gn, double ga,
                     double go)
{
    const double s = ga / a, c = (go - o) / a; /* u_j = c + j s */
    const double lo = (-0.5 - s / 2 - c) / s, hi = ((double)n - 0.5 + s / 2 - c) / s;
    double first = floor(lo) + 1, last = ceil(hi) - 1; /* strict overlap on both sides */
    if (first < 0)
        first = 0;
    if (last > (double)(gn - 1))
        last = (double)(gn - 1);
    if (!(last >= first))
        return -1;
    ax->first = (int64_t)first;
    ax->keep = (int64_t)(last - first) + 1;
    ax->shift = c + first * s;
    return 0;
}

/* Padded size N and output transform size M along one axis (see resample.h). */
static int fourier_sizes(struct cryo_resample_axis *ax, int64_t n, double a, double ga)
{
    const double r = a / ga; /* M = N r */
    /* the kept samples must fit in one period: M >= keep */
    int64_t n0 = (int64_t)ceil((double)ax->keep / r - 1e-9);
    if (n0 < n)
        n0 = n;
    /* small boxes may pad far (a 1.0 -> 1.6 Å axis needs N = 8 k): they cost nothing */
    int64_t wide = n0 + (n / 2 > 16 ? n / 2 : 16), narrow = n0 + (n / 8 > 16 ? n / 8 : 16);
    if (wide < 64)
        wide = 64;
    double best_cost = INFINITY, best_res = INFINITY;
    int found = 0;
    for (int exact_pass = 1; exact_pass >= 0 && !found; exact_pass--) {
        const int64_t hi = exact_pass ? wide : narrow;
        for (int64_t N = n0; N <= hi; N++) {
            double Mf = round((double)N * r);
            if (Mf < (double)ax->keep)
                Mf = (double)ax->keep;
            if (!(Mf < (double)MAX_SIDE))
                return -1;
            const int64_t M = (int64_t)Mf;
            const double apix = (double)N * a / (double)M, res = fabs(apix - ga) / ga;
            const double cost = fft_cost(N) + fft_cost(M);
            int take;
            if (exact_pass)
                take = res <= CRYO_RESAMPLE_APIX_TOL && cost < best_cost;
            else /* residuals within 1 % of each other count as equal: then the cheaper */
                take = res < best_res * 0.99 || (res <= best_res * 1.01 && cost < best_cost);
            if (take) {
                found = exact_pass;
                best_cost = cost;
                if (!exact_pass)
                    best_res = res;
                ax->pad = N, ax->fft = M, ax->apix = apix, ax->residual = res;
            }
        }
    }
    ax->exact = ax->residual <= CRYO_RESAMPLE_APIX_TOL;
    return 0;
}

int cryo_resample_plan(const struct cryo_volume *in, const struct cryo_grid *g, enum cryo_resample_method method,
                       struct cryo_resample_axis ax[3], struct cryo_error *err)
{
    const int64_t n[3] = {in->nx, in->ny, in->nz};
    static const char axis[3] = {'x', 'y', 'z'};
    for (int d = 0; d < 3; d++) {
        struct cryo_resample_axis *x = &ax[d];
        *x = (struct cryo_resample_axis){0};
        if (!(in->apix[d] > 0) || !isfinite(in->apix[d]))
            return cryo_fail(err, CRYO_E_INVALID, "input voxel size along %c is %g Å; cannot resample", axis[d],
                             in->apix[d]);
        if (!(g->apix[d] > 0) || !isfinite(g->apix[d]) || !isfinite(g->origin[d]))
            return cryo_fail(err, CRYO_E_INVALID, "target voxel size along %c is %g Å; cannot resample", axis[d],
                             g->apix[d]);
        if (g->n[d] < 1 || g->n[d] > MAX_SIDE)
            return cryo_fail(err, CRYO_E_INVALID, "target box side %lld out of range (1..2^30)",
                             (long long)g->n[d]);
        if (data_span(x, n[d], in->apix[d], in->origin[d], g->n[d], g->apix[d], g->origin[d]) < 0)
            return cryo_fail(err, CRYO_E_INVALID,
                             "the target grid (%lld voxels of %g Å from %g Å) does not overlap the map "
                             "(%lld voxels of %g Å from %g Å) along %c",
                             (long long)g->n[d], g->apix[d], g->origin[d], (long long)n[d], in->apix[d],
                             in->origin[d], axis[d]);
        x->apix = g->apix[d];
        x->exact = 1;
        if (method == CRYO_RESAMPLE_FOURIER && fourier_sizes(x, n[d], in->apix[d], g->apix[d]) < 0)
            return cryo_fail(err, CRYO_E_INVALID, "resampling to %g Å makes the %c transform too large",
                             g->apix[d], axis[d]);
    }
    return CRYO_OK;
}
