// SPDX-License-Identifier: Apache-2.0
// transforms/orthogonal.hpp: Haar-random orthogonal matrices (QR of a Gaussian, sign-fixed)
// and orthogonality checks.
#pragma once

#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"

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

/// Haar-distributed orthogonal matrix from a caller-supplied square Gaussian matrix g
/// (e.g. numpy's or torch's draws, for comparing with other implementations on identical
/// input): Householder QR g = Q R, then Q <- Q diag(sign(diag R)) (sign(0) = +1), QuaRot's rule.
/// g must be square, finite and of full rank. Double; O(n^3).
inline matrix_d orthogonal_from_gaussian(const matrix_d& g) {
  ROTQUANT_CHECK(g.rows() == g.cols() && g.rows() >= 1,
                 "orthogonal_from_gaussian: expected a square n x n matrix with n >= 1, got "
                     << g.rows() << " x " << g.cols());
  check_finite(g, "orthogonal_from_gaussian: g");
  Eigen::HouseholderQR<matrix_d> qr(g);
  const matrix_d r = qr.matrixQR().template triangularView<Eigen::Upper>();
  const double rmax = r.diagonal().cwiseAbs().maxCoeff();
  ROTQUANT_CHECK(rmax > 0 && r.diagonal().cwiseAbs().minCoeff() > rmax * 1e-13,
                 "orthogonal_from_gaussian: g is (numerically) singular; min |R_ii| = "
                     << r.diagonal().cwiseAbs().minCoeff() << ", max |R_ii| = " << rmax);
  matrix_d q = qr.householderQ();
  for (index_t j = 0; j < q.cols(); ++j)
    if (r(j, j) < 0) q.col(j) = -q.col(j);
  return q;
}

/// Haar-random n x n orthogonal matrix: G ~ N(0, 1)^{n x n} from
/// random_normal_matrix<double>(n, n, seed) (row by row), then orthogonal_from_gaussian(G).
/// Same seed, same matrix on every ISA and thread count (rng and Eigen's serial QR).
/// max |Q^T Q - I| is ~1e-14 in double. O(n^3) time, 4 n^2 doubles. Throws rotquant::error for
/// n < 1 or an n too large to allocate (checked before allocating).
inline matrix_d random_orthogonal(index_t n, std::uint64_t seed) {
  ROTQUANT_CHECK(n >= 1, "random_orthogonal: size must be >= 1, got " << n);
  // G, its QR factors and Q: checked before any of them is allocated.
  detail::check_alloc(n, n, 4 * sizeof(double), "random_orthogonal");
  try {
    return orthogonal_from_gaussian(random_normal_matrix<double>(n, n, seed));
  } catch (const std::bad_alloc&) {
    detail::allocation_failed(n, n, sizeof(double), "random_orthogonal");
  }
}

}  // namespace rotquant
