/* nnctx.h — a tool's compute context from its --device and --precision words (not part of
 * libcore: it prints and exits, as tools do).
 *
 *   device     "cpu", "cuda" or "auto" (cryo_nn_ctx_create_named)
 *   precision  "fp32", "tf32" or "bf16"; NULL: $CRYO_NN_PRECISION when set, else fp32. The
 *              flag wins over the environment (a bf16 variable does not stop --precision fp32).
 *   training   1 for commands that run backward passes: bf16 is then refused on the CPU
 *              (its bfloat16 kernels are forward-only, nn_backend.h); on CUDA it trains with
 *              float32 master weights.
 * On the CPU, tf32 is accepted and computes float32 (TF32 is a GPU tensor-core mode): one
 * note on stderr says so, unless -q. Failures: one line naming the flag (or the variable)
 * that caused it, exit 1; the caller has written nothing yet. */
#ifndef CRYOLVM_NNCTX_H
#define CRYOLVM_NNCTX_H

#include "cli.h"
#include "cryolvm/nn_backend.h"

struct cryo_nn_ctx *cli_nn_open(const struct cryo_cli *cli, const char *device, const char *precision,
                                int training);

/* "fp32", "tf32", "bf16". */
const char *cli_nn_precision_name(enum cryo_nn_precision p);

#endif
