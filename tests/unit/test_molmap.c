/* test_molmap.c — molmap density against its analytic properties: integral = Z, peak
 * height, second moment = sigma^2 (+ B/(8 pi^2)), cut-off box, grid placement, and
 * identical results for 1 and 2 threads. The voxel-by-voxel comparison with the numpy
 * reference (tests/ref/molmap_ref.py) is in tests/bats/model-map.bats. */
#include "cryolvm/molmap.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void one_atom(struct cryo_model *m, double x, double y, double z, const char *el, float b)
{
    struct cryo_atom a;
    memset(&a, 0, sizeof a);
    a.xyz[0] = x, a.xyz[1] = y, a.xyz[2] = z;
    snprintf(a.element, sizeof a.element, "%s", el);
    a.z = cryo_element_z(el);
    a.occ = 1;
    a.b = b;
    strcpy(a.name, el);
    strcpy(a.resname, "UNK");
    cryo_model_push(m, &a, NULL);
}

static void make_grid(struct cryo_volume *v, int n, double apix, double org)
{
    cryo_volume_init(v);
    cryo_volume_alloc(v, CRYO_DTYPE_F32, 1, n, n, n, NULL);
    for (int d = 0; d < 3; d++)
        v->apix[d] = apix, v->origin[d] = org;
}

static double moment2(const struct cryo_volume *v, double cx, int axis, double *sum)
{
    const float *p = v->data;
    double s = 0, s2 = 0;
    for (int64_t k = 0; k < v->nz; k++)
        for (int64_t j = 0; j < v->ny; j++)
            for (int64_t i = 0; i < v->nx; i++) {
                double w = p[(k * v->ny + j) * v->nx + i];
                int64_t idx[3] = {i, j, k};
                double x = v->origin[axis] + idx[axis] * v->apix[axis] - cx;
                s += w;
                s2 += w * x * x;
            }
    *sum = s;
    return s2 / s;
}

TEST(integral_peak_and_width)
{
    struct cryo_model m;
    cryo_model_init(&m);
    one_atom(&m, 10.0, 10.0, 10.0, "C", 0);
    struct cryo_volume v;
    make_grid(&v, 41, 0.5, 0.0); /* atom exactly on voxel (20,20,20) */
    struct cryo_molmap_opts o;
    cryo_molmap_opts_default(&o, 3.0);
    o.cutoff = 8; /* keep the tails so the integral is exact */
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_molmap_render(&v, &m, &o, &err), 0);
    double sigma = 3.0 / (M_PI * sqrt(2.0)), sum;
    double var = moment2(&v, 10.0, 0, &sum);
    CHECK_CLOSE(sum * 0.125, 6.0, 1e-5); /* integral = Z (voxel volume 0.125 Å^3) */
    CHECK_CLOSE(var, sigma * sigma, 1e-5);
    const float *p = v.data;
    double peak = 6.0 * pow(2 * M_PI, -1.5) / (sigma * sigma * sigma);
    CHECK_CLOSE(p[(20 * 41 + 20) * 41 + 20], peak, 1e-6);
    /* a voxel off-centre: (21,19,23) */
    double r2 = 0.25 + 0.25 + 2.25;
    CHECK_CLOSE(p[(23 * 41 + 19) * 41 + 21], peak * exp(-r2 / (2 * sigma * sigma)), 1e-6);
    cryo_volume_free(&v);
    cryo_model_free(&m);
}

TEST(bfactor_widens)
{
    struct cryo_model m;
    cryo_model_init(&m);
    one_atom(&m, 10.3, 9.8, 10.1, "O", 40.0f);
    struct cryo_volume v;
    make_grid(&v, 61, 0.4, -2.0);
    struct cryo_molmap_opts o;
    cryo_molmap_opts_default(&o, 2.0);
    o.cutoff = 9;
    o.use_bfactor = 1;
    CHECK_EQ_INT(cryo_molmap_render(&v, &m, &o, NULL), 0);
    double s0 = 2.0 / (M_PI * sqrt(2.0)), sum;
    double want = s0 * s0 + 40.0 / (8 * M_PI * M_PI);
    CHECK_CLOSE(moment2(&v, 9.8, 1, &sum), want, 1e-5);
    CHECK_CLOSE(sum * 0.064, 8.0, 1e-5);
    cryo_volume_free(&v);
    cryo_model_free(&m);
}

TEST(cutoff_box)
{
    struct cryo_model m;
    cryo_model_init(&m);
    one_atom(&m, 0.0, 0.0, 0.0, "N", 0);
    struct cryo_volume v;
    make_grid(&v, 21, 0.5, -5.0); /* atom on voxel 10 */
    struct cryo_molmap_opts o;
    cryo_molmap_opts_default(&o, 4.0); /* sigma = 0.900 Å = 1.80 voxels */
    o.cutoff = 2.0;                    /* box half-width 3.6 voxels: 7..13 */
    CHECK_EQ_INT(cryo_molmap_render(&v, &m, &o, NULL), 0);
    const float *p = v.data;
    CHECK(p[(10 * 21 + 10) * 21 + 13] > 0);
    CHECK(p[(10 * 21 + 10) * 21 + 14] == 0);
    CHECK(p[(10 * 21 + 10) * 21 + 7] > 0);
    CHECK(p[(10 * 21 + 10) * 21 + 6] == 0);
    CHECK(p[(13 * 21 + 13) * 21 + 13] > 0); /* box, not sphere: the corner is inside */
    cryo_volume_free(&v);
    cryo_model_free(&m);
}

TEST(threads_identical_and_atoms_outside)
{
    struct cryo_model m;
    cryo_model_init(&m);
    uint64_t st = 42;
    static const char *els[] = {"C", "N", "O", "S"};
    for (int i = 0; i < 3000; i++)
        one_atom(&m, 20 + 22 * tu_rand(&st), 20 + 22 * tu_rand(&st), 20 + 22 * tu_rand(&st),
                 els[i % 4], 0);
    one_atom(&m, 500, 500, 500, "C", 0); /* far outside the grid: ignored */
    struct cryo_volume a, b;
    make_grid(&a, 48, 0.9, -1.0);
    make_grid(&b, 48, 0.9, -1.0);
    struct cryo_molmap_opts o;
    cryo_molmap_opts_default(&o, 3.0);
    o.threads = 1;
    CHECK_EQ_INT(cryo_molmap_render(&a, &m, &o, NULL), 0);
    o.threads = 2;
    CHECK_EQ_INT(cryo_molmap_render(&b, &m, &o, NULL), 0);
    CHECK(memcmp(a.data, b.data, cryo_volume_bytes(&a)) == 0);
    cryo_volume_free(&a);
    cryo_volume_free(&b);
    cryo_model_free(&m);
}

TEST(grid_around_model)
{
    struct cryo_model m;
    cryo_model_init(&m);
    one_atom(&m, 1.0, 2.0, 3.0, "C", 0);
    one_atom(&m, 11.0, 4.0, 3.5, "C", 0);
    struct cryo_volume v;
    cryo_volume_init(&v);
    CHECK_EQ_INT(cryo_molmap_grid(&v, &m, 1.0, 6.0, NULL), 0);
    CHECK_EQ_INT(v.nx, 23); /* ceil((10 + 12) / 1) + 1 */
    CHECK_EQ_INT(v.ny, 15);
    CHECK_EQ_INT(v.nz, 14);
    CHECK_CLOSE(v.origin[0], -5.0, 1e-12);
    CHECK_CLOSE(v.origin[2], -3.0, 1e-12);
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_molmap_grid(&v, &m, 0.0, 6.0, &err), CRYO_E_INVALID);
    struct cryo_model empty;
    cryo_model_init(&empty);
    CHECK_EQ_INT(cryo_molmap_grid(&v, &empty, 1.0, 6.0, &err), CRYO_E_INVALID);
    struct cryo_molmap_opts o;
    cryo_molmap_opts_default(&o, -1.0);
    CHECK_EQ_INT(cryo_molmap_render(&v, &m, &o, &err), CRYO_E_INVALID);
    cryo_volume_free(&v);
    cryo_model_free(&m);
}

int main(void)
{
    return RUN_TESTS(integral_peak_and_width, bfactor_widens, cutoff_box,
                     threads_identical_and_atoms_outside, grid_around_model);
}
