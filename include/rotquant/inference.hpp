// SPDX-License-Identifier: Apache-2.0
// inference.hpp: what an inference engine includes to run rotquant's W4A4 / W4A8 layers and
// nothing of calibration: the packed formats, activation quantization (optionally fused with
// the online Hadamard), the GEMM/GEMV kernels, the deployable layer w4a4_linear, transforms and
// transform files. DFRot's SVD, DuQuant's search, the clip searches, GPTQ and the pipeline are
// not pulled in (tools/compile_cost.sh measures this TU's compile time and memory).
#pragma once

#include "rotquant/config.hpp"
#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/io/transform_file.hpp"
#include "rotquant/kernels/gemm.hpp"
#include "rotquant/kernels/kv_cache.hpp"
#include "rotquant/kernels/linear.hpp"
#include "rotquant/kernels/packed.hpp"
#include "rotquant/kernels/quantize_activations.hpp"
#include "rotquant/transforms/transform.hpp"
#include "rotquant/version.hpp"
