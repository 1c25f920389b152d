/* cryolvm.h — the whole public API of libcore in one include.
 * Link with -lcryolvm (and its dependencies: zstd, zlib, libtiff, fftw3f, jansson, cairo,
 * OpenBLAS, oneDNN, OpenMP). Each header says who owns what and which errors a call returns;
 * cryolvm(7) and cryolvm-stage(7) are the overview. */
#ifndef CRYOLVM_H
#define CRYOLVM_H
#include "cryolvm/cuberot.h"
#include "cryolvm/degrade.h"
#include "cryolvm/error.h"
#include "cryolvm/fft.h"
#include "cryolvm/fsc.h"
#include "cryolvm/hist.h"
#include "cryolvm/loader.h"
#include "cryolvm/mapmodel.h"
#include "cryolvm/mask.h"
#include "cryolvm/mem.h"
#include "cryolvm/model.h"
#include "cryolvm/molmap.h"
#include "cryolvm/mrc.h"
#include "cryolvm/nn_backend.h"
#include "cryolvm/jepa_mask.h"
#include "cryolvm/nn_infer.h"
#include "cryolvm/nn_jepa.h"
#include "cryolvm/nn_layers.h"
#include "cryolvm/nn_model.h"
#include "cryolvm/nn_train.h"
#include "cryolvm/normalize.h"
#include "cryolvm/outfile.h"
#include "cryolvm/patch.h"
#include "cryolvm/resample.h"
#include "cryolvm/safetensors.h"
#include "cryolvm/stage.h"
#include "cryolvm/stream.h"
#include "cryolvm/tiffio.h"
#include "cryolvm/volio.h"
#include "cryolvm/volume.h"
#endif
