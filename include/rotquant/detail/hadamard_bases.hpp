// SPDX-License-Identifier: Apache-2.0
// detail/hadamard_bases.hpp: generated +-1 Hadamard base matrices (Sylvester, Paley I/II,
// doubling, Williamson) and the factorisation n = K * 2^m used by the fast transform.
//
// Readers' note. Nothing here is a stored table: every base is built from its construction rule
// (docs/algorithms.md section 6), and the rules reproduce QuaRot's, SpinQuant's and FlatQuant's
// tables entry for entry (12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172). Any other K that a
// Paley construction reaches with a prime q is built on demand (e.g. 76, 684, 924).
#pragma once

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace detail {

/// A K x K matrix of +1/-1 entries, row-major.
struct sign_matrix {
  index_t order = 0;
  std::vector<std::int8_t> entries;

  sign_matrix() = default;
  explicit sign_matrix(index_t k)
      : order(k), entries(static_cast<std::size_t>(k * k), std::int8_t{1}) {}
  std::int8_t& at(index_t i, index_t j) { return entries[static_cast<std::size_t>(i * order + j)]; }
  std::int8_t at(index_t i, index_t j) const {
    return entries[static_cast<std::size_t>(i * order + j)];
  }
  sign_matrix transposed() const {
    sign_matrix t(order);
    for (index_t i = 0; i < order; ++i)
      for (index_t j = 0; j < order; ++j) t.at(j, i) = at(i, j);
    return t;
  }
  matrix_d to_matrix() const {
    matrix_d m(order, order);
    for (index_t i = 0; i < order; ++i)
      for (index_t j = 0; j < order; ++j) m(i, j) = at(i, j);
    return m;
  }
};

/// How a base order K is generated.
enum class base_construction { sylvester, paley1, paley2, doubling, williamson, none };

inline const char* to_string(base_construction c) {
  switch (c) {
    case base_construction::sylvester:
      return "Sylvester";
    case base_construction::paley1:
      return "Paley I";
    case base_construction::paley2:
      return "Paley II";
    case base_construction::doubling:
      return "doubling";
    case base_construction::williamson:
      return "Williamson";
    case base_construction::none:
      return "none";
  }
  return "none";
}

inline bool is_power_of_two(index_t n) {
  return n > 0 && (n & (n - 1)) == 0;
}

inline int log2_exact(index_t n) {
  int m = 0;
  while ((index_t{1} << m) < n) ++m;
  return m;
}

inline bool is_prime(index_t q) {
  if (q < 2) return false;
  if (q % 2 == 0) return q == 2;
  for (index_t d = 3; d <= q / d; d += 2)  // d * d would overflow for q near 2^63
    if (q % d == 0) return false;
  return true;
}

/// Quadratic character of a modulo an odd prime p: 0, +1 or -1 (Euler's criterion).
inline int quadratic_character(index_t a, index_t p) {
  a %= p;
  if (a < 0) a += p;
  if (a == 0) return 0;
  // a^((p-1)/2) mod p; p is small (the base order), so 64-bit products cannot overflow.
  std::uint64_t result = 1, base = static_cast<std::uint64_t>(a);
  std::uint64_t e = static_cast<std::uint64_t>((p - 1) / 2);
  const auto mod = static_cast<std::uint64_t>(p);
  while (e > 0) {
    if (e & 1u) result = result * base % mod;
    base = base * base % mod;
    e >>= 1u;
  }
  return result == 1 ? 1 : -1;
}

/// Natural-order Sylvester matrix S[i,j] = (-1)^popcount(i & j), n a power of two.
inline sign_matrix sylvester_base(index_t n) {
  sign_matrix h(n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      index_t v = i & j;
      int parity = 0;
      while (v) {
        parity ^= 1;
        v &= v - 1;
      }
      h.at(i, j) = parity ? std::int8_t{-1} : std::int8_t{1};
    }
  return h;
}

/// Paley I, order q + 1 for a prime q = 3 mod 4 (skew type; QuaRot's 12, 20, 60, 108, 140).
inline sign_matrix paley1_base(index_t q) {
  const index_t k = q + 1;
  sign_matrix h(k);
  for (index_t j = 1; j < k; ++j) h.at(0, j) = -1;
  for (index_t i = 1; i < k; ++i)
    for (index_t j = 1; j < k; ++j)
      h.at(i, j) = i == j ? std::int8_t{1}
                          : static_cast<std::int8_t>(quadratic_character((i - 1) - (j - 1), q));
  return h;
}

/// Paley II, order 2(q + 1) for a prime q = 1 mod 4 (symmetric; QuaRot's 28, 36).
inline sign_matrix paley2_base(index_t q) {
  const index_t c = q + 1;
  auto conference = [&](index_t i, index_t j) -> int {
    if (i == 0 && j == 0) return 0;
    if (i == 0 || j == 0) return 1;
    return quadratic_character(j - i, q);
  };
  sign_matrix h(2 * c);
  for (index_t i = 0; i < c; ++i)
    for (index_t j = 0; j < c; ++j) {
      const int cij = conference(i, j), id = i == j ? 1 : 0;
      h.at(i, j) = static_cast<std::int8_t>(cij + id);
      h.at(i, j + c) = static_cast<std::int8_t>(cij - id);
      h.at(i + c, j) = static_cast<std::int8_t>(cij - id);
      h.at(i + c, j + c) = static_cast<std::int8_t>(-cij - id);
    }
  return h;
}

/// kron([[1, 1], [1, -1]], h): order 2K (QuaRot's 40 from the Paley I 20).
inline sign_matrix doubling_base(const sign_matrix& h) {
  const index_t k = h.order;
  sign_matrix d(2 * k);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = 0; j < k; ++j) {
      d.at(i, j) = h.at(i, j);
      d.at(i, j + k) = h.at(i, j);
      d.at(i + k, j) = h.at(i, j);
      d.at(i + k, j + k) = static_cast<std::int8_t>(-h.at(i, j));
    }
  return d;
}

/// Williamson array from the first rows of four symmetric circulants A, B, C, D of order m
/// ('+' = 1, '-' = -1; row i is the first row shifted right by i):
/// H = [[A, B, C, D], [-B, A, -D, C], [-C, D, A, -B], [-D, -C, B, A]].
inline sign_matrix williamson_base(const char* a, const char* b, const char* c, const char* d) {
  const std::string rows[4] = {a, b, c, d};
  const auto m = static_cast<index_t>(rows[0].size());
  auto circ = [&](int which, index_t i, index_t j) -> int {
    const index_t shift = ((j - i) % m + m) % m;
    return rows[which][static_cast<std::size_t>(shift)] == '+' ? 1 : -1;
  };
  // (block row, block col) -> (which circulant, sign)
  static const int which[4][4] = {{0, 1, 2, 3}, {1, 0, 3, 2}, {2, 3, 0, 1}, {3, 2, 1, 0}};
  static const int sign[4][4] = {{1, 1, 1, 1}, {-1, 1, -1, 1}, {-1, 1, 1, -1}, {-1, -1, 1, 1}};
  sign_matrix h(4 * m);
  for (int br = 0; br < 4; ++br)
    for (int bc = 0; bc < 4; ++bc)
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < m; ++j)
          h.at(br * m + i, bc * m + j) =
              static_cast<std::int8_t>(sign[br][bc] * circ(which[br][bc], i, j));
  return h;
}

/// First rows of QuaRot's Williamson tables (docs/algorithms.md section 6).
struct williamson_rows {
  index_t order;
  const char* a;
  const char* b;
  const char* c;
  const char* d;
};

inline const williamson_rows* find_williamson(index_t k) {
  static const williamson_rows table[] = {
      {52, "+-+--++++--+-", "+---++++++---", "++-+--++--+-+", "+----+--+----"},
      {156, "+++--+-+-----+--++----++--+-----+-+--++", "++++---+--++----+-+--+-+----++--+---+++",
       "+++--++-+---+-+--+----+--+-+---+-++--++", "+---++-+-+-----+++-++-+++-----+-+-++---"},
      {172, "+---++--++++-+-+++-++--++-+++-+-++++--++---",
       "++-++++++----+-+--++-++-++--+-+----++++++-+", "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
       "++---++++-+--+--++--------++--+--+-++++---+"},
  };
  for (const auto& w : table)
    if (w.order == k) return &w;
  return nullptr;
}

/// Which rule generates a base of order k (k = 1, 2 are Sylvester). QuaRot's choices first
/// (40 by doubling 20, Williamson for 52/156/172), then Paley I, then Paley II.
inline base_construction construction_for(index_t k) {
  if (k == 1 || k == 2) return base_construction::sylvester;
  if (k <= 0 || k % 4 != 0) return base_construction::none;
  if (k == 40) return base_construction::doubling;
  if (find_williamson(k)) return base_construction::williamson;
  if (is_prime(k - 1) && (k - 1) % 4 == 3) return base_construction::paley1;
  if (k % 2 == 0 && is_prime(k / 2 - 1) && (k / 2 - 1) % 4 == 1) return base_construction::paley2;
  if (is_power_of_two(k)) return base_construction::sylvester;
  return base_construction::none;
}

/// The +-1 base of order k. Throws rotquant::error if no construction reaches k.
inline sign_matrix hadamard_base(index_t k) {
  switch (construction_for(k)) {
    case base_construction::sylvester:
      return sylvester_base(k);
    case base_construction::paley1:
      return paley1_base(k - 1);
    case base_construction::paley2:
      return paley2_base(k / 2 - 1);
    case base_construction::doubling:
      return doubling_base(hadamard_base(k / 2));
    case base_construction::williamson: {
      const auto* w = find_williamson(k);
      return williamson_base(w->a, w->b, w->c, w->d);
    }
    case base_construction::none:
      break;
  }
  ROTQUANT_CHECK(false,
                 "hadamard_base: no Sylvester, Paley I/II (prime q), doubling or Williamson "
                 "construction for order "
                     << k);
  return {};
}

/// The largest base order K that is built (hadamard_plan's limit; H_K takes K^2 bytes and
/// O(K^2) time). Sizes whose only factorisations need a larger K count as not constructible,
/// which also keeps the searches below bounded for any 64-bit n (a transform file names n).
constexpr index_t max_hadamard_base = 16380;

/// n = k * m with m a power of two and k a base order.
struct hadamard_factorization {
  index_t k = 1;
  index_t m = 1;
};

/// Chooses K for n like QuaRot's get_hadK (tested in this order: 172, 156, 148, 140, 108, 60,
/// 52, 44, 36, 28, 40, 20, 12, then powers of two), then the smallest Paley order K = odd(n) *
/// 2^j that divides n. Returns false if none exists.
inline bool try_factor_hadamard(index_t n, hadamard_factorization& out) {
  if (n <= 0) return false;
  static const index_t quarot_order[] = {172, 156, 148, 140, 108, 60, 52, 44, 36, 28, 40, 20, 12};
  for (index_t k : quarot_order)
    if (n % k == 0 && is_power_of_two(n / k)) {
      out = {k, n / k};
      return true;
    }
  if (is_power_of_two(n)) {
    out = {1, n};
    return true;
  }
  index_t odd = n;
  while (odd % 2 == 0) odd /= 2;
  for (index_t k = odd; k <= n && k <= max_hadamard_base; k *= 2) {
    if (n % k == 0 && construction_for(k) != base_construction::none) {
      out = {k, n / k};
      return true;
    }
  }
  return false;
}

/// The largest b dividing n for which a Hadamard transform of order b exists. Such a b is
/// K * 2^j for a base order K <= max_hadamard_base, so each K dividing n is tried with the
/// largest power of two that still divides n / K: O(max_hadamard_base), not O(n).
inline index_t largest_hadamard_block(index_t n) {
  index_t best = 1;
  for (index_t k = 1; k <= max_hadamard_base && k <= n; ++k) {
    if (n % k != 0 || construction_for(k) == base_construction::none) continue;
    index_t b = k, rest = n / k;
    while (rest % 2 == 0) {
      b *= 2;
      rest /= 2;
    }
    best = std::max(best, b);
  }
  return best;
}

/// The factorisation of n, or rotquant::error naming n's factorisation and the nearest options.
inline hadamard_factorization factor_hadamard(index_t n, const char* who) {
  ROTQUANT_CHECK(n >= 1, who << ": Hadamard size must be >= 1, got " << n);
  hadamard_factorization f;
  if (try_factor_hadamard(n, f)) return f;
  index_t odd = n, e = 0;
  while (odd % 2 == 0) {
    odd /= 2;
    ++e;
  }
  const index_t block = largest_hadamard_block(n);
  ROTQUANT_CHECK(
      false, who << ": no Hadamard matrix of order n = " << n << " = " << odd << " * 2^" << e
                 << " is constructible: no K = " << odd << " * 2^j <= " << max_hadamard_base
                 << " dividing n has a Sylvester, Paley I (prime q = K - 1 = 3 "
                    "mod 4), Paley II (prime q = K/2 - 1 = 1 mod 4) or Williamson "
                    "construction (rotquant never pads). Nearest options: a "
                    "block-diagonal Hadamard with block b = "
                 << block << " (transform::append_hadamard(" << block
                 << ")), or a random orthogonal rotation (random_orthogonal(" << n << ", seed))");
  return f;
}

}  // namespace detail
}  // namespace rotquant
