// SPDX-License-Identifier: Apache-2.0
// transforms/randomized_hadamard.hpp: QuaRot's randomized Hadamard (random signs, then the fast
// Hadamard) as a rotquant::transform.
#pragma once

#include <cstdint>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/hadamard.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// QuaRot's randomized Hadamard in row form: X -> X diag(d) T_n^T, i.e. signs then
/// append_hadamard(), with d_i = +-1 from random_signs(n, seed). n must be a Hadamard size.
/// (QuaRot's random_hadamard_matrix(n) equals transform.to_dense() for the same d.)
/// Throws rotquant::error for n < 1, a size with no Hadamard construction, or n signs that
/// cannot be allocated (all checked before allocating).
inline transform randomized_hadamard(index_t n, std::uint64_t seed) {
  ROTQUANT_CHECK(n >= 1, "randomized_hadamard: size must be >= 1, got " << n);
  detail::factor_hadamard(n, "randomized_hadamard");
  detail::check_alloc(n, 1, sizeof(double), "randomized_hadamard");
  transform t(n);
  t.append_signs(random_signs<double>(n, seed));
  t.append_hadamard();
  return t;
}

/// Same with caller-given signs d (+1/-1, length n).
inline transform randomized_hadamard(const vector_d& signs) {
  ROTQUANT_CHECK(signs.size() >= 1, "randomized_hadamard: empty sign vector");
  transform t(signs.size());
  t.append_signs(signs);
  t.append_hadamard();
  return t;
}

}  // namespace rotquant
