/* test_qscore.c — map-model metrics and Q-score on synthetic cases with known answers:
 * correlations of affinely related data are +-1; the top-N selection is exact with ties;
 * the FSC of a map with itself is 1; a molmap map scored against its own model gives
 * CC = 1 and d_model = the molmap resolution; an isolated atom drawn as a 0.6 Å Gaussian
 * has Q ~ 1 and blurrier maps give lower Q; sample points near other atoms are avoided.
 * The comparison with an independent numpy Q-score is in tests/bats/mapmodel.bats. */
#include "cryolvm/mapmodel.h"
#include "cryolvm/molmap.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void add_atom(struct cryo_model *m, double x, double y, double z, const char *el, int resseq)
{
    struct cryo_atom a;
    memset(&a, 0, sizeof a);
    a.xyz[0] = x, a.xyz[1] = y, a.xyz[2] = z;
    snprintf(a.element, sizeof a.element, "%s", el);
    snprintf(a.name, sizeof a.name, "%s", el);
    strcpy(a.resname, "ALA");
    strcpy(a.chain, "A");
    a.resseq = resseq;
    a.icode = ' ';
    a.altloc = ' ';
    a.occ = 1;
    a.z = cryo_element_z(el);
    cryo_model_push(m, &a, NULL);
}

static void grid(struct cryo_volume *v, int n, double apix, double org)
{
    cryo_volume_init(v);
    cryo_volume_alloc(v, CRYO_DTYPE_F32, 1, n, n, n, NULL);
    for (int d = 0; d < 3; d++)
        v->apix[d] = apix, v->origin[d] = org;
}

TEST(cc_and_top_voxels)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6], c[6];
    for (int i = 0; i < 6; i++)
        b[i] = 2 * a[i] + 1, c[i] = -a[i];
    CHECK_CLOSE(cryo_cc_masked(a, b, NULL, 6), 1.0, 1e-12);
    CHECK_CLOSE(cryo_cc_masked(a, c, NULL, 6), -1.0, 1e-12);
    unsigned char sel[6] = {1, 0, 0, 0, 0, 0};
    CHECK(isnan(cryo_cc_masked(a, b, sel, 6))); /* one voxel: undefined */
    float t[8] = {5, 1, 5, 3, 9, 5, 0, 2};
    unsigned char s[8];
    CHECK_EQ_INT(cryo_top_voxels(s, t, 8, 3, NULL), 0);
    /* 9, then two of the three 5s: the first two by index */
    unsigned char want[8] = {1, 0, 1, 0, 1, 0, 0, 0};
    CHECK(memcmp(s, want, 8) == 0);
    CHECK_EQ_INT(cryo_top_voxels(s, t, 8, 8, NULL), 0);
    int n = 0;
    for (int i = 0; i < 8; i++)
        n += s[i];
    CHECK_EQ_INT(n, 8);
}

TEST(fsc_self_and_crossing)
{
    struct cryo_volume v;
    grid(&v, 24, 1.5, 0);
    uint64_t st = 9;
    float *p = v.data;
    for (int i = 0; i < 24 * 24 * 24; i++)
        p[i] = (float)tu_rand(&st);
    double *s, *f;
    size_t ns;
    CHECK_EQ_INT(cryo_fsc_simple(&v, &v, &s, &f, &ns, NULL), 0);
    CHECK_EQ_INT(ns, 13);
    for (size_t i = 1; i < ns; i++)
        CHECK_CLOSE(f[i], 1.0, 1e-6);
    CHECK_CLOSE(cryo_fsc_crossing(s, f, ns, 0.143), 3.0, 1e-9); /* never crosses: Nyquist */
    free(s);
    free(f);
    double ss[4] = {0, 0.1, 0.2, 0.3}, ff[4] = {1, 0.9, 0.3, 0.1};
    /* 0.5 is crossed between 0.1 (0.9) and 0.2 (0.3): s = 0.1 + 0.4/0.6*0.1 */
    CHECK_CLOSE(cryo_fsc_crossing(ss, ff, 4, 0.5), 1.0 / (0.1 + 0.4 / 0.6 * 0.1), 1e-12);
    cryo_volume_free(&v);
}

static void small_model(struct cryo_model *m)
{
    cryo_model_init(m);
    uint64_t st = 17;
    static const char *els[] = {"C", "N", "O", "C", "S"};
    /* a random-walk chain of 60 atoms, 1.5 Å steps */
    double p[3] = {15, 15, 15};
    for (int i = 0; i < 60; i++) {
        add_atom(m, p[0], p[1], p[2], els[i % 5], i / 5 + 1);
        double d[3] = {tu_rand(&st), tu_rand(&st), tu_rand(&st)};
        double n = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        for (int k = 0; k < 3; k++) {
            p[k] += 1.5 * d[k] / n;
            if (p[k] < 8 || p[k] > 22)
                p[k] -= 3.0 * d[k] / n;
        }
    }
}

TEST(mapmodel_self_consistent)
{
    struct cryo_model m;
    small_model(&m);
    struct cryo_volume map;
    grid(&map, 40, 0.75, 0);
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, 4.0);
    CHECK_EQ_INT(cryo_molmap_render(&map, &m, &mo, NULL), 0);
    struct cryo_mapmodel_opts o = {4.0, 0, 1};
    struct cryo_mapmodel_result r;
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_mapmodel_eval(&map, &m, &o, &r, &err), 0);
    CHECK_CLOSE(r.cc_box, 1.0, 1e-6);
    CHECK_CLOSE(r.cc_mask, 1.0, 1e-6);
    CHECK_CLOSE(r.cc_volume, 1.0, 1e-6);
    CHECK_CLOSE(r.cc_peaks, 1.0, 1e-6);
    /* phenix's automatic radius at 4 Å and B = 0; tests/ref/mapmodel_ref.py's independent
     * numpy integration (atom_radius) gives 3.21 as well */
    CHECK_CLOSE(r.mask_radius, 3.21, 1e-9);
    CHECK(r.n_mask > 1000 && r.n_mask < 40 * 40 * 40);
    /* mtriage's d_model with a free overall B: a noise-free Gaussian model map is the fine
     * model map times exp(-B s^2/4), so the correlation only grows as the sphere grows and
     * the finest trial resolution wins (1.7 Å, the first of mtriage's list above 2 x 0.75 Å);
     * the sharp-cut-off case is tested in mapmodel.bats */
    CHECK_CLOSE(r.d_model, 1.7, 1e-9);
    CHECK_CLOSE(r.d_fsc_0143, 1.5, 1e-6); /* FSC = 1 to Nyquist */
    cryo_mapmodel_result_free(&r);
    /* a shifted model fits worse */
    for (size_t i = 0; i < m.n; i++)
        m.atoms[i].xyz[0] += 1.0;
    CHECK_EQ_INT(cryo_mapmodel_eval(&map, &m, &o, &r, &err), 0);
    CHECK(r.cc_mask < 0.95 && r.cc_mask > 0.0);
    cryo_mapmodel_result_free(&r);
    cryo_volume_free(&map);
    cryo_model_free(&m);
}

TEST(qscore_isolated_atom_and_blur)
{
    struct cryo_model m;
    cryo_model_init(&m);
    add_atom(&m, 6.03, 5.97, 6.01, "C", 1);
    struct cryo_volume map;
    grid(&map, 61, 0.2, 0);
    struct cryo_molmap_opts mo;
    /* sigma 0.6 Å: res = 0.6 / sigma_factor */
    cryo_molmap_opts_default(&mo, 0.6 / CRYO_MOLMAP_SIGMA_FACTOR);
    mo.cutoff = 10;
    CHECK_EQ_INT(cryo_molmap_render(&map, &m, &mo, NULL), 0);
    struct cryo_qscore_opts qo;
    cryo_qscore_opts_default(&qo);
    double q[1];
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
    CHECK(q[0] > 0.995 && q[0] <= 1.0);
    double prev = q[0];
    for (double res = 4.0; res <= 10.0; res += 3.0) {
        cryo_molmap_opts_default(&mo, res);
        mo.cutoff = 10;
        CHECK_EQ_INT(cryo_molmap_render(&map, &m, &mo, NULL), 0);
        CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
        CHECK(q[0] < prev);
        prev = q[0];
    }
    CHECK_CLOSE(cryo_qscore_expected(1.75), 0.808575, 1e-9);
    cryo_volume_free(&map);
    cryo_model_free(&m);
}

/* A neighbour 1.4 Å away: its density bump must not be sampled as ours. With exclusion
 * the Q of a sharp two-atom map stays close to that of an isolated atom. */
TEST(qscore_neighbour_excluded)
{
    struct cryo_model m;
    cryo_model_init(&m);
    add_atom(&m, 6.0, 6.0, 6.0, "C", 1);
    add_atom(&m, 7.4, 6.0, 6.0, "C", 1);
    struct cryo_volume map;
    grid(&map, 61, 0.2, 0);
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, 0.6 / CRYO_MOLMAP_SIGMA_FACTOR);
    mo.cutoff = 10;
    CHECK_EQ_INT(cryo_molmap_render(&map, &m, &mo, NULL), 0);
    struct cryo_qscore_opts qo;
    cryo_qscore_opts_default(&qo);
    double q[2];
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
    CHECK(q[0] > 0.9 && q[1] > 0.9);
    /* a mirror-symmetric pair, but mapq's spiral is not mirror-symmetric: the two atoms
     * keep different points, so their Q agree only closely */
    CHECK_CLOSE(q[0], q[1], 0.01);
    struct cryo_error err = {0};
    qo.n_points = 0;
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, &err), CRYO_E_INVALID);
    cryo_volume_free(&map);
    cryo_model_free(&m);
}

/* mapq's SpherePts for n = 8, values from its formula evaluated in Python (h = -1 + 2k/7,
 * longitude += 3.6 / sqrt(8 (1 - h^2)) mod 2 pi, 0 at the poles). */
TEST(sphere_points)
{
    static const double want[8][3] = {{0, 0, -1},
                                      {-0.171693158071964, 0.678466932015572, -0.714285714285714},
                                      {-0.900185568474452, -0.077411064600436, -0.428571428571429},
                                      {-0.195691307535968, -0.970204488182547, -0.142857142857143},
                                      {0.876133528037318, -0.460414897438794, 0.142857142857143},
                                      {0.543850392784309, 0.721493784367265, 0.428571428571429},
                                      {-0.645135547712973, 0.271285907198345, 0.714285714285714},
                                      {0, 0, 1}};
    double p[3 * 106];
    cryo_sphere_points(8, p);
    for (int i = 0; i < 8; i++)
        for (int d = 0; d < 3; d++)
            CHECK_CLOSE(p[3 * i + d], want[i][d], 1e-12);
    for (int n = 1; n <= 106; n += 15) {
        cryo_sphere_points(n, p);
        for (int i = 0; i < n; i++)
            CHECK_CLOSE(p[3 * i] * p[3 * i] + p[3 * i + 1] * p[3 * i + 1] + p[3 * i + 2] * p[3 * i + 2], 1.0, 1e-12);
    }
}

/* mapq's Qscore loops written out plainly (every atom tested at every point, no cell grid,
 * no early exit), to check the fast path's bookkeeping: it must give the same numbers. */
static double slow_q(const struct cryo_volume *map, const struct cryo_model *m, size_t a, double sigma)
{
    const float *x = map->data;
    size_t nv = cryo_volume_channel_count(map);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < nv; i++)
        s += x[i];
    double avg = s / (double)nv;
    for (size_t i = 0; i < nv; i++)
        s2 += (x[i] - avg) * (x[i] - avg);
    double sd = sqrt(s2 / (double)nv);
    /* mapq's reference A exp(-R^2 / 2 sigma^2) + B; unclipped here (this map's max is
     * below avg + 10 sd), which changes nothing: Pearson ignores positive affine changes */
    double maxd = avg + 10 * sd, mind = avg - sd;
    double u[2000], g[2000], pts[3 * 106], clear[3 * 106];
    size_t k = 0;
    const double *c = m->atoms[a].xyz;
    double v0; /* the map value at the atom, trilinear by hand */
    {
        double uu[3];
        int64_t i0[3];
        for (int d = 0; d < 3; d++) {
            uu[d] = (c[d] - map->origin[d]) / map->apix[d];
            i0[d] = (int64_t)floor(uu[d]);
        }
        v0 = 0;
        for (int dz = 0; dz < 2; dz++)
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    double w = (dx ? uu[0] - i0[0] : 1 - (uu[0] - i0[0])) * (dy ? uu[1] - i0[1] : 1 - (uu[1] - i0[1])) *
                               (dz ? uu[2] - i0[2] : 1 - (uu[2] - i0[2]));
                    v0 += w * x[((i0[2] + dz) * map->ny + (i0[1] + dy)) * map->nx + (i0[0] + dx)];
                }
    }
    for (int i = 0; i < 8; i++, k++)
        u[k] = v0, g[k] = maxd - mind + mind;
    for (double R = 0.1; R < 2.0 + 0.01; R += 0.1) {
        int got = 0;
        for (int t = 0; t < 50 && !got; t++) {
            int n = 8 + 2 * t, cnt = 0;
            cryo_sphere_points(n, pts);
            for (int i = 0; i < n; i++) {
                double p[3] = {c[0] + pts[3 * i] * R, c[1] + pts[3 * i + 1] * R, c[2] + pts[3 * i + 2] * R};
                int near = 0;
                for (size_t b = 0; b < m->n; b++) {
                    const double *y = m->atoms[b].xyz;
                    double d2 = (y[0] - p[0]) * (y[0] - p[0]) + (y[1] - p[1]) * (y[1] - p[1]) + (y[2] - p[2]) * (y[2] - p[2]);
                    near |= d2 < 0.81 * R * R;
                }
                if (!near)
                    memcpy(clear + 3 * cnt++, p, sizeof p);
            }
            if (cnt >= 8) {
                got = 1;
                for (int i = 0; i < cnt; i++, k++) {
                    double uu[3];
                    int64_t i0[3];
                    for (int d = 0; d < 3; d++) {
                        uu[d] = (clear[3 * i + d] - map->origin[d]) / map->apix[d];
                        i0[d] = (int64_t)floor(uu[d]);
                    }
                    double v = 0;
                    for (int dz = 0; dz < 2; dz++)
                        for (int dy = 0; dy < 2; dy++)
                            for (int dx = 0; dx < 2; dx++) {
                                double w = (dx ? uu[0] - i0[0] : 1 - (uu[0] - i0[0])) *
                                           (dy ? uu[1] - i0[1] : 1 - (uu[1] - i0[1])) *
                                           (dz ? uu[2] - i0[2] : 1 - (uu[2] - i0[2]));
                                v += w * x[((i0[2] + dz) * map->ny + (i0[1] + dy)) * map->nx + (i0[0] + dx)];
                            }
                    u[k] = v;
                    g[k] = (maxd - mind) * exp(-0.5 * (R / sigma) * (R / sigma)) + mind;
                }
            }
        }
    }
    double mu = 0, mg = 0, suv = 0, suu = 0, sgg = 0;
    for (size_t i = 0; i < k; i++)
        mu += u[i], mg += g[i];
    mu /= (double)k, mg /= (double)k;
    for (size_t i = 0; i < k; i++)
        suv += (u[i] - mu) * (g[i] - mg), suu += (u[i] - mu) * (u[i] - mu), sgg += (g[i] - mg) * (g[i] - mg);
    return suu > 0 && sgg > 0 ? suv / sqrt(suu * sgg) : 0.0;
}

/* A crowded random chain plus an atom caged by six neighbours 1 Å away (whose outer shells
 * find no clear points at all): the library equals the plain transcription of mapq. */
TEST(qscore_equals_plain_mapq_loops)
{
    struct cryo_model m;
    small_model(&m);
    add_atom(&m, 20, 20, 20, "O", 99);
    static const double oct[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    for (int i = 0; i < 6; i++)
        add_atom(&m, 20 + oct[i][0], 20 + oct[i][1], 20 + oct[i][2], "C", 99);
    struct cryo_volume map;
    grid(&map, 40, 0.75, 0);
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, 2.5);
    CHECK_EQ_INT(cryo_molmap_render(&map, &m, &mo, NULL), 0);
    uint64_t st = 5;
    float *p = map.data;
    for (int i = 0; i < 40 * 40 * 40; i++)
        p[i] += (float)(0.05 * tu_rand(&st)); /* noise, so no two atoms score alike by symmetry */
    struct cryo_qscore_opts qo;
    cryo_qscore_opts_default(&qo);
    double *q = calloc(m.n, sizeof *q);
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
    double worst = 0;
    for (size_t a = 0; a < m.n; a++)
        worst = fmax(worst, fabs(q[a] - slow_q(&map, &m, a, 0.6)));
    CHECK(worst < 1e-9);
    /* sigma 0.4 as well */
    qo.sigma = 0.4;
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
    CHECK_CLOSE(q[60], slow_q(&map, &m, 60, 0.4), 1e-9);
    CHECK(isfinite(q[60]));
    /* with a single try per radius the caged atom loses shells: a different Q */
    qo.sigma = 0.6;
    qo.max_tries = 1;
    double q1 = 0;
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
    q1 = q[60];
    qo.max_tries = 50;
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, q, NULL), 0);
    CHECK(fabs(q1 - q[60]) > 1e-6);
    free(q);
    cryo_volume_free(&map);
    cryo_model_free(&m);
}

/* Waters (or any atoms) given as the environment push sample points away without being
 * scored: an atom next to an environment-only neighbour scores as with that neighbour in
 * the model. */
TEST(qscore_among_environment)
{
    struct cryo_model m, env;
    cryo_model_init(&m);
    cryo_model_init(&env);
    add_atom(&m, 6.0, 6.0, 6.0, "C", 1);
    add_atom(&env, 6.0, 6.0, 6.0, "C", 1);
    add_atom(&env, 7.3, 6.0, 6.0, "O", 2);
    struct cryo_volume map;
    grid(&map, 61, 0.2, 0);
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, 2.0);
    CHECK_EQ_INT(cryo_molmap_render(&map, &env, &mo, NULL), 0);
    struct cryo_qscore_opts qo;
    cryo_qscore_opts_default(&qo);
    double qa[1], qe[2], qalone[1];
    CHECK_EQ_INT(cryo_qscore_among(&map, &m, &env, &qo, qa, NULL), 0);
    CHECK_EQ_INT(cryo_qscore(&map, &env, &qo, qe, NULL), 0);
    CHECK_EQ_INT(cryo_qscore(&map, &m, &qo, qalone, NULL), 0);
    CHECK_CLOSE(qa[0], qe[0], 1e-12);
    CHECK(qalone[0] < qa[0]); /* sampling the neighbour's density lowers Q */
    cryo_volume_free(&map);
    cryo_model_free(&m);
    cryo_model_free(&env);
}

/* mmCIF written for Q reads back through the project's own reader with every field intact,
 * including names that need quoting (O5'), a blank chain, insertion codes and HETATM. */
TEST(cif_write_round_trip)
{
    struct cryo_model m;
    cryo_model_init(&m);
    add_atom(&m, 1.5, -2.25, 3.125, "C", 7);
    add_atom(&m, 4, 5, 6, "O", 8);
    snprintf(m.atoms[1].name, sizeof m.atoms[1].name, "O5'");
    strcpy(m.atoms[1].resname, "A");
    m.atoms[1].icode = 'B';
    m.atoms[1].chain[0] = 0;
    add_atom(&m, 7, 8, 9, "ZN", 301);
    m.atoms[2].het = 1;
    strcpy(m.atoms[2].resname, "ZN");
    for (size_t i = 0; i < m.n; i++)
        m.atoms[i].serial = (int)i + 1;
    double q[3] = {0.8125, -0.25, 0.5};
    char path[600];
    snprintf(path, sizeof path, "%s/q.cif", tu_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f && cryo_model_write_cif(f, &m, q, "q-scores!", path, NULL) == 0);
    if (f)
        fclose(f);
    struct cryo_model back;
    cryo_model_init(&back);
    CHECK_EQ_INT(cryo_model_read(&back, path, NULL, NULL), 0);
    CHECK_EQ_INT(back.n, 3);
    for (size_t i = 0; i < back.n && i < 3; i++) {
        const struct cryo_atom *a = &m.atoms[i], *b = &back.atoms[i];
        CHECK(strcmp(a->name, b->name) == 0);
        CHECK(strcmp(a->resname, b->resname) == 0);
        CHECK(strcmp(a->chain, b->chain) == 0);
        CHECK(strcmp(a->element, b->element) == 0);
        CHECK_EQ_INT(a->resseq, b->resseq);
        CHECK_EQ_INT(a->icode, b->icode);
        CHECK_EQ_INT(a->het, b->het);
        CHECK_CLOSE(b->b, q[i], 1e-6);
        for (int d = 0; d < 3; d++)
            CHECK_CLOSE(a->xyz[d], b->xyz[d], 1e-9);
    }
    cryo_model_free(&back);
    cryo_model_free(&m);
}

/* The one-call entry used by fsc-eval --model: files appear complete, JSON has the keys,
 * a model outside the box is an error naming the model and no files are left. */
TEST(mapmodel_run_outputs)
{
    struct cryo_model m;
    small_model(&m);
    char pdb[600], atoms[600], res[600], qpdb[600];
    snprintf(pdb, sizeof pdb, "%s/m.pdb", tu_tmpdir());
    snprintf(atoms, sizeof atoms, "%s/atoms.tsv", tu_tmpdir());
    snprintf(res, sizeof res, "%s/res.tsv", tu_tmpdir());
    snprintf(qpdb, sizeof qpdb, "%s/q.pdb", tu_tmpdir());
    FILE *f = fopen(pdb, "w");
    CHECK(f && cryo_model_write_pdb(f, &m, NULL, pdb, NULL) == 0);
    if (f)
        fclose(f);
    struct cryo_volume map;
    grid(&map, 40, 0.75, 0);
    struct cryo_molmap_opts mo;
    cryo_molmap_opts_default(&mo, 3.0);
    CHECK_EQ_INT(cryo_molmap_render(&map, &m, &mo, NULL), 0);
    struct cryo_mapmodel_request rq = {pdb, 3.0, 0, 0, 0, atoms, res, qpdb, NULL};
    struct cryo_mapmodel_report r;
    struct cryo_error err = {0};
    CHECK_EQ_INT(cryo_mapmodel_run(&map, "map", &rq, &r, &err), 0);
    CHECK_CLOSE(r.m.cc_mask, 1.0, 1e-5);
    CHECK_EQ_INT(r.n_atoms, 60);
    CHECK(r.q_score > 0 && r.q_score <= 1);
    CHECK_CLOSE(r.q_sigma, 0.6, 1e-12);
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    CHECK_EQ_INT(cryo_mapmodel_print(mf, &r, 3.0, 1, NULL), 0);
    fclose(mf);
    static const char *keys[] = {"\"fsc_0143\"", "\"fsc_05\"", "\"cc_box\"", "\"cc_mask\"",
                                 "\"cc_volume\"", "\"cc_peaks\"", "\"q_score\""};
    for (int i = 0; i < 7; i++)
        CHECK(strstr(buf, keys[i]) != NULL);
    free(buf);
    cryo_mapmodel_report_free(&r);
    FILE *t = fopen(atoms, "r");
    int lines = 0, c;
    while (t && (c = fgetc(t)) != EOF)
        lines += c == '\n';
    if (t)
        fclose(t);
    CHECK_EQ_INT(lines, 61); /* header + 60 atoms */
    struct cryo_model back;
    cryo_model_init(&back);
    CHECK_EQ_INT(cryo_model_read(&back, qpdb, NULL, NULL), 0);
    CHECK_EQ_INT(back.n, 60);
    cryo_model_free(&back);
    /* a model far outside the map */
    for (size_t i = 0; i < m.n; i++)
        m.atoms[i].xyz[0] += 500;
    f = fopen(pdb, "w");
    CHECK(f && cryo_model_write_pdb(f, &m, NULL, pdb, NULL) == 0);
    if (f)
        fclose(f);
    remove(atoms);
    CHECK(cryo_mapmodel_run(&map, "map", &rq, &r, &err) < 0);
    CHECK(strstr(err.msg, "m.pdb") != NULL);
    CHECK(fopen(atoms, "r") == NULL);
    cryo_volume_free(&map);
    cryo_model_free(&m);
}

int main(void)
{
    return RUN_TESTS(cc_and_top_voxels, fsc_self_and_crossing, mapmodel_self_consistent,
                     qscore_isolated_atom_and_blur, qscore_neighbour_excluded, sphere_points,
                     qscore_equals_plain_mapq_loops, qscore_among_environment, cif_write_round_trip,
                     mapmodel_run_outputs);
}
