/* cuda_comm.cu — data-parallel all-reduce between GPUs with NCCL, one process per GPU.
 *
 * NCCL is loaded at run time (dlopen of libnccl.so.2, found on the loader's path: the CUDA
 * toolkit's lib64, or the nvidia-nccl wheel's lib via LD_LIBRARY_PATH), the first time a
 * communicator is asked for: the plugin itself does not need it, so a machine without NCCL
 * still trains on one GPU. The few NCCL types used are declared here with NCCL 2's ABI
 * values (checked against nccl.h where that header is at hand), so no NCCL header is needed
 * to build either.
 *
 * The processes agree on a communicator through an opaque 128-byte id: rank 0 makes it
 * (comm_id), the launcher's own channel (MPI_Bcast in jepa-train) carries it to the others,
 * and every rank calls comm_init with it. All collectives run on the legacy default stream,
 * in order with the backend's kernels.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_priv.h"

#define CU_NCCL_ID_BYTES 128
typedef struct {
    char internal[CU_NCCL_ID_BYTES];
} cu_nccl_id;
typedef struct cu_nccl_comm *cu_nccl_comm_t;
enum { CU_NCCL_SUCCESS = 0, CU_NCCL_SUM = 0, CU_NCCL_FLOAT32 = 7, CU_NCCL_FLOAT64 = 8 };

#if defined(__has_include)
#if __has_include(<nccl.h>)
#include <nccl.h>
static_assert(NCCL_UNIQUE_ID_BYTES == CU_NCCL_ID_BYTES, "NCCL id size");
static_assert((int)ncclSuccess == CU_NCCL_SUCCESS && (int)ncclSum == CU_NCCL_SUM, "NCCL enums");
static_assert((int)ncclFloat32 == CU_NCCL_FLOAT32 && (int)ncclFloat64 == CU_NCCL_FLOAT64, "NCCL types");
static_assert(sizeof(ncclUniqueId) == sizeof(cu_nccl_id), "NCCL id");
#endif
#endif

struct cu_nccl_api {
    int (*get_unique_id)(cu_nccl_id *);
    int (*comm_init_rank)(cu_nccl_comm_t *, int, cu_nccl_id, int);
    int (*all_reduce)(const void *, void *, size_t, int, int, cu_nccl_comm_t, cudaStream_t);
    int (*comm_destroy)(cu_nccl_comm_t);
    const char *(*error_string)(int);
};

static struct cu_nccl_api nccl;
static int nccl_loaded; /* 1 loaded, -1 failed */
static char nccl_why[300];

static int load_nccl(struct cryo_error *err)
{
    if (nccl_loaded == 0) { /* contexts are used by one thread at a time; a process loads once */
        void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
        if (!h)
            h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(nccl_why, sizeof nccl_why, "%s", e ? e : "libnccl.so.2 not found");
            nccl_loaded = -1;
        } else {
            *(void **)&nccl.get_unique_id = dlsym(h, "ncclGetUniqueId");
            *(void **)&nccl.comm_init_rank = dlsym(h, "ncclCommInitRank");
            *(void **)&nccl.all_reduce = dlsym(h, "ncclAllReduce");
            *(void **)&nccl.comm_destroy = dlsym(h, "ncclCommDestroy");
            *(void **)&nccl.error_string = dlsym(h, "ncclGetErrorString");
            if (!nccl.get_unique_id || !nccl.comm_init_rank || !nccl.all_reduce || !nccl.comm_destroy ||
                !nccl.error_string) {
                snprintf(nccl_why, sizeof nccl_why, "libnccl lacks an NCCL 2 symbol");
                dlclose(h);
                nccl_loaded = -1;
            } else {
                nccl_loaded = 1;
            }
        }
    }
    if (nccl_loaded < 0)
        return cu_fail(err, CRYO_E_UNSUPPORTED, "nn cuda: NCCL unavailable: %s", nccl_why);
    return CRYO_OK;
}

static int nccl_check(int r, const char *what, struct cryo_error *err)
{
    if (r == CU_NCCL_SUCCESS)
        return CRYO_OK;
    return cu_fail(err, CRYO_E_DEVICE, "nn cuda: %s: NCCL error %d (%s)", what, r, nccl.error_string(r));
}

int cu_comm_id(struct cryo_nn_ctx *ctx, void *id, size_t len, struct cryo_error *err)
{
    if (len != CU_NCCL_ID_BYTES)
        return cu_fail(err, CRYO_E_INVALID, "nn cuda: communicator id must be %d bytes", CU_NCCL_ID_BYTES);
    CRYO_TRY(load_nccl(err));
    cu_nccl_id u;
    CRYO_TRY(nccl_check(nccl.get_unique_id(&u), "ncclGetUniqueId", err));
    memcpy(id, &u, sizeof u);
    return CRYO_OK;
}

int cu_comm_init(struct cryo_nn_ctx *ctx, const void *id, size_t len, int nranks, int rank,
                 struct cryo_error *err)
{
    struct cu_state *st = cu_state(ctx);
    if (len != CU_NCCL_ID_BYTES || nranks < 1 || rank < 0 || rank >= nranks)
        return cu_fail(err, CRYO_E_INVALID, "nn cuda: communicator: rank %d of %d, id of %zu bytes", rank, nranks,
                       len);
    if (st->comm)
        return cu_fail(err, CRYO_E_INVALID, "nn cuda: the context already has a communicator");
    CRYO_TRY(load_nccl(err));
    cu_nccl_id u;
    memcpy(&u, id, sizeof u);
    cu_nccl_comm_t c = NULL;
    CRYO_TRY(nccl_check(nccl.comm_init_rank(&c, nranks, u, rank), "ncclCommInitRank", err));
    st->comm = c;
    st->nranks = nranks;
    return CRYO_OK;
}

int cu_allreduce(struct cryo_nn_ctx *ctx, float *x, size_t n, struct cryo_error *err)
{
    struct cu_state *st = cu_state(ctx);
    if (!st->comm)
        return cu_fail(err, CRYO_E_INVALID, "nn cuda: all-reduce without a communicator");
    if (n == 0)
        return CRYO_OK;
    return nccl_check(nccl.all_reduce(x, x, n, CU_NCCL_FLOAT32, CU_NCCL_SUM, (cu_nccl_comm_t)st->comm, 0),
                      "ncclAllReduce", err);
}

int cu_allreduce_host(struct cryo_nn_ctx *ctx, double *v, int n, struct cryo_error *err)
{
    struct cu_state *st = cu_state(ctx);
    if (!st->comm)
        return cu_fail(err, CRYO_E_INVALID, "nn cuda: all-reduce without a communicator");
    if (n < 1)
        return CRYO_OK;
    double *d = (double *)cu_red_scratch(ctx, (size_t)n * sizeof(double), err);
    if (!d)
        return CRYO_E_NOMEM;
    CRYO_TRY(cu_check(cudaMemcpy(d, v, (size_t)n * sizeof(double), cudaMemcpyHostToDevice), "all-reduce upload", err));
    CRYO_TRY(nccl_check(nccl.all_reduce(d, d, (size_t)n, CU_NCCL_FLOAT64, CU_NCCL_SUM, (cu_nccl_comm_t)st->comm, 0),
                        "ncclAllReduce", err));
    return cu_check(cudaMemcpy(v, d, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost), "all-reduce download", err);
}

void cu_comm_free(struct cu_state *st)
{
    if (st->comm && nccl_loaded > 0)
        nccl.comm_destroy((cu_nccl_comm_t)st->comm);
    st->comm = NULL;
}
