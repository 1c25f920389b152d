/* model.h — atomic models (PDB and mmCIF) as a flat list of atoms.
 *
 * Readers: PDB (ATOM/HETATM records, fixed columns, first MODEL only) and mmCIF (the
 * `_atom_site` loop in any column order, quoted values, first model only). Plain or
 * gzipped (sniffed, never from the name). The format is sniffed from the content: a
 * "data_" block or "_atom_site." item means mmCIF, otherwise PDB.
 *
 * Filtering is done on read (struct cryo_model_opts): hydrogens, waters and ligands
 * (HETATM that are not water) can each be kept or dropped; alternate locations are
 * resolved per atom (same chain, residue number, insertion code and atom name): the one
 * with the highest occupancy wins, the first in the file on ties.
 *
 * Ownership: struct cryo_model owns its atom array; cryo_model_free() releases it and
 * leaves an empty model (safe on an empty one).
 *
 * Errors: CRYO_E_IO (cannot open/read), CRYO_E_FORMAT ("file:LINE: ..." for a malformed
 * record or a coordinate that does not parse; no atoms at all), CRYO_E_NOMEM.
 */
#ifndef CRYOLVM_MODEL_H
#define CRYOLVM_MODEL_H

#include <stddef.h>
#include <stdio.h>
#include "cryolvm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cryo_atom {
    double xyz[3];      /* Å, Cartesian */
    float occ;          /* occupancy (1 if absent) */
    float b;            /* isotropic B-factor, Å² (0 if absent) */
    int z;              /* atomic number, 0 if the element is unknown */
    int serial;         /* atom serial number from the file (or its index) */
    int resseq;         /* residue number (auth_seq_id for mmCIF) */
    int het;            /* 1 for HETATM */
    char name[8];       /* atom name, e.g. "CA" (stripped) */
    char resname[8];    /* residue name, e.g. "ALA" */
    char chain[8];      /* chain id (auth_asym_id for mmCIF) */
    char element[4];    /* element symbol, upper case, e.g. "C", "FE" */
    char altloc;        /* ' ' if none */
    char icode;         /* insertion code, ' ' if none */
};

struct cryo_model {
    size_t n, cap;
    struct cryo_atom *atoms; /* owned */
};

struct cryo_model_opts {
    int hydrogens; /* keep H and D atoms (default 0) */
    int waters;    /* keep HOH/WAT/DOD/H2O (default 0) */
    int ligands;   /* keep HETATM records that are not water (default 1) */
};
void cryo_model_opts_default(struct cryo_model_opts *o);

void cryo_model_init(struct cryo_model *m);
void cryo_model_free(struct cryo_model *m);
/* Append one atom (copied). */
int cryo_model_push(struct cryo_model *m, const struct cryo_atom *a, struct cryo_error *err);

/* Read a model file (PDB or mmCIF, plain or gzip). `m` is freed first. */
int cryo_model_read(struct cryo_model *m, const char *path, const struct cryo_model_opts *o,
                    struct cryo_error *err);
/* Parse text already in memory; `name` is used in messages. */
int cryo_model_parse_pdb(struct cryo_model *m, const char *text, size_t len, const char *name,
                         const struct cryo_model_opts *o, struct cryo_error *err);
int cryo_model_parse_cif(struct cryo_model *m, const char *text, size_t len, const char *name,
                         const struct cryo_model_opts *o, struct cryo_error *err);

/* Apply the options' filters and resolve alternate locations in place (the parsers call
 * this; exposed for models built in code). */
void cryo_model_filter(struct cryo_model *m, const struct cryo_model_opts *o);

/* Write the atoms as PDB ATOM/HETATM records; `bfac` (may be NULL) replaces each atom's
 * B-factor column (e.g. per-atom Q-scores, as mapq writes them). CRYO_E_IO on write error. */
int cryo_model_write_pdb(FILE *f, const struct cryo_model *m, const double *bfac, const char *name,
                         struct cryo_error *err);

/* Write the atoms as an mmCIF `_atom_site` loop (data block "data_NAME", NAME made of
 * letters, digits and _ from `block`, "model" if NULL); `bfac` (may be NULL) replaces
 * B_iso_or_equiv (mapq's __Q__ files carry Q there too). Auth and label chain / residue
 * ids are both the file's (label_seq_id "." for HETATM). CRYO_E_IO on write error. */
int cryo_model_write_cif(FILE *f, const struct cryo_model *m, const double *bfac, const char *block,
                         const char *name, struct cryo_error *err);

/* Atomic number of an element symbol (case-insensitive), 0 if unknown. */
int cryo_element_z(const char *symbol);
/* 1 for water residue names. */
int cryo_resname_is_water(const char *resname);

/* Bounding box of the atom centres; CRYO_E_INVALID for an empty model. */
int cryo_model_bounds(const struct cryo_model *m, double lo[3], double hi[3], struct cryo_error *err);

#ifdef __cplusplus
}
#endif
#endif
