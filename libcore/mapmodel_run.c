/* mapmodel_run.c — the whole map-versus-model evaluation behind one call, so a tool
 * (fsc-eval --model) only parses options and prints: read the model, global metrics
 * (mapmodel.c), Q-scores (qscore.c), and the optional TSV / PDB / mmCIF / ChimeraX outputs,
 * each written through outfile.h (a temporary renamed into place only when complete; devices
 * and pipes in place). */
#include "cryolvm/mapmodel.h"
#include "cryolvm/mem.h"
#include "cryolvm/outfile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void cryo_mapmodel_report_free(struct cryo_mapmodel_report *r)
{
    cryo_mapmodel_result_free(&r->m);
    memset(r, 0, sizeof *r);
}

typedef int (*writer_fn)(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                         struct cryo_error *err);

static int write_pdb_q(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                       struct cryo_error *err)
{
    return cryo_model_write_pdb(f, m, q, name, err);
}

static int write_cif_q(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                       struct cryo_error *err)
{
    return cryo_model_write_cif(f, m, q, "qscore", name, err);
}

/* mmCIF for names ending in .cif or .mmcif (any case), PDB otherwise */
static int wants_cif(const char *path)
{
    size_t n = strlen(path);
    return (n >= 4 && strcasecmp(path + n - 4, ".cif") == 0) || (n >= 6 && strcasecmp(path + n - 6, ".mmcif") == 0);
}

/* The atoms Q is reported for: `all` without its waters (mapq scores waters too, but
 * map-model metrics here leave them out). */
static int drop_waters(struct cryo_model *m, const struct cryo_model *all, struct cryo_error *err)
{
    for (size_t i = 0; i < all->n; i++)
        if (!cryo_resname_is_water(all->atoms[i].resname))
            CRYO_TRY(cryo_model_push(m, &all->atoms[i], err));
    if (m->n == 0)
        return cryo_fail(err, CRYO_E_FORMAT, "no atoms other than waters");
    return CRYO_OK;
}

struct model_report {
    writer_fn fn;
    const struct cryo_model *m;
    const double *q;
};

static int fill_model_report(FILE *f, void *ctx, const char *name, struct cryo_error *err)
{
    const struct model_report *r = ctx;
    return r->fn(f, r->m, r->q, name, err);
}

/* Every report goes through outfile.h: renamed into place when complete, links kept, devices
 * and /dev/stdout written in place. */
static int write_atomically(const char *path, writer_fn fn, const struct cryo_model *m, const double *q,
                            struct cryo_error *err)
{
    struct model_report r = {fn, m, q};
    return cryo_outfile_write(path, fill_model_report, &r, NULL, err);
}

int cryo_mapmodel_run(const struct cryo_volume *map, const char *map_name,
                      const struct cryo_mapmodel_request *rq, struct cryo_mapmodel_report *r,
                      struct cryo_error *err)
{
    memset(r, 0, sizeof *r);
    if (!rq->model_path)
        return cryo_fail(err, CRYO_E_INVALID, "no model given");
    if (!(rq->resolution > 0) || !isfinite(rq->resolution))
        return cryo_fail(err, CRYO_E_INVALID, "--res must be > 0 Å for map-model metrics");
    if (map->c != 1)
        return cryo_fail(err, CRYO_E_INVALID, "%s: map-model metrics need a single-channel map", map_name);
    struct cryo_volume v;
    cryo_volume_init(&v);
    CRYO_TRY(cryo_volume_copy(&v, map, err));
    int s = cryo_volume_convert(&v, CRYO_DTYPE_F32, err);
    if (s == CRYO_OK)
        s = cryo_volume_check_finite(&v, map_name, err);
    /* read with waters: in mapq they keep Q-score sample points away too */
    struct cryo_model m, env;
    cryo_model_init(&m);
    cryo_model_init(&env);
    struct cryo_model_opts mo;
    cryo_model_opts_default(&mo);
    mo.waters = 1;
    if (s == CRYO_OK)
        s = cryo_model_read(&env, rq->model_path, &mo, err);
    if (s == CRYO_OK && (s = drop_waters(&m, &env, err)) < 0)
        cryo_error_prefix(err, rq->model_path);
    struct cryo_mapmodel_opts o = {rq->resolution, rq->mask_radius, rq->d_model};
    if (s == CRYO_OK && (s = cryo_mapmodel_eval(&v, &m, &o, &r->m, err)) < 0)
        cryo_error_prefix(err, rq->model_path);
    double *q = NULL;
    if (s == CRYO_OK && !(q = cryo_alloc_array(m.n, sizeof *q, err)))
        s = CRYO_E_NOMEM;
    struct cryo_qscore_opts qo;
    cryo_qscore_opts_default(&qo);
    if (rq->q_sigma > 0)
        qo.sigma = rq->q_sigma;
    if (s == CRYO_OK && (s = cryo_qscore_among(&v, &m, &env, &qo, q, err)) < 0)
        cryo_error_prefix(err, map_name);
    if (s == CRYO_OK) {
        r->n_atoms = m.n;
        r->q_score = cryo_qscore_mean(q, m.n);
        r->q_expected = cryo_qscore_expected(rq->resolution);
        r->q_sigma = qo.sigma;
    }
    if (s == CRYO_OK && rq->q_atoms_path)
        s = write_atomically(rq->q_atoms_path, cryo_qscore_write_atoms, &m, q, err);
    if (s == CRYO_OK && rq->q_residues_path)
        s = write_atomically(rq->q_residues_path, cryo_qscore_write_residues, &m, q, err);
    if (s == CRYO_OK && rq->q_model_path)
        s = write_atomically(rq->q_model_path, wants_cif(rq->q_model_path) ? write_cif_q : write_pdb_q, &m, q, err);
    if (s == CRYO_OK && rq->q_attr_path)
        s = write_atomically(rq->q_attr_path, cryo_qscore_write_defattr, &m, q, err);
    free(q);
    cryo_model_free(&m);
    cryo_model_free(&env);
    cryo_volume_free(&v);
    if (s < 0)
        cryo_mapmodel_report_free(r);
    return s;
}

static void num(FILE *f, const char *key, double x, int last)
{
    if (isfinite(x))
        fprintf(f, "\"%s\": %.6g%s", key, x, last ? "" : ", ");
    else
        fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

int cryo_mapmodel_print(FILE *f, const struct cryo_mapmodel_report *r, double resolution, int json,
                        struct cryo_error *err)
{
    const struct cryo_mapmodel_result *m = &r->m;
    if (json) {
        fputc('{', f);
        num(f, "fsc_0143", m->d_fsc_0143, 0);
        num(f, "fsc_05", m->d_fsc_05, 0);
        num(f, "cc_box", m->cc_box, 0);
        num(f, "cc_mask", m->cc_mask, 0);
        num(f, "cc_volume", m->cc_volume, 0);
        num(f, "cc_peaks", m->cc_peaks, 0);
        num(f, "q_score", r->q_score, 0);
        num(f, "q_expected", r->q_expected, 0);
        num(f, "q_sigma", r->q_sigma, 0);
        if (m->d_model > 0)
            num(f, "d_model", m->d_model, 0);
        num(f, "resolution", resolution, 0);
        num(f, "mask_radius", m->mask_radius, 0);
        fprintf(f, "\"n_mask\": %zu, \"n_atoms\": %zu, \"fsc\": [", m->n_mask, r->n_atoms);
        for (size_t i = 0; i < m->nshell; i++)
            fprintf(f, "%s[%.6g, %.6g]", i ? ", " : "", m->shell_s[i], isfinite(m->fsc[i]) ? m->fsc[i] : 0.0);
        fprintf(f, "]}\n");
    } else {
        fprintf(f, "model-map FSC   d(0.143) %.3f Å   d(0.5) %.3f Å\n", m->d_fsc_0143, m->d_fsc_05);
        if (m->d_model > 0)
            fprintf(f, "d_model         %.3f Å\n", m->d_model);
        fprintf(f, "CC_box          %.4f\n", m->cc_box);
        fprintf(f, "CC_mask         %.4f   (%zu voxels within %.2f Å of an atom)\n", m->cc_mask, m->n_mask,
                m->mask_radius);
        fprintf(f, "CC_volume       %.4f\n", m->cc_volume);
        fprintf(f, "CC_peaks        %.4f\n", m->cc_peaks);
        fprintf(f, "Q-score         %.4f   (%zu atoms, sigma %.2f Å; expected at %.2f Å: %.3f)\n",
                r->q_score, r->n_atoms, r->q_sigma, resolution, r->q_expected);
    }
    if (fflush(f) != 0 || ferror(f))
        return cryo_fail(err, CRYO_E_IO, "write failed: %s", strerror(errno));
    return CRYO_OK;
}
