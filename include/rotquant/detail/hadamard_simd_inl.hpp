// SPDX-License-Identifier: Apache-2.0
// detail/hadamard_simd_inl.hpp: the SIMD fast Walsh-Hadamard driver, written once and
// instantiated per ISA (included once by each detail/arch/<isa>/hadamard.hpp).
//
// Readers' note. The includer defines ROTQUANT_HK_TAG (an arch tag type), ROTQUANT_HK_TARGET
// (its function attribute) and ROTQUANT_HK_OPS (a template <class S> struct of lane operations:
// scalar_t, reg, width, load, store, add, sub, mul, set1, flip (XOR with a sign mask) and
// inreg, the log2(width) in-register stages in ascending stride order). Every function here is
// compiled with the target attribute, so no intrinsic wrapper crosses a target boundary.
// The arithmetic is the scalar reference's (detail/arch/scalar/hadamard.hpp): the same
// butterflies in the same stride order, the same K-combination order, the same final multiply.
// What changes is only the schedule: the first log2(width) + 3 strides run in registers on 8
// vectors, strides below a 8 KiB tile finish tile by tile in L1, larger strides run as radix-8/
// 4/2 passes (three stages per sweep), and the K-combination keeps four outputs' sums in
// flight per vector of columns. Rows are processed one at a time, so a row is read from and
// written to memory once whatever the batch size.
// No include guard: meant to be included several times, each time with other macros.

#if !defined(ROTQUANT_HK_TAG) || !defined(ROTQUANT_HK_TARGET) || !defined(ROTQUANT_HK_OPS)
#error "define ROTQUANT_HK_TAG, ROTQUANT_HK_TARGET and ROTQUANT_HK_OPS before including this file"
#endif

namespace rotquant {
namespace detail {
namespace arch {

template <class S, int R>
ROTQUANT_HK_TARGET inline void hk_first_pass(ROTQUANT_HK_TAG, S* x, index_t len, bool scale, S s) {
  using V = ROTQUANT_HK_OPS<S>;
  using reg = typename V::reg;
  constexpr index_t w = V::width;
  const reg vs = V::set1(s);
  for (index_t base = 0; base < len; base += R * w) {
    reg r[R];
    for (int t = 0; t < R; ++t) r[t] = V::inreg(V::load(x + base + t * w));
    for (int hv = 1; hv < R; hv *= 2)
      for (int t = 0; t < R; ++t)
        if (!(t & hv)) {
          const reg a = r[t], b = r[t + hv];
          r[t] = V::add(a, b);
          r[t + hv] = V::sub(a, b);
        }
    if (scale)
      for (int t = 0; t < R; ++t) r[t] = V::mul(r[t], vs);
    for (int t = 0; t < R; ++t) V::store(x + base + t * w, r[t]);
  }
}

// Strides h, 2h, ..., h R/2 over x[0..len) in one sweep (R = 2, 4 or 8), h >= width.
template <class S, int R>
ROTQUANT_HK_TARGET inline void hk_radix_pass(ROTQUANT_HK_TAG, S* x, index_t len, index_t h,
                                             bool scale, S s) {
  using V = ROTQUANT_HK_OPS<S>;
  using reg = typename V::reg;
  constexpr index_t w = V::width;
  const reg vs = V::set1(s);
  for (index_t base = 0; base < len; base += R * h)
    for (index_t j = base; j < base + h; j += w) {
      reg r[R];
      for (int t = 0; t < R; ++t) r[t] = V::load(x + j + t * h);
      for (int hv = 1; hv < R; hv *= 2)
        for (int t = 0; t < R; ++t)
          if (!(t & hv)) {
            const reg a = r[t], b = r[t + hv];
            r[t] = V::add(a, b);
            r[t + hv] = V::sub(a, b);
          }
      if (scale)
        for (int t = 0; t < R; ++t) r[t] = V::mul(r[t], vs);
      for (int t = 0; t < R; ++t) V::store(x + j + t * h, r[t]);
    }
}

// Strides from h up to len/2 over x[0..len), radix-8 sweeps first.
template <class S>
ROTQUANT_HK_TARGET inline void hk_remaining(ROTQUANT_HK_TAG tag, S* x, index_t len, index_t h,
                                            bool scale_last, S s) {
  while (h < len) {
    const index_t ratio = len / h;
    if (ratio >= 8) {
      hk_radix_pass<S, 8>(tag, x, len, h, scale_last && ratio == 8, s);
      h *= 8;
    } else if (ratio == 4) {
      hk_radix_pass<S, 4>(tag, x, len, h, scale_last, s);
      h *= 4;
    } else {
      hk_radix_pass<S, 2>(tag, x, len, h, scale_last, s);
      h *= 2;
    }
  }
}

// All strides of a length-len block (len a power of two >= width, len <= tile or the caller
// continues with larger strides).
template <class S>
ROTQUANT_HK_TARGET inline void hk_local(ROTQUANT_HK_TAG tag, S* x, index_t len, bool scale_last,
                                        S s) {
  constexpr index_t w = ROTQUANT_HK_OPS<S>::width;
  const index_t vectors = len / w;
  if (vectors >= 8) {
    hk_first_pass<S, 8>(tag, x, len, scale_last && vectors == 8, s);
    hk_remaining(tag, x, len, 8 * w, scale_last, s);
  } else if (vectors == 4) {
    hk_first_pass<S, 4>(tag, x, len, scale_last, s);
  } else if (vectors == 2) {
    hk_first_pass<S, 2>(tag, x, len, scale_last, s);
  } else {
    hk_first_pass<S, 1>(tag, x, len, scale_last, s);
  }
}

template <class S>
ROTQUANT_HK_TARGET inline void fwht_block(ROTQUANT_HK_TAG tag, S* x, index_t m, bool scale_last,
                                          S s) {
  constexpr index_t w = ROTQUANT_HK_OPS<S>::width;
  if (m < w) {
    fwht_block(scalar{}, x, m, scale_last, s);
    return;
  }
  constexpr index_t tile = 8192 / static_cast<index_t>(sizeof(S));
  const index_t inner = m < tile ? m : tile;
  for (index_t t0 = 0; t0 < m; t0 += inner)
    hk_local(tag, x + t0, inner, scale_last && inner == m, s);
  if (inner < m) hk_remaining(tag, x, m, inner, scale_last, s);
}

// U outputs of the K-combination for C vectors of columns: y = sum over g of slot[g] (the
// signed sums and their negations live in 16 slots per group, so each term is a load and an
// add; acc + (-c) is bit-identical to the scalar acc - c). One slot index serves C vectors.
template <class S, int U, int C>
ROTQUANT_HK_TARGET inline void hk_outputs(ROTQUANT_HK_TAG, const hadamard_kernel_args<S>& a,
                                          const S* c, S* y, index_t kk) {
  using V = ROTQUANT_HK_OPS<S>;
  using reg = typename V::reg;
  constexpr index_t w = V::width;
  const index_t groups = a.k / 4;
  const std::uint16_t* slot = a.slot + kk * groups;
  reg acc[U][C];
  for (int u = 0; u < U; ++u) {
    const S* src = c + slot[u * groups] * (C * w);
    for (int v = 0; v < C; ++v) acc[u][v] = V::load(src + v * w);
  }
  for (index_t g = 1; g < groups; ++g)
    for (int u = 0; u < U; ++u) {
      const S* src = c + slot[u * groups + g] * (C * w);
      for (int v = 0; v < C; ++v) acc[u][v] = V::add(acc[u][v], V::load(src + v * w));
    }
  const reg vs = V::set1(a.scale);
  for (int u = 0; u < U; ++u)
    for (int v = 0; v < C; ++v) V::store(y + (kk + u) * a.m + v * w, V::mul(acc[u][v], vs));
}

// K-combination (scalar header's order) for the columns [j0, j0 + C * width) of one row.
template <class S, int C>
ROTQUANT_HK_TARGET inline void hk_combine(ROTQUANT_HK_TAG tag, const hadamard_kernel_args<S>& a,
                                          S* x, index_t j0) {
  using V = ROTQUANT_HK_OPS<S>;
  using reg = typename V::reg;
  constexpr index_t w = V::width;
  const index_t m = a.m, groups = a.k / 4;
  S* c = a.scratch;  // [group][16][C * w]: the eight signed sums, then their negations
  const reg neg = V::set1(-S(0));
  for (index_t g = 0; g < groups; ++g)
    for (int v = 0; v < C; ++v) {
      const S* z = x + 4 * g * m + j0 + v * w;
      const reg z0 = V::load(z), z1 = V::load(z + m), z2 = V::load(z + 2 * m),
                z3 = V::load(z + 3 * m);
      const reg p = V::add(z0, z1), q = V::sub(z0, z1), r = V::add(z2, z3), t = V::sub(z2, z3);
      const reg sums[8] = {V::add(p, r), V::add(p, t), V::sub(p, t), V::sub(p, r),
                           V::add(q, r), V::add(q, t), V::sub(q, t), V::sub(q, r)};
      S* cg = c + g * 16 * (C * w) + v * w;
      for (int i = 0; i < 8; ++i) {
        V::store(cg + i * (C * w), sums[i]);
        V::store(cg + (8 + i) * (C * w), V::flip(sums[i], neg));
      }
    }
  if (C == 1) {
    index_t kk = 0;
    for (; kk + 8 <= a.k; kk += 8) hk_outputs<S, 8, C>(tag, a, c, x + j0, kk);
    if (kk < a.k) hk_outputs<S, 4, C>(tag, a, c, x + j0, kk);
  } else {
    for (index_t kk = 0; kk < a.k; kk += 4) hk_outputs<S, 4, C>(tag, a, c, x + j0, kk);
  }
}

template <class S>
ROTQUANT_HK_TARGET inline void hadamard_rows(ROTQUANT_HK_TAG tag, const hadamard_kernel_args<S>& a,
                                             S* data, index_t rows, index_t stride) {
  constexpr index_t w = ROTQUANT_HK_OPS<S>::width;
  // Two vectors of columns per K-combination pass while the signed-sum table (K/4 groups x 16
  // slots x 2 vectors) stays within 24 KiB, so it lives in L1; one vector otherwise.
  const bool two =
      a.m >= 2 * w && (a.k / 4) * 16 * 2 * w * static_cast<index_t>(sizeof(S)) <= 24 * 1024;
  for (index_t r = 0; r < rows; ++r) {
    S* x = data + r * stride;
    for (index_t b = 0; b < a.k; ++b) fwht_block(tag, x + b * a.m, a.m, a.k == 1, a.scale);
    if (a.k == 1) continue;
    if (a.m < w) {
      for (index_t j = 0; j < a.m; j += hadamard_column_chunk)
        hadamard_combine(scalar{}, a, x, j,
                         a.m - j < hadamard_column_chunk ? a.m - j : hadamard_column_chunk);
    } else {
      if (two)
        for (index_t j = 0; j < a.m; j += 2 * w) hk_combine<S, 2>(tag, a, x, j);
      else
        for (index_t j = 0; j < a.m; j += w) hk_combine<S, 1>(tag, a, x, j);
    }
  }
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
