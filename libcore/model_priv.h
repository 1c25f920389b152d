/* model_priv.h — helpers shared by the PDB and mmCIF readers (libcore internal). */
#ifndef CRYOLVM_MODEL_PRIV_H
#define CRYOLVM_MODEL_PRIV_H

#include <stddef.h>

/* A decimal integer: optional sign, then digits only (no blanks, no "1.5", "9e99" or
 * "0x1F": a file that puts those in an integer field is wrong, and casting a double to int
 * is undefined beyond INT range). 0 and *v set when s[0..n) is one and lies in [lo, hi];
 * -1 otherwise. */
int cryo_model_parse_int(const char *s, size_t n, long lo, long hi, long *v);

#endif
