// SPDX-License-Identifier: Apache-2.0
// rng.hpp: the library's own seeded generator and normal sampler, bit-reproducible everywhere.
//
// Readers' note. Rotations drawn from a seed must be the same matrix on every compiler,
// standard library, platform and thread count, so nothing here uses <random>'s distributions
// (std::normal_distribution differs between libstdc++, libc++ and MSVC) or libm's log/sin
// (not correctly rounded, so results differ between C libraries). The generator is
// xoshiro256** seeded through SplitMix64; normals come from Marsaglia's polar method with a
// logarithm written here in plain IEEE-754 double arithmetic (+, *, /, sqrt and explicit
// std::fma, all correctly rounded), so its result cannot depend on FMA contraction or libm.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace detail {

/// SplitMix64 step: used to expand one 64-bit seed into generator state.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Natural logarithm of a positive finite double, deterministic on every IEEE-754 platform.
/// Accuracy: within 2 ulp of the true value (the test compares against std::log).
inline double deterministic_log(double x) {
  int e = 0;
  double f = std::frexp(x, &e);  // exact: x = f * 2^e, f in [0.5, 1)
  if (f < 0.70710678118654752440) {
    f *= 2.0;  // exact
    --e;
  }
  // log(f) = 2 atanh(s) with s = (f - 1) / (f + 1), |s| <= 0.1716.
  const double s = (f - 1.0) / (f + 1.0);
  const double z = s * s;
  double p = 1.0 / 25.0;
  const double odd_reciprocals[] = {1.0 / 23.0, 1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0,
                                    1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0,
                                    1.0 / 7.0,  1.0 / 5.0,  1.0 / 3.0,  1.0};
  for (double r : odd_reciprocals) p = std::fma(p, z, r);
  const double log_f = 2.0 * s * p;
  // ln 2 split in a high part with trailing zero bits (so e * hi is exact) and a low part.
  constexpr double ln2_hi = 6.93147180369123816490e-01;
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  const double de = static_cast<double>(e);
  return std::fma(de, ln2_hi, std::fma(de, ln2_lo, log_f));
}

/// Largest block any rotquant builder allocates from a size argument: 2^47 bytes (128 TiB), the
/// whole user address space of x86-64 and AArch64 with 48-bit virtual addresses, so no larger
/// block can be mapped anywhere the library runs.
constexpr std::uint64_t max_alloc_bytes = std::uint64_t{1} << 47;

/// Checks, before allocating, that rows x cols elements of elem_bytes bytes each can be
/// allocated: both counts >= 0, no overflow, at most max_alloc_bytes in all. Throws
/// rotquant::error naming `fn`, the shape and the limit. O(1).
inline void check_alloc(index_t rows, index_t cols, std::size_t elem_bytes, const char* fn) {
  ROTQUANT_CHECK(rows >= 0 && cols >= 0, fn << ": negative size " << rows << " x " << cols);
  const std::uint64_t per_row = max_alloc_bytes / elem_bytes;
  ROTQUANT_CHECK(rows == 0 || cols == 0 ||
                     static_cast<std::uint64_t>(rows) <= per_row / static_cast<std::uint64_t>(cols),
                 fn << ": " << rows << " x " << cols << " elements of " << elem_bytes
                    << " bytes exceed what can be allocated (at most 2^47 bytes in one block)");
}

/// Reports a failed allocation of rows x cols elements (std::bad_alloc) as rotquant::error.
[[noreturn]] inline void allocation_failed(index_t rows, index_t cols, std::size_t elem_bytes,
                                           const char* fn) {
  std::ostringstream out;
  out << "rotquant: " << fn << ": cannot allocate " << rows << " x " << cols << " elements of "
      << elem_bytes << " bytes (out of memory)";
  throw error(out.str());
}

}  // namespace detail

/// Seeded pseudo-random generator (xoshiro256**) with a deterministic normal sampler.
///
/// The same (seed, stream) gives the same sequence on every platform. `stream` selects an
/// independent sequence for the same seed, so parallel work can draw from per-chunk streams
/// and stay independent of the thread count. Not cryptographic. Not thread-safe: use one
/// instance per thread or per chunk.
class rng {
 public:
  using result_type = std::uint64_t;

  explicit rng(std::uint64_t seed = 0, std::uint64_t stream = 0) {
    std::uint64_t sm = seed ^ (0xD1B54A32D192ED03ull * (stream + 1));
    for (auto& word : state_) word = detail::splitmix64(sm);
  }

  /// A generator with an explicit xoshiro256** state (not all zero), e.g. to check the
  /// generator against the reference implementation's published outputs.
  static rng from_state(std::uint64_t s0, std::uint64_t s1, std::uint64_t s2, std::uint64_t s3) {
    ROTQUANT_CHECK((s0 | s1 | s2 | s3) != 0, "rng::from_state: the all-zero state is invalid");
    rng g;
    g.state_[0] = s0;
    g.state_[1] = s1;
    g.state_[2] = s2;
    g.state_[3] = s3;
    return g;
  }

  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  /// Next 64 random bits (xoshiro256**).
  result_type operator()() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

  /// Uniform integer in [0, bound), without modulo bias (Lemire's multiply-and-reject).
  /// Throws rotquant::error if bound == 0.
  std::uint64_t uniform_int(std::uint64_t bound) {
    ROTQUANT_CHECK(bound > 0, "rng::uniform_int: bound must be positive, got 0");
    // 128-bit product via two 64-bit halves keeps this portable (no __int128 needed).
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      const std::uint64_t x = (*this)();
      std::uint64_t hi = 0;
      const std::uint64_t lo = mul_64x64(x, bound, hi);
      if (lo >= threshold) return hi;
    }
  }

  /// Fair coin as +1.0 / -1.0.
  double sign() { return ((*this)() >> 63) ? -1.0 : 1.0; }

  /// Standard normal N(0, 1) (Marsaglia polar method; pairs are cached).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    for (;;) {
      const double u = 2.0 * uniform() - 1.0;
      const double v = 2.0 * uniform() - 1.0;
      const double s = std::fma(u, u, v * v);
      if (s >= 1.0 || s == 0.0) continue;
      const double factor = std::sqrt(-2.0 * detail::deterministic_log(s) / s);
      spare_ = v * factor;
      has_spare_ = true;
      return u * factor;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  static std::uint64_t mul_64x64(std::uint64_t a, std::uint64_t b, std::uint64_t& hi) {
    const std::uint64_t a_lo = a & 0xFFFFFFFFull, a_hi = a >> 32;
    const std::uint64_t b_lo = b & 0xFFFFFFFFull, b_hi = b >> 32;
    const std::uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
    const std::uint64_t mid = (p0 >> 32) + (p1 & 0xFFFFFFFFull) + (p2 & 0xFFFFFFFFull);
    hi = p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
    return (mid << 32) | (p0 & 0xFFFFFFFFull);
  }

  std::uint64_t state_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

/// A rows x cols matrix of independent N(0, 1) draws, filled row by row from rng(seed, stream).
template <class Scalar = double>
matrix<Scalar> random_normal_matrix(index_t rows, index_t cols, std::uint64_t seed,
                                    std::uint64_t stream = 0) {
  ROTQUANT_CHECK(rows >= 0 && cols >= 0,
                 "random_normal_matrix: negative shape " << rows << " x " << cols);
  detail::check_alloc(rows, cols, sizeof(Scalar), "random_normal_matrix");
  rng gen(seed, stream);
  matrix<Scalar> out;
  try {
    out.resize(rows, cols);
  } catch (const std::bad_alloc&) {
    detail::allocation_failed(rows, cols, sizeof(Scalar), "random_normal_matrix");
  }
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) out(r, c) = static_cast<Scalar>(gen.normal());
  return out;
}

/// n independent +1/-1 signs from rng(seed, stream).
template <class Scalar = double>
vector<Scalar> random_signs(index_t n, std::uint64_t seed, std::uint64_t stream = 0) {
  ROTQUANT_CHECK(n >= 0, "random_signs: negative length " << n);
  detail::check_alloc(n, 1, sizeof(Scalar), "random_signs");
  rng gen(seed, stream);
  vector<Scalar> out;
  try {
    out.resize(n);
  } catch (const std::bad_alloc&) {
    detail::allocation_failed(n, 1, sizeof(Scalar), "random_signs");
  }
  for (index_t i = 0; i < n; ++i) out[i] = static_cast<Scalar>(gen.sign());
  return out;
}

/// Uniformly random permutation of 0..n-1 (Fisher-Yates with rng::uniform_int).
inline std::vector<index_t> random_permutation(index_t n, std::uint64_t seed,
                                               std::uint64_t stream = 0) {
  ROTQUANT_CHECK(n >= 0, "random_permutation: negative length " << n);
  detail::check_alloc(n, 1, sizeof(index_t), "random_permutation");
  rng gen(seed, stream);
  std::vector<index_t> p;
  try {
    p.resize(static_cast<std::size_t>(n));
  } catch (const std::bad_alloc&) {
    detail::allocation_failed(n, 1, sizeof(index_t), "random_permutation");
  }
  for (index_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  for (index_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<index_t>(gen.uniform_int(static_cast<std::uint64_t>(i) + 1));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

}  // namespace rotquant
