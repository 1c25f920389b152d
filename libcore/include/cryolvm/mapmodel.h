/* mapmodel.h — how well a map agrees with an atomic model placed in it.
 *
 * Global metrics (cryo_mapmodel_eval), following phenix.map_model_cc and phenix.mtriage
 * (Afonine et al. 2018, Acta Cryst D74:814). The model map is molmap's (molmap.h) at the
 * given resolution on exactly the map's grid. All correlations are Pearson coefficients
 * (about the mean) over a set of voxels:
 *   cc_box     all voxels of the box;
 *   cc_mask    voxels within R of any atom centre: R as phenix.map_model_cc chooses it,
 *              twice the first inflection point of a carbon atom's Fourier image at
 *              resolution d blurred by the model's mean B (cryo_mapmodel_atom_radius), or a
 *              radius given by the caller;
 *   cc_volume  the N voxels with the highest model-map values, N = voxels in the mask;
 *   cc_peaks   the union of the N highest voxels of the model map and the N highest of
 *              the experimental map.
 * FSC between map and model map in Fourier shells of width 1/max(n_d a_d); d_fsc_0143 and
 * d_fsc_05 are the resolutions where the curve first falls below 0.143 / 0.5 (linear
 * interpolation between shells; the Nyquist value if it never does).
 * d_model (phenix.mtriage, cctbx maptbx.resolution_from_map_and_model): over mtriage's
 * trial resolutions d (1.7 Å to max(8, 10a), kept >= 2a) and overall B in −500..500 Å²
 * (step 10), the largest correlation of all the map's Fourier coefficients with the B = 0
 * model's coefficients times exp(−B s²/4) truncated at d (cctbx's cc_complex_complex);
 * d_model is that d (ties: the smallest).
 *
 * Q-score (cryo_qscore; Pintilie et al. 2020, Nat Methods 17:328), following mapq 1.9.11
 * (gregdp/mapq commit f730338, qscores.py, Qscore with numPts=8, toRAD=2.0, dRAD=0.1):
 * radius 0 contributes the map value at the atom N times (N = n_points, default 8); then
 * for R = 0.1, 0.2, ... (added up, while R < 2.0 + 0.01): for i = 0 .. max_tries-1 (50),
 * take mapq's spiral of N + 2i points on the sphere of radius R (cryo_sphere_points), keep
 * the points with no atom closer than 0.9 R, and stop at the first i that keeps at least
 * N: all its kept points are used (there may be more than N). A radius where no try
 * succeeds adds no points. Map values are trilinearly interpolated (0 outside the box, as
 * Chimera's interpolated_values). mapq's reference is g(R) = A exp(-R^2 / (2 sigma^2)) + B
 * with A = maxD - minD, B = minD, maxD = min(avg + 10 sd, max), minD = max(avg - sd, min)
 * over the whole map; sigma = 0.6 Å by default. Q is the Pearson correlation ("about the
 * mean", Chimera's overlap_and_correlation) of the sampled values with g over all the
 * atom's points; it is unchanged by any positive affine change of either side, so it is
 * computed against exp(-R^2 / (2 sigma^2)) itself and the A, B clipping drops out. When
 * either side is constant Q is 0, as Chimera returns. The atoms that push sample points
 * away are, in mapq, every non-hydrogen atom of the model, waters included
 * (cryo_qscore_among). Not copied from mapq: its float32 correlation sums (we use double).
 * The expected Q at resolution d for proteins from the paper's fit is
 * Q = -0.1775 d + 1.1192.
 *
 * Errors: CRYO_E_INVALID (parameters, empty model, non-float32 map), CRYO_E_NUMERIC (a
 * flat map or model map: correlation undefined), CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_MAPMODEL_H
#define CRYOLVM_MAPMODEL_H

#include <stdio.h>
#include "cryolvm/model.h"
#include "cryolvm/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_mapmodel_opts {
    double resolution;  /* Å, > 0: model map resolution and the mask radius rule */
    double mask_radius; /* Å; 0 = cryo_mapmodel_atom_radius(resolution, mean B) */
    int d_model;        /* 1 = also compute d_model (one fine model map, two FFTs) */
};

struct cryo_mapmodel_result {
    double cc_box, cc_mask, cc_volume, cc_peaks;
    double mask_radius;
    size_t n_mask;                 /* voxels in the atom mask */
    double d_fsc_0143, d_fsc_05;   /* Å */
    double d_model;                /* Å, 0 if not computed */
    size_t nshell;
    double *shell_s;               /* owned: shell centre frequency, 1/Å */
    double *fsc;                   /* owned: FSC per shell */
};
void cryo_mapmodel_result_free(struct cryo_mapmodel_result *r);

/* Model map on the map's grid, then all the global metrics. `map` must be float32 with one
 * channel. r is overwritten (free it with cryo_mapmodel_result_free). */
/* phenix.map_model_cc's automatic atom-mask radius (Å) for resolution d_min (Å) and mean
 * isotropic B (Å²); 0 if the image has no inflection point within max(10, d_min) Å. */
double cryo_mapmodel_atom_radius(double d_min, double b_iso);

int cryo_mapmodel_eval(const struct cryo_volume *map, const struct cryo_model *m,
                       const struct cryo_mapmodel_opts *o, struct cryo_mapmodel_result *r,
                       struct cryo_error *err);

/* Pearson correlation of a and b over the voxels where sel != 0 (sel NULL = all);
 * NAN if fewer than 2 voxels or one side is constant. */
double cryo_cc_masked(const float *a, const float *b, const unsigned char *sel, size_t n);

/* sel[i] = 1 for voxels within `radius` Å of an atom centre (grid of `like`). Returns the
 * count in *count. sel has cryo_volume_channel_count(like) entries. */
int cryo_atom_mask(unsigned char *sel, const struct cryo_volume *like, const struct cryo_model *m,
                   double radius, size_t *count, struct cryo_error *err);

/* sel[i] = 1 for the `count` voxels with the highest values of a (ties broken by index). */
int cryo_top_voxels(unsigned char *sel, const float *a, size_t n, size_t count, struct cryo_error *err);

/* FSC of two same-shape single-channel float32 volumes; allocates *s and *fsc (free()). */
int cryo_fsc_simple(const struct cryo_volume *a, const struct cryo_volume *b, double **s, double **fsc,
                    size_t *nshell, struct cryo_error *err);
/* Resolution (Å) where the curve first drops below `threshold` (from shell 1 on). */
double cryo_fsc_crossing(const double *s, const double *fsc, size_t nshell, double threshold);

struct cryo_qscore_opts {
    double sigma;   /* Å, reference Gaussian width, default 0.6 */
    double r_max;   /* Å, default 2.0 */
    double r_step;  /* Å, default 0.1 */
    int n_points;   /* fewest points per shell, default 8 */
    int max_tries;  /* spirals of n_points + 2i points tried per shell, i < max_tries; default 50 */
};
void cryo_qscore_opts_default(struct cryo_qscore_opts *o);

/* Per-atom Q-scores into q[m->n]; sample points are kept clear of m's own atoms. */
int cryo_qscore(const struct cryo_volume *map, const struct cryo_model *m,
                const struct cryo_qscore_opts *o, double *q, struct cryo_error *err);
/* The same for the atoms of m, with sample points kept clear of the atoms of `env`
 * (NULL = m): mapq clears them of every non-hydrogen atom, waters included, also when Q
 * is wanted for fewer atoms. */
int cryo_qscore_among(const struct cryo_volume *map, const struct cryo_model *m, const struct cryo_model *env,
                      const struct cryo_qscore_opts *o, double *q, struct cryo_error *err);
/* Mean of the finite per-atom values. */
double cryo_qscore_mean(const double *q, size_t n);
/* Expected Q at resolution d (Å) from Pintilie et al. 2020: -0.1775 d + 1.1192. */
double cryo_qscore_expected(double d);

/* TSV: per atom "chain resseq icode resname atom element q", or per residue
 * "chain resseq icode resname n_atoms q_mean". CRYO_E_IO on write failure. */
int cryo_qscore_write_atoms(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                            struct cryo_error *err);
int cryo_qscore_write_residues(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                               struct cryo_error *err);
/* ChimeraX attribute assignment file (.defattr, the format Chimera shares): control lines
 * "attribute: qscore", "recipient: atoms", "match mode: 1-to-1", then one assignment line
 * "<TAB>/chain:resnum[icode]@atom<TAB>Q" per atom with a finite Q (no "/chain" part for an
 * atom without a chain id). Open it after the model, then e.g. "color byattribute qscore".
 * CRYO_E_IO on write failure. */
int cryo_qscore_write_defattr(FILE *f, const struct cryo_model *m, const double *q, const char *name,
                              struct cryo_error *err);

/* mapq's SpherePts: the n points (n >= 1) of the Saff-Kuijlaars spiral on the unit
 * sphere, from the south pole to the north pole, into p[3n]. */
void cryo_sphere_points(int n, double *p);

/* ---- one call for a tool (fsc-eval --model) ---------------------------------------- */

struct cryo_mapmodel_request {
    const char *model_path;      /* PDB/mmCIF, plain or gzip (required) */
    double resolution;           /* Å (required) */
    double mask_radius;          /* Å, 0 = rule above */
    double q_sigma;              /* Å, 0 = 0.6 */
    int d_model;                 /* 1 = search d_model */
    const char *q_atoms_path;    /* per-atom Q TSV, or NULL */
    const char *q_residues_path; /* per-residue Q TSV, or NULL */
    const char *q_model_path;    /* model with Q in the B column, or NULL: mmCIF if the name ends
                                    in .cif or .mmcif (any case, optionally .gz-less), else PDB */
    const char *q_attr_path;     /* ChimeraX .defattr file with attribute qscore, or NULL */
};

struct cryo_mapmodel_report {
    struct cryo_mapmodel_result m;
    size_t n_atoms;
    double q_score;    /* mean per-atom Q */
    double q_expected; /* Pintilie's expected Q at the resolution */
    double q_sigma;
};
void cryo_mapmodel_report_free(struct cryo_mapmodel_report *r);

/* Read the model (hydrogens and waters dropped, ligands kept; waters still clear Q-score
 * sample points, as in mapq), compute all global metrics and Q-scores against `map` (converted to float32 internally, not modified), write the
 * requested files (each atomically: complete or absent). Errors name the file. */
int cryo_mapmodel_run(const struct cryo_volume *map, const char *map_name,
                      const struct cryo_mapmodel_request *rq, struct cryo_mapmodel_report *r,
                      struct cryo_error *err);
/* Human-readable lines, or one JSON object with keys fsc_0143, fsc_05, cc_box, cc_mask,
 * cc_volume, cc_peaks, q_score (and d_model, q_expected, mask_radius, n_mask, n_atoms,
 * resolution, q_sigma, fsc: [[s, fsc], ...]). Non-finite values are written as null. */
int cryo_mapmodel_print(FILE *f, const struct cryo_mapmodel_report *r, double resolution, int json,
                        struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
