/* nnctx.h — a tool's compute context from its --device and --precision words (not part of
 * libcore: it prints and exits, as tools do).
 *
 *   cli_nn_precision_init(flag)  early in main, while the process has one thread: takes the
 *       --precision word (NULL when not given: $CRYO_NN_PRECISION when set, else fp32) and
 *       removes $CRYO_NN_PRECISION from the environment, so that every context starts in
 *       fp32 and the flag wins over the variable (a bf16 variable does not stop --precision
 *       fp32). A bad word is reported by the first cli_nn_open, not here.
 *   cli_nn_open(cli, device, computes, training)  the context on "cpu", "cuda" or "auto"
 *       (cryo_nn_ctx_create_named), in that precision when `computes` (else fp32: commands
 *       that only build a network to copy or check weights). `training`: the command runs
 *       backward passes, so bf16 is refused on the CPU (its bfloat16 kernels are
 *       forward-only, nn_backend.h); on CUDA it trains with float32 master weights.
 * On the CPU, tf32 is accepted and computes float32 (TF32 is a GPU tensor-core mode): one
 * note on stderr says so, unless -q. Failures: one line naming the flag (or the variable)
 * that caused it, exit 1; the caller has written nothing yet. */
#ifndef CRYOLVM_NNCTX_H
#define CRYOLVM_NNCTX_H

#include "cli.h"
#include "cryolvm/nn_backend.h"

void cli_nn_precision_init(const char *flag);
struct cryo_nn_ctx *cli_nn_open(const struct cryo_cli *cli, const char *device, int computes, int training);

/* "fp32", "tf32", "bf16". */
const char *cli_nn_precision_name(enum cryo_nn_precision p);

#endif
