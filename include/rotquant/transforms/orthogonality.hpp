// SPDX-License-Identifier: Apache-2.0
// transforms/orthogonality.hpp: max |Q^T Q - I|, the orthogonality check every transform uses.
#pragma once

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {

/// max |Q^T Q - I| (Gram in double). Q must be square. O(n^3).
template <class Derived>
double orthogonality_error(const Eigen::MatrixBase<Derived>& q) {
  ROTQUANT_CHECK(q.rows() == q.cols(), "orthogonality_error: matrix is "
                                           << q.rows() << " x " << q.cols() << ", expected square");
  const matrix_d qd = q.template cast<double>();
  const matrix_d gram = qd.transpose() * qd;
  return (gram - matrix_d::Identity(q.rows(), q.rows())).cwiseAbs().maxCoeff();
}

}  // namespace rotquant
