// SPDX-License-Identifier: Apache-2.0
// transforms/orthogonal.hpp: Haar-random orthogonal matrices (QR of a Gaussian, sign-fixed);
// the check orthogonality_error lives in transforms/orthogonality.hpp, included here.
//
// Readers' note. The builders are templates over the scalar type (double by default) so that a
// translation unit pays for Eigen's QR only where it calls them.
#pragma once

#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>
#include <type_traits>

#include "rotquant/config.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/orthogonality.hpp"

namespace rotquant {

/// Haar-distributed orthogonal matrix from a caller-supplied square Gaussian matrix g
/// (e.g. numpy's or torch's draws, for comparing with other implementations on identical
/// input): Householder QR g = Q R, then Q <- Q diag(sign(diag R)) (sign(0) = +1), QuaRot's rule.
/// g must be square, finite and of full rank. Double; O(n^3).
template <class Derived>
matrix_d orthogonal_from_gaussian(const Eigen::MatrixBase<Derived>& g_in) {
  const matrix_d g = g_in.template cast<double>();
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
template <class S = double>
matrix<S> random_orthogonal(index_t n, std::uint64_t seed) {
  ROTQUANT_CHECK(n >= 1, "random_orthogonal: size must be >= 1, got " << n);
  // G, its QR factors and Q: checked before any of them is allocated.
  detail::check_alloc(n, n, 4 * sizeof(double), "random_orthogonal");
  try {
    const matrix_d q = orthogonal_from_gaussian(random_normal_matrix<double>(n, n, seed));
    if constexpr (std::is_same<S, double>::value)
      return q;
    else
      return q.cast<S>();
  } catch (const std::bad_alloc&) {
    detail::allocation_failed(n, n, sizeof(double), "random_orthogonal");
  }
}

#if ROTQUANT_EXTERN_TEMPLATES
// Compiled mode (config.hpp): instantiated once in src/calibration_linalg.cpp.
extern template matrix_d orthogonal_from_gaussian<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
extern template matrix_d random_orthogonal<double>(index_t, std::uint64_t);
#endif

}  // namespace rotquant
