/* model_priv.h — helpers shared by the PDB and mmCIF readers (libcore internal). */
#ifndef CRYOLVM_MODEL_PRIV_H
#define CRYOLVM_MODEL_PRIV_H

#include <stddef.h>
#include "cryolvm/model.h"

/* A decimal integer: optional sign, then digits only (no blanks, no "1.5", "9e99" or
 * "0x1F": a file that puts those in an integer field is wrong, and casting a double to int
 * is undefined beyond INT range). 0 and *v set when s[0..n) is one and lies in [lo, hi];
 * -1 otherwise. */
int cryo_model_parse_int(const char *s, size_t n, long lo, long hi, long *v);

/* The PDB reader a block of whole lines at a time, so a file is parsed as it is read (a
 * bad record fails at once, memory holds the atoms and one block). `ps` starts zeroed and
 * carries the line number and MODEL state between blocks; ps->done is set at the end of
 * the first model (the rest need not be read). Errors free m. finish() checks that atoms
 * were found and filters them. */
struct pdb_parse {
    long lineno;
    int models_seen;
    int done;
};
int pdb_parse_lines(struct cryo_model *m, struct pdb_parse *ps, const char *text, size_t len,
                    const char *name, struct cryo_error *err);
int pdb_parse_finish(struct cryo_model *m, const char *name, const struct cryo_model_opts *o,
                     struct cryo_error *err);

#endif
