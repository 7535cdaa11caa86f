// SPDX-License-Identifier: Apache-2.0
// tensor.hpp: the in-memory tensor the readers and writers exchange (dtype, shape, raw bytes),
// with exact conversions from f16/bf16 and round-to-nearest-even conversions to them.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace io {

/// Thrown for unreadable or malformed files. Derives from rotquant::error.
class io_error : public rotquant::error {
 public:
  explicit io_error(const std::string& what) : rotquant::error("rotquant io: " + what) {}
};

/// Element types the readers and writers understand (little-endian storage).
enum class dtype { f32, f64, f16, bf16, i8, u8, i32, i64 };

inline std::size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::f64:
    case dtype::i64:
      return 8;
    case dtype::f32:
    case dtype::i32:
      return 4;
    case dtype::f16:
    case dtype::bf16:
      return 2;
    case dtype::i8:
    case dtype::u8:
      return 1;
  }
  return 0;
}

inline const char* dtype_name(dtype t) {
  switch (t) {
    case dtype::f32:
      return "F32";
    case dtype::f64:
      return "F64";
    case dtype::f16:
      return "F16";
    case dtype::bf16:
      return "BF16";
    case dtype::i8:
      return "I8";
    case dtype::u8:
      return "U8";
    case dtype::i32:
      return "I32";
    case dtype::i64:
      return "I64";
  }
  return "?";
}

/// True for one of the enumerators of dtype (a hand-edited or cast value may be none).
inline bool dtype_valid(dtype t) {
  return dtype_size(t) != 0;
}

namespace detail {

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits = 0;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // Inf / NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant != 0) {  // subnormal half: normalise
    std::uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  } else {
    bits = sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline std::uint16_t float_to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u);   // NaN
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to Inf
  if (abs >= 0x38800000u) {                                                   // normal half
    const std::uint32_t mant_rounded = abs + 0xFFFu + ((abs >> 13) & 1u) - (112u << 23);
    return static_cast<std::uint16_t>(sign | (mant_rounded >> 13));
  }
  // Subnormal or zero: value = abs_float; half subnormal unit 2^-24.
  const int e = static_cast<int>(abs >> 23);
  if (e < 102) return sign;  // below half of the smallest subnormal
  const std::uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const int shift = 126 - e;  // 14 + (113 - e) - ... keeps 2^-24 units
  const std::uint32_t q = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  std::uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
  return static_cast<std::uint16_t>(sign | r);
}

inline float bf16_to_float(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

template <class T>
T load_le(const std::uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the supported platforms are little-endian
  return v;
}

/// The element of type t stored at p, as double (p must hold dtype_size(t) bytes).
inline double load_element(dtype t, const std::uint8_t* p) {
  switch (t) {
    case dtype::f32:
      return load_le<float>(p);
    case dtype::f64:
      return load_le<double>(p);
    case dtype::f16:
      return half_to_float(load_le<std::uint16_t>(p));
    case dtype::bf16:
      return bf16_to_float(load_le<std::uint16_t>(p));
    case dtype::i8:
      return static_cast<std::int8_t>(*p);
    case dtype::u8:
      return *p;
    case dtype::i32:
      return load_le<std::int32_t>(p);
    case dtype::i64:
      return static_cast<double>(load_le<std::int64_t>(p));
  }
  return 0;
}

/// Element count of a shape: every dimension >= 0 and the product of the non-zero ones must
/// fit in int64 (NumPy's rule, so every partial product is representable). Throws io_error
/// naming `what` otherwise. O(rank).
inline std::int64_t checked_numel(const std::vector<std::int64_t>& shape, const std::string& what) {
  constexpr std::int64_t limit = std::numeric_limits<std::int64_t>::max();
  std::int64_t nonzero = 1;
  bool empty = false;
  for (auto d : shape) {
    if (d < 0) throw io_error(what + ": negative dimension " + std::to_string(d) + " in shape");
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > limit / d) throw io_error(what + ": shape element count overflows 64 bits");
    nonzero *= d;
  }
  return empty ? 0 : nonzero;
}

}  // namespace detail

/// A dense tensor: dtype, shape (row-major, C order) and the raw little-endian bytes.
struct tensor {
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;

  /// Number of elements (1 for a 0-d tensor). Throws io_error for a negative dimension or an
  /// element count that overflows int64.
  std::int64_t numel() const { return detail::checked_numel(shape, "tensor::numel"); }

  /// Throws io_error naming `fn` unless the dtype is valid, the shape is valid (dimensions
  /// >= 0, no overflow) and `bytes` holds exactly numel * itemsize bytes. O(rank). Every reader of
  /// the bytes calls it first.
  void check_bytes(const std::string& fn) const;

  /// Element i converted to double (exact for every dtype but i64 beyond 2^53). Throws io_error
  /// for an invalid dtype or an i past the stored bytes. O(1).
  double element(std::int64_t i) const {
    check_index(i, "tensor::element");
    return detail::load_element(type,
                                bytes.data() + static_cast<std::size_t>(i) * dtype_size(type));
  }

  /// All elements converted to Scalar, in storage order. Throws io_error unless bytes match
  /// the shape and dtype (check_bytes).
  template <class Scalar>
  std::vector<Scalar> to_vector() const {
    check_bytes("tensor::to_vector");
    const std::int64_t n = numel();
    std::vector<Scalar> out(static_cast<std::size_t>(n));
    if (type == dtype::f32 && std::is_same<Scalar, float>::value) {
      if (n) std::memcpy(out.data(), bytes.data(), static_cast<std::size_t>(n) * 4);
      return out;
    }
    const std::size_t size = dtype_size(type);
    for (std::int64_t i = 0; i < n; ++i)
      out[static_cast<std::size_t>(i)] = static_cast<Scalar>(
          detail::load_element(type, bytes.data() + static_cast<std::size_t>(i) * size));
    return out;
  }

  /// The tensor as a row-major matrix: a 2-D tensor as is, an N-D one as
  /// [prod(shape[0..N-2]), shape[N-1]], a 1-D one as a single row. Throws for 0-d tensors and
  /// (io_error) for bytes that do not match the shape and dtype.
  template <class Scalar = float>
  matrix<Scalar> to_matrix() const {
    ROTQUANT_CHECK(!shape.empty(), "tensor::to_matrix: a 0-d tensor is not a matrix");
    check_bytes("tensor::to_matrix");
    const std::int64_t cols = shape.back();
    const std::int64_t rows = cols == 0 ? 0 : numel() / cols;
    matrix<Scalar> m(rows, cols);
    const auto v = to_vector<Scalar>();
    if (!v.empty()) std::memcpy(m.data(), v.data(), v.size() * sizeof(Scalar));
    return m;
  }

  /// Makes an F32 / F64 tensor from a row-major matrix (shape [rows, cols]).
  template <class Derived>
  static tensor from_matrix(const Eigen::MatrixBase<Derived>& m, dtype t = dtype::f32) {
    ROTQUANT_CHECK(dtype_valid(t),
                   "tensor::from_matrix: invalid dtype value " << static_cast<int>(t));
    tensor out;
    out.type = t;
    out.shape = std::vector<std::int64_t>{static_cast<std::int64_t>(m.rows()),
                                          static_cast<std::int64_t>(m.cols())};
    out.bytes.resize(static_cast<std::size_t>(m.size()) * dtype_size(t));
    std::size_t k = 0;
    for (index_t r = 0; r < m.rows(); ++r)
      for (index_t c = 0; c < m.cols(); ++c) out.set_element(k++, static_cast<double>(m(r, c)));
    return out;
  }

  /// Stores v into element i, converting to the dtype (RNE for f16/bf16/f32; integers must be
  /// in range and integral). Throws io_error for an invalid dtype or an i past the stored bytes.
  void set_element(std::size_t i, double v) {
    ROTQUANT_CHECK(i <= static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()),
                   "tensor::set_element: index " << i << " out of range");
    check_index(static_cast<std::int64_t>(i), "tensor::set_element");
    std::uint8_t* p = bytes.data() + i * dtype_size(type);
    auto put = [p](auto x) { std::memcpy(p, &x, sizeof(x)); };
    auto check_int = [v](double lo, double hi) {
      ROTQUANT_CHECK(
          v >= lo && v <= hi && v == static_cast<double>(static_cast<long long>(v)),
          "tensor::set_element: " << v << " is not an integer in [" << lo << ", " << hi << "]");
    };
    switch (type) {
      case dtype::f32:
        put(static_cast<float>(v));
        break;
      case dtype::f64:
        put(v);
        break;
      case dtype::f16:
        put(detail::float_to_half(static_cast<float>(v)));
        break;
      case dtype::bf16:
        put(detail::float_to_bf16(static_cast<float>(v)));
        break;
      case dtype::i8:
        check_int(-128, 127);
        put(static_cast<std::int8_t>(v));
        break;
      case dtype::u8:
        check_int(0, 255);
        put(static_cast<std::uint8_t>(v));
        break;
      case dtype::i32:
        check_int(-2147483648.0, 2147483647.0);
        put(static_cast<std::int32_t>(v));
        break;
      case dtype::i64:
        check_int(-9.2e18, 9.2e18);
        put(static_cast<std::int64_t>(v));
        break;
    }
  }

 private:
  // Throws unless the dtype is valid and element i lies inside `bytes`. O(1).
  void check_index(std::int64_t i, const char* fn) const {
    const std::size_t size = dtype_size(type);
    if (size == 0)
      throw io_error(std::string(fn) + ": invalid dtype value " +
                     std::to_string(static_cast<int>(type)));
    if (i < 0 || static_cast<std::uint64_t>(i) >= bytes.size() / size)
      throw io_error(std::string(fn) + ": index " + std::to_string(i) + " is outside the " +
                     std::to_string(bytes.size() / size) + " stored elements");
  }
};

namespace detail {

/// numel * itemsize with overflow and sign checks; `what` names the file for the message.
/// Like NumPy, the product of the non-zero dimensions must fit in int64 even when another
/// dimension is 0: an empty tensor of shape (2^62, 2, 0) is rejected, so tensor::numel() and
/// every partial product of the shape stay representable.
inline std::uint64_t checked_nbytes(const std::vector<std::int64_t>& shape, dtype t,
                                    const std::string& what) {
  if (!dtype_valid(t))
    throw io_error(what + ": invalid dtype value " + std::to_string(static_cast<int>(t)));
  const auto n = static_cast<std::uint64_t>(checked_numel(shape, what));
  if (n > std::numeric_limits<std::uint64_t>::max() / dtype_size(t))
    throw io_error(what + ": byte size overflows 64 bits");
  return n * dtype_size(t);
}

/// "[2, 3]" for messages.
inline std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw io_error("cannot open '" + path + "'");
  std::vector<std::uint8_t> data;
  std::uint8_t buf[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw io_error("error while reading '" + path + "'");
  return data;
}

inline void write_file(const std::string& path, const std::vector<std::uint8_t>& data) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw io_error("cannot create '" + path + "'");
  const std::size_t put = data.empty() ? 0 : std::fwrite(data.data(), 1, data.size(), f);
  const bool failed = put != data.size() || std::fclose(f) != 0;
  if (failed) throw io_error("error while writing '" + path + "'");
}

}  // namespace detail

inline void tensor::check_bytes(const std::string& fn) const {
  const std::uint64_t need = detail::checked_nbytes(shape, type, fn);
  if (need != bytes.size())
    throw io_error(fn + ": tensor holds " + std::to_string(bytes.size()) + " bytes, its shape " +
                   detail::shape_text(shape) + " and dtype " + dtype_name(type) + " need " +
                   std::to_string(need));
}

}  // namespace io
}  // namespace rotquant
