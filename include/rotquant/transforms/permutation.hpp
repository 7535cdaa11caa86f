// SPDX-License-Identifier: Apache-2.0
// transforms/permutation.hpp: column permutations (validation, inverse, application, matrix).
//
// Convention (transform contract): applying perm to a row x gives y[i] = x[perm[i]], i.e.
// Y = X P with P[perm[i], i] = 1.
#pragma once

#include <string>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {

/// Throws rotquant::error unless perm is a bijection of 0..n-1 (message names the first
/// out-of-range or duplicated index and its position). O(n).
inline void validate_permutation(const std::vector<index_t>& perm, index_t n, const char* who) {
  ROTQUANT_CHECK(static_cast<index_t>(perm.size()) == n,
                 who << ": permutation has " << perm.size() << " entries, the dimension is " << n);
  std::vector<index_t> seen_at(perm.size(), -1);
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const index_t p = perm[i];
    ROTQUANT_CHECK(p >= 0 && p < n, who << ": permutation entry " << i << " is " << p
                                        << ", out of range [0, " << n << ")");
    ROTQUANT_CHECK(seen_at[static_cast<std::size_t>(p)] < 0,
                   who << ": permutation has duplicate index " << p << " at positions "
                       << seen_at[static_cast<std::size_t>(p)] << " and " << i);
    seen_at[static_cast<std::size_t>(p)] = static_cast<index_t>(i);
  }
}

/// The inverse permutation q with q[perm[i]] = i (validated). O(n).
inline std::vector<index_t> inverse_permutation(const std::vector<index_t>& perm) {
  validate_permutation(perm, static_cast<index_t>(perm.size()), "inverse_permutation");
  std::vector<index_t> inv(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    inv[static_cast<std::size_t>(perm[i])] = static_cast<index_t>(i);
  return inv;
}

/// Y[:, i] = X[:, perm[i]] (X: [rows, n]). Exact (a gather). O(rows * n).
template <class S>
matrix<S> permute_columns(const matrix<S>& x, const std::vector<index_t>& perm) {
  validate_permutation(perm, x.cols(), "permute_columns");
  matrix<S> y(x.rows(), x.cols());
  for (index_t r = 0; r < x.rows(); ++r)
    for (index_t i = 0; i < x.cols(); ++i) y(r, i) = x(r, perm[static_cast<std::size_t>(i)]);
  return y;
}

/// The n x n matrix P with X P = permute_columns(X, perm): P[perm[i], i] = 1.
inline matrix_d permutation_matrix(const std::vector<index_t>& perm) {
  const auto n = static_cast<index_t>(perm.size());
  validate_permutation(perm, n, "permutation_matrix");
  matrix_d p = matrix_d::Zero(n, n);
  for (index_t i = 0; i < n; ++i) p(perm[static_cast<std::size_t>(i)], i) = 1.0;
  return p;
}

}  // namespace rotquant
