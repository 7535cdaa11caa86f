// SPDX-License-Identifier: Apache-2.0
// calibration_linalg.cpp (rotquant::rotquant_compiled): Eigen's SVD and QR behind DFRot's
// Procrustes step and the random-orthogonal and DuQuant builders, instantiated once.
#include "rotquant/detail/dfrot_core.hpp"
#include "rotquant/transforms/duquant.hpp"
#include "rotquant/transforms/orthogonal.hpp"

namespace rotquant {
namespace detail {
template matrix_d polar_factor<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
template matrix_d householder_q<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
}  // namespace detail
template matrix_d orthogonal_from_gaussian<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
template matrix_d random_orthogonal<double>(index_t, std::uint64_t);
template matrix_d duquant_random_q<double>(index_t, std::uint64_t, std::uint64_t);
template matrix_d duquant_rotation<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
}  // namespace rotquant
