// SPDX-License-Identifier: Apache-2.0
// pack.hpp: two 4-bit codes per byte (element 2i in the low nibble of byte i), and back.
//
// The nibble order is the library's packed-format convention (QuaRot's pack_i4, CUTLASS int4b_t,
// ggml): byte i = code[2i] | (code[2i + 1] << 4). An odd count leaves the high nibble of the
// last byte zero. Signed INT4 codes are stored as two's-complement nibbles, unsigned INT4 codes
// (asymmetric, 0..15) and FP4 codes (E2M1 etc.) as they are.
#pragma once

#include <cstdint>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {

/// Bytes needed for n packed nibbles: ceil(n / 2). Precondition n >= 0.
constexpr index_t packed_nibble_bytes(index_t n) {
  return (n + 1) / 2;
}

/// The nibble of element i (0..15). No checks (hot path). O(1).
inline std::uint8_t get_nibble(const std::uint8_t* packed, index_t i) {
  const std::uint8_t b = packed[i >> 1];
  return static_cast<std::uint8_t>((i & 1) ? (b >> 4) : (b & 0x0F));
}

/// Writes the low 4 bits of `code` as element i, leaving the other nibble of the byte alone.
/// No checks (hot path). O(1).
inline void set_nibble(std::uint8_t* packed, index_t i, std::uint8_t code) {
  std::uint8_t& b = packed[i >> 1];
  const std::uint8_t v = static_cast<std::uint8_t>(code & 0x0F);
  b = (i & 1) ? static_cast<std::uint8_t>((b & 0x0F) | (v << 4))
              : static_cast<std::uint8_t>((b & 0xF0) | v);
}

/// Sign-extends a two's-complement nibble: 0x0..0x7 -> 0..7, 0x8..0xF -> -8..-1. O(1).
constexpr int sign_extend_nibble(std::uint8_t v) {
  return static_cast<int>(v & 0x0F) - ((v & 0x08) ? 16 : 0);
}

/// Packs n codes (each in 0..15) into ceil(n/2) bytes at `out`; element 2i goes to the low
/// nibble of byte i, an odd tail leaves the last high nibble 0. Throws rotquant::error for a
/// negative n, null pointers with n > 0, or a code above 15 (naming its index). O(n).
inline void pack_nibbles(const std::uint8_t* codes, index_t n, std::uint8_t* out) {
  ROTQUANT_CHECK(n >= 0, "pack_nibbles: negative count " << n);
  ROTQUANT_CHECK(n == 0 || (codes != nullptr && out != nullptr),
                 "pack_nibbles: null pointer for " << n << " codes");
  for (index_t i = 0; i + 1 < n; i += 2) {
    ROTQUANT_CHECK(codes[i] <= 15 && codes[i + 1] <= 15,
                   "pack_nibbles: code "
                       << static_cast<int>(codes[i] > 15 ? codes[i] : codes[i + 1]) << " at index "
                       << (codes[i] > 15 ? i : i + 1)
                       << " does not fit in 4 bits (accepted: 0..15)");
    out[i / 2] = static_cast<std::uint8_t>(codes[i] | (codes[i + 1] << 4));
  }
  if (n & 1) {
    ROTQUANT_CHECK(codes[n - 1] <= 15, "pack_nibbles: code "
                                           << static_cast<int>(codes[n - 1]) << " at index "
                                           << n - 1 << " does not fit in 4 bits (accepted: 0..15)");
    out[n / 2] = codes[n - 1];
  }
}

/// Unpacks n nibbles (values 0..15) from ceil(n/2) bytes. Throws for a negative n or null
/// pointers with n > 0. O(n).
inline void unpack_nibbles(const std::uint8_t* packed, index_t n, std::uint8_t* codes) {
  ROTQUANT_CHECK(n >= 0, "unpack_nibbles: negative count " << n);
  ROTQUANT_CHECK(n == 0 || (codes != nullptr && packed != nullptr),
                 "unpack_nibbles: null pointer for " << n << " codes");
  for (index_t i = 0; i < n; ++i) codes[i] = get_nibble(packed, i);
}

/// Packs n signed INT4 values (each in -8..7) as two's-complement nibbles. Throws for a value
/// out of range (naming its index), a negative n or null pointers. O(n).
inline void pack_int4(const std::int8_t* q, index_t n, std::uint8_t* out) {
  ROTQUANT_CHECK(n >= 0, "pack_int4: negative count " << n);
  ROTQUANT_CHECK(n == 0 || (q != nullptr && out != nullptr),
                 "pack_int4: null pointer for " << n << " values");
  for (index_t i = 0; i < n; ++i) {
    ROTQUANT_CHECK(q[i] >= -8 && q[i] <= 7, "pack_int4: value "
                                                << static_cast<int>(q[i]) << " at index " << i
                                                << " is outside the INT4 range -8..7");
  }
  for (index_t i = 0; i < packed_nibble_bytes(n); ++i) out[i] = 0;
  for (index_t i = 0; i < n; ++i) set_nibble(out, i, static_cast<std::uint8_t>(q[i]));
}

/// Unpacks n two's-complement nibbles to signed values -8..7. O(n).
inline void unpack_int4(const std::uint8_t* packed, index_t n, std::int8_t* q) {
  ROTQUANT_CHECK(n >= 0, "unpack_int4: negative count " << n);
  ROTQUANT_CHECK(n == 0 || (q != nullptr && packed != nullptr),
                 "unpack_int4: null pointer for " << n << " values");
  for (index_t i = 0; i < n; ++i) {
    q[i] = static_cast<std::int8_t>(sign_extend_nibble(get_nibble(packed, i)));
  }
}

/// Vector convenience form of pack_nibbles: returns ceil(codes.size() / 2) bytes.
inline std::vector<std::uint8_t> pack_nibbles(const std::vector<std::uint8_t>& codes) {
  std::vector<std::uint8_t> out(
      static_cast<std::size_t>(packed_nibble_bytes(static_cast<index_t>(codes.size()))));
  pack_nibbles(codes.data(), static_cast<index_t>(codes.size()), out.data());
  return out;
}

/// Vector convenience form of unpack_nibbles: n codes from `packed` (needs ceil(n/2) bytes).
inline std::vector<std::uint8_t> unpack_nibbles(const std::vector<std::uint8_t>& packed,
                                                index_t n) {
  ROTQUANT_CHECK(n >= 0 && packed_nibble_bytes(n) <= static_cast<index_t>(packed.size()),
                 "unpack_nibbles: " << n << " codes need " << packed_nibble_bytes(n)
                                    << " bytes, got " << packed.size());
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n));
  unpack_nibbles(packed.data(), n, codes.data());
  return codes;
}

}  // namespace rotquant
