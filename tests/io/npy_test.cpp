// SPDX-License-Identifier: Apache-2.0
#include "rotquant/io/npy.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "test_util.hpp"

namespace {

std::string data_path(const std::string& name) {
  return std::string(ROTQUANT_SOURCE_DIR) + "/tests/data/" + name;
}

// Fixtures written by NumPy (tools/make_io_fixtures.py) load to the values NumPy wrote.
TEST(Npy, ReadsNumpyWrittenFiles) {
  auto t = rotquant::io::read_npy(data_path("f32_3x4.npy"));
  EXPECT_EQ(t.type, rotquant::io::dtype::f32);
  ASSERT_EQ(t.shape, (std::vector<std::int64_t>{3, 4}));
  const auto m = t.to_matrix<float>();
  for (int i = 0; i < 12; ++i) EXPECT_EQ(m(i / 4, i % 4), (static_cast<float>(i) - 5.5f) / 4);

  t = rotquant::io::read_npy(data_path("f64_5.npy"));
  const auto v = t.to_vector<double>();
  EXPECT_EQ(v[0], 1e-300);
  EXPECT_EQ(v[3], M_PI);
  EXPECT_EQ(v[4], 1e300);

  t = rotquant::io::read_npy(data_path("f16_2x3.npy"));
  std::ifstream expected_file(data_path("f16_2x3.expected"));
  const auto h = t.to_vector<float>();
  for (float e : h) {
    double want = 0;
    expected_file >> want;
    EXPECT_EQ(e, static_cast<float>(want));
  }
  EXPECT_TRUE(std::signbit(h[5]));

  t = rotquant::io::read_npy(data_path("i8_4.npy"));
  EXPECT_EQ(t.to_vector<int>(), (std::vector<int>{-128, -1, 0, 127}));
  t = rotquant::io::read_npy(data_path("u8_0x5.npy"));
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{0, 5}));
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.to_matrix<float>().rows(), 0);
  t = rotquant::io::read_npy(data_path("i32_scalar.npy"));
  EXPECT_TRUE(t.shape.empty());
  EXPECT_EQ(t.element(0), -7);
  t = rotquant::io::read_npy(data_path("i64_2.npy"));
  EXPECT_EQ(t.to_vector<double>()[0], std::ldexp(1.0, 40));
}

TEST(Npy, RejectsUnsupportedLayouts) {
  EXPECT_ROTQUANT_ERROR(rotquant::io::read_npy(data_path("fortran_2x2.npy")), "fortran_order True");
  EXPECT_ROTQUANT_ERROR(rotquant::io::read_npy(data_path("bigendian_2.npy")), "big-endian");
  EXPECT_ROTQUANT_ERROR(rotquant::io::read_npy(data_path("object_1.npy")), "unsupported dtype");
  EXPECT_ROTQUANT_ERROR(rotquant::io::read_npy(data_path("missing.npy")), "cannot open");
}

TEST(Npy, WriteReadRoundTripEveryDtype) {
  using rotquant::io::dtype;
  for (auto t :
       {dtype::f32, dtype::f64, dtype::f16, dtype::i8, dtype::u8, dtype::i32, dtype::i64}) {
    for (auto shape :
         std::vector<std::vector<std::int64_t>>{{}, {0}, {0, 5}, {1}, {3, 7}, {2, 3, 4}}) {
      rotquant::io::tensor x;
      x.type = t;
      x.shape = shape;
      x.bytes.resize(static_cast<std::size_t>(x.numel()) * rotquant::io::dtype_size(t));
      for (std::size_t i = 0; i < static_cast<std::size_t>(x.numel()); ++i)
        x.set_element(i, static_cast<double>(i % 100));
      const auto bytes = rotquant::io::serialize_npy(x);
      EXPECT_EQ((bytes.size() - x.bytes.size()) % 64, 0u);  // data aligned to 64
      const auto y = rotquant::io::parse_npy(bytes.data(), bytes.size());
      EXPECT_EQ(y.type, t);
      EXPECT_EQ(y.shape, shape);
      EXPECT_EQ(y.bytes, x.bytes);
    }
  }
}

std::vector<std::uint8_t> with_header(const std::string& header, std::size_t data_bytes,
                                      int version = 1) {
  std::vector<std::uint8_t> out = {
      0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(version), 0};
  if (version == 1) {
    out.push_back(static_cast<std::uint8_t>(header.size() & 0xFF));
    out.push_back(static_cast<std::uint8_t>(header.size() >> 8));
  } else {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(header.size() >> (8 * i)));
  }
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}

// One malformed image per reject rule (docs/testing.md section 7, rules 17-22).
TEST(Npy, MalformedFilesAreRejectedWithAReason) {
  auto parse = [](const std::vector<std::uint8_t>& b) {
    return rotquant::io::parse_npy(b.data(), b.size());
  };
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  EXPECT_NO_THROW(parse(with_header(good, 8)));
  EXPECT_NO_THROW(parse(with_header(good, 8, 2)));
  EXPECT_ROTQUANT_ERROR(parse({0x93, 'N', 'U'}), "shorter than the 10-byte");
  auto bad_magic = with_header(good, 8);
  bad_magic[1] = 'X';
  EXPECT_ROTQUANT_ERROR(parse(bad_magic), "bad magic");
  EXPECT_ROTQUANT_ERROR(parse(with_header(good, 8, 7)), "unknown .npy format version 7");
  auto long_header = with_header(good, 8);
  long_header[8] = 0xFF;
  long_header[9] = 0xFF;
  EXPECT_ROTQUANT_ERROR(parse(long_header), "past the end");
  EXPECT_ROTQUANT_ERROR(parse(with_header(good, 4)), "data section has 4 bytes");
  EXPECT_ROTQUANT_ERROR(parse(with_header(good, 12)), "need 8");
  EXPECT_ROTQUANT_ERROR(parse(with_header("['descr']", 0)), "expected '{'");
  EXPECT_ROTQUANT_ERROR(
      parse(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 0)),
      "non-negative integer");
  EXPECT_ROTQUANT_ERROR(parse(with_header("{'descr': '<f4', 'shape': (2,), }", 8)), "lacks one of");
  EXPECT_ROTQUANT_ERROR(
      parse(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8)),
      "unexpected key 'x'");
  EXPECT_ROTQUANT_ERROR(
      parse(with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16)),
      "unsupported dtype descr '<c8'");
  EXPECT_ROTQUANT_ERROR(
      parse(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, "
                        "4294967296, 4294967296), }",
                        0)),
      "overflows");
  EXPECT_ROTQUANT_ERROR(
      parse(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", 8)),
      "trailing characters");
}

// Regression (found by fuzz_npy, tests/fuzz): an empty array whose other dimensions multiply
// past int64 was accepted, and tensor::numel() then overflowed (UB). NumPy's rule now holds:
// the non-zero dimensions must multiply within int64, whatever else is 0.
TEST(Npy, EmptyShapeWhoseOtherDimensionsOverflowIsRejected) {
  auto parse = [](const std::string& shape) {
    const auto b =
        with_header("{'descr': '|u1', 'fortran_order': False, 'shape': " + shape + ", }", 0);
    return rotquant::io::parse_npy(b.data(), b.size());
  };
  EXPECT_ROTQUANT_ERROR(parse("(4611686018427387904, 2, 0)"), "overflows");
  EXPECT_ROTQUANT_ERROR(parse("(169, 13247798829, 7798829, 0)"), "overflows");  // the fuzzer's
  EXPECT_ROTQUANT_ERROR(parse("(0, 9223372036854775807, 2)"), "overflows");
  const auto t = parse("(3037000499, 0, 3037000499)");  // 3037000499^2 < 2^63
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.bytes.empty());
}

// Whatever the reader accepts, the writer can write: a header past 65535 bytes (format 1.0's
// limit) is written as format 2.0, as NumPy does, instead of throwing.
TEST(Npy, HeadersPast64KiBAreWrittenAsVersion2) {
  rotquant::io::tensor t;
  t.type = rotquant::io::dtype::i8;
  t.shape.assign(30000, 1);
  t.bytes = {42};
  const auto image = rotquant::io::serialize_npy(t);
  ASSERT_GT(image.size(), 65536u);
  EXPECT_EQ(image[6], 2);
  EXPECT_EQ((image.size() - 1) % 64, 0u);  // data still aligned to 64
  const auto back = rotquant::io::parse_npy(image.data(), image.size());
  EXPECT_EQ(back.shape, t.shape);
  EXPECT_EQ(back.bytes, t.bytes);
  t.shape = {1};
  EXPECT_EQ(rotquant::io::serialize_npy(t)[6], 1);  // short headers keep format 1.0
}

}  // namespace
