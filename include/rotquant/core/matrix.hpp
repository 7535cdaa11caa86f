// SPDX-License-Identifier: Apache-2.0
// matrix.hpp: the row-major Eigen types and strided views used across the public API.
//
// Conventions: activations X are [tokens, channels] (T x C, row = token); weights W are
// [out, in] as in PyTorch nn.Linear; every matrix is row-major so that one row (a token or an
// output channel) is contiguous. Views carry an outer (row) stride so a caller can hand in a
// slice of a larger buffer without copying.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "rotquant/core/error.hpp"

namespace rotquant {

using index_t = Eigen::Index;

template <class Scalar>
using matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar>
using vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

using matrix_f = matrix<float>;
using matrix_d = matrix<double>;
using vector_f = vector<float>;
using vector_d = vector<double>;

/// Mutable view of a row-major matrix with any row stride >= cols (in elements).
template <class Scalar>
using matrix_view = Eigen::Map<matrix<Scalar>, Eigen::Unaligned, Eigen::OuterStride<>>;
/// Read-only view of a row-major matrix with any row stride >= cols (in elements).
template <class Scalar>
using const_matrix_view = Eigen::Map<const matrix<Scalar>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Makes a mutable view over `rows` rows of `cols` elements, `stride` elements apart.
/// Throws rotquant::error if stride < cols, a size is negative, or data is null with
/// a non-empty shape.
template <class Scalar>
matrix_view<Scalar> make_view(Scalar* data, index_t rows, index_t cols, index_t stride) {
  ROTQUANT_CHECK(rows >= 0 && cols >= 0, "make_view: negative shape " << rows << " x " << cols);
  ROTQUANT_CHECK(stride >= cols,
                 "make_view: row stride " << stride << " is smaller than the row length " << cols);
  ROTQUANT_CHECK(data != nullptr || rows == 0 || cols == 0,
                 "make_view: null data for a " << rows << " x " << cols << " matrix");
  return matrix_view<Scalar>(data, rows, cols, Eigen::OuterStride<>(stride));
}

/// Read-only counterpart of make_view.
template <class Scalar>
const_matrix_view<Scalar> make_view(const Scalar* data, index_t rows, index_t cols,
                                    index_t stride) {
  ROTQUANT_CHECK(rows >= 0 && cols >= 0, "make_view: negative shape " << rows << " x " << cols);
  ROTQUANT_CHECK(stride >= cols,
                 "make_view: row stride " << stride << " is smaller than the row length " << cols);
  ROTQUANT_CHECK(data != nullptr || rows == 0 || cols == 0,
                 "make_view: null data for a " << rows << " x " << cols << " matrix");
  return const_matrix_view<Scalar>(data, rows, cols, Eigen::OuterStride<>(stride));
}

/// View of a whole row-major matrix.
template <class Scalar>
matrix_view<Scalar> view(matrix<Scalar>& m) {
  return matrix_view<Scalar>(m.data(), m.rows(), m.cols(), Eigen::OuterStride<>(m.cols()));
}
template <class Scalar>
const_matrix_view<Scalar> view(const matrix<Scalar>& m) {
  return const_matrix_view<Scalar>(m.data(), m.rows(), m.cols(), Eigen::OuterStride<>(m.cols()));
}

/// Throws rotquant::error naming the first non-finite entry (row, column, value) of `m`.
/// `what` names the argument in the message. O(rows * cols).
template <class Derived>
void check_finite(const Eigen::MatrixBase<Derived>& m, const char* what) {
  for (index_t r = 0; r < m.rows(); ++r) {
    for (index_t c = 0; c < m.cols(); ++c) {
      const auto v = m(r, c);
      ROTQUANT_CHECK(std::isfinite(static_cast<double>(v)),
                     what << " holds a non-finite value " << v << " at (" << r << ", " << c
                          << "); NaN/Inf are rejected at this entry point");
    }
  }
}

}  // namespace rotquant
