// SPDX-License-Identifier: Apache-2.0
// calibration_gptq.cpp (rotquant::rotquant_compiled): GPTQ with a float or double Hessian.
#include "rotquant/quant/gptq.hpp"

namespace rotquant {
template gptq_result gptq<float>(const matrix_f&, const matrix_f&, const quantizer&,
                                 const gptq_options&);
template gptq_result gptq<double>(const matrix_f&, const matrix_d&, const quantizer&,
                                  const gptq_options&);
}  // namespace rotquant
