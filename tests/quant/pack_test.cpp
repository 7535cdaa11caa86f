// SPDX-License-Identifier: Apache-2.0
// pack_test.cpp: nibble order golden bytes, exact round trips (odd lengths), range checks.
#include "rotquant/quant/pack.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

TEST(Pack, GoldenBytesElement2iInLowNibble) {
  const std::vector<std::uint8_t> codes = {0x1, 0x2, 0x3, 0x4, 0xF};
  const auto packed = rotquant::pack_nibbles(codes);
  ASSERT_EQ(packed.size(), 3u);
  EXPECT_EQ(packed[0], 0x21);
  EXPECT_EQ(packed[1], 0x43);
  EXPECT_EQ(packed[2], 0x0F);  // odd tail: high nibble zero
  EXPECT_EQ(rotquant::get_nibble(packed.data(), 3), 0x4);
  EXPECT_EQ(rotquant::unpack_nibbles(packed, 5), codes);
}

TEST(Pack, Int4TwosComplement) {
  const std::vector<std::int8_t> q = {-8, 7, -1, 0, 3};
  std::vector<std::uint8_t> packed(3, 0xEE);
  rotquant::pack_int4(q.data(), 5, packed.data());
  EXPECT_EQ(packed[0], 0x78);  // -8 -> 0x8 low, 7 -> 0x7 high
  EXPECT_EQ(packed[1], 0x0F);  // -1 -> 0xF low, 0 high
  EXPECT_EQ(packed[2], 0x03);
  std::vector<std::int8_t> back(5);
  rotquant::unpack_int4(packed.data(), 5, back.data());
  EXPECT_EQ(back, q);
  for (int v = 0; v < 16; ++v) {
    EXPECT_EQ(rotquant::sign_extend_nibble(static_cast<std::uint8_t>(v)), v < 8 ? v : v - 16);
  }
}

TEST(Pack, RandomRoundTripsEveryLength) {
  rotquant::rng g(4);
  for (rotquant::index_t n = 0; n <= 257; ++n) {
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(n));
    for (auto& c : codes) c = static_cast<std::uint8_t>(g.uniform_int(16));
    const auto packed = rotquant::pack_nibbles(codes);
    ASSERT_EQ(static_cast<rotquant::index_t>(packed.size()), rotquant::packed_nibble_bytes(n));
    ASSERT_EQ(rotquant::unpack_nibbles(packed, n), codes) << n;
    std::vector<std::int8_t> q(static_cast<std::size_t>(n));
    for (auto& v : q) v = static_cast<std::int8_t>(static_cast<int>(g.uniform_int(16)) - 8);
    std::vector<std::uint8_t> p(static_cast<std::size_t>(rotquant::packed_nibble_bytes(n)));
    rotquant::pack_int4(q.data(), n, p.data());
    std::vector<std::int8_t> back(static_cast<std::size_t>(n));
    rotquant::unpack_int4(p.data(), n, back.data());
    ASSERT_EQ(back, q) << n;
  }
}

TEST(Pack, SetNibbleLeavesNeighbourAlone) {
  std::vector<std::uint8_t> p = {0xAB};
  rotquant::set_nibble(p.data(), 0, 0x5);
  EXPECT_EQ(p[0], 0xA5);
  rotquant::set_nibble(p.data(), 1, 0x3);
  EXPECT_EQ(p[0], 0x35);
}

TEST(Pack, RejectsOutOfRangeAndBadArguments) {
  const std::vector<std::uint8_t> bad = {1, 16};
  std::vector<std::uint8_t> out(1);
  EXPECT_ROTQUANT_ERROR(rotquant::pack_nibbles(bad.data(), 2, out.data()), "code 16 at index 1");
  const std::vector<std::int8_t> q = {0, 0, 9};
  std::vector<std::uint8_t> p(2);
  EXPECT_ROTQUANT_ERROR(rotquant::pack_int4(q.data(), 3, p.data()), "value 9 at index 2");
  EXPECT_ROTQUANT_ERROR(rotquant::pack_nibbles(bad.data(), -1, out.data()), "negative count");
  EXPECT_ROTQUANT_ERROR(rotquant::pack_nibbles(nullptr, 2, out.data()), "null pointer");
  EXPECT_ROTQUANT_ERROR(rotquant::unpack_nibbles(out, 5), "need 3 bytes");
}

}  // namespace
