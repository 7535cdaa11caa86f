// SPDX-License-Identifier: Apache-2.0
// calibration_dfrot.cpp (rotquant::rotquant_compiled): DFRot's refinement loop for float and
// double calibration rows with the released quantizer, and the Procrustes rotation.
#include "rotquant/transforms/dfrot.hpp"

namespace rotquant {
template dfrot_result dfrot<float, dfrot_sym_quantizer>(const matrix_f&, const dfrot_options&,
                                                        const dfrot_sym_quantizer&, executor*);
template dfrot_result dfrot<double, dfrot_sym_quantizer>(const matrix_d&, const dfrot_options&,
                                                         const dfrot_sym_quantizer&, executor*);
template matrix_d procrustes_rotation<matrix_d, matrix_d>(const Eigen::MatrixBase<matrix_d>&,
                                                          const Eigen::MatrixBase<matrix_d>&);
}  // namespace rotquant
