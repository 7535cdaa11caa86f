// SPDX-License-Identifier: Apache-2.0
#include "rotquant/io/safetensors.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#if defined(__linux__)
#include <sys/resource.h>
#endif

#include "test_util.hpp"

namespace {

using rotquant::io::dtype;

std::vector<std::uint8_t> image(const std::string& header, std::size_t data_bytes) {
  // Sized once and filled by index: GCC 12 at -O3 reports a false -Warray-bounds inside
  // vector::insert of the header bytes after an 8-byte vector.
  std::vector<std::uint8_t> out(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(header.size() >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

rotquant::io::safetensors_file parse(const std::vector<std::uint8_t>& b) {
  return rotquant::io::parse_safetensors(b.data(), b.size());
}

// Peak resident set of this process in MiB (0 where getrusage does not report it).
long peak_rss_mib() {
#if defined(__linux__)
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) == 0) return u.ru_maxrss / 1024;
#endif
  return 0;
}

// Regression (found while adding tests/fuzz): tensors may claim overlapping spans, and the
// reader copied each tensor's bytes before checking that the spans tile the data section, so
// 512 entries over one 1 MiB section made it hold 512 MiB before rejecting the file. The tiling
// is now checked before any copy. Defined first so the process's peak RSS is still small.
TEST(Safetensors, OverlappingSpansAreRejectedBeforeAnyCopy) {
  const std::size_t bytes = std::size_t{1} << 20, entries = 512;
  const std::string entry = R"(":{"dtype":"U8","shape":[)" + std::to_string(bytes) +
                            R"(],"data_offsets":[0,)" + std::to_string(bytes) + "]}";
  std::string header = "{";
  for (std::size_t i = 0; i < entries; ++i)
    header += std::string(i ? "," : "") + "\"t" + std::to_string(i) + entry;
  header += "}";
  const auto file = image(header, bytes);
  const long before = peak_rss_mib();
  EXPECT_ROTQUANT_ERROR(parse(file), "overlaps another tensor");
  EXPECT_LT(peak_rss_mib() - before, 128) << "the reader copied the overlapping spans";
}

TEST(Safetensors, ReadsTheRealModel) {
  const std::string path =
      std::string(ROTQUANT_SOURCE_DIR) + "/examples/data/austen-llama/model.safetensors";
  const auto f = rotquant::io::read_safetensors(path);
  EXPECT_EQ(f.tensors.size(), 57u);  // embed + 6 x 9 + norm + lm_head
  const auto& q = f.at("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.type, dtype::f32);
  EXPECT_EQ(q.shape, (std::vector<std::int64_t>{256, 256}));
  EXPECT_EQ(f.at("model.layers.5.mlp.down_proj.weight").shape,
            (std::vector<std::int64_t>{256, 768}));
  EXPECT_EQ(f.at("lm_head.weight").shape, (std::vector<std::int64_t>{257, 256}));
  EXPECT_ROTQUANT_ERROR(f.at("model.layers.9.mlp.up_proj.weight"), "no tensor named");
}

TEST(Safetensors, RoundTripEveryDtypeWithMetadata) {
  rotquant::io::safetensors_file f;
  int k = 0;
  for (auto t : {dtype::f32, dtype::f64, dtype::f16, dtype::bf16, dtype::i8, dtype::u8, dtype::i32,
                 dtype::i64}) {
    rotquant::io::tensor x;
    x.type = t;
    x.shape = {2, 3};
    x.bytes.resize(6 * rotquant::io::dtype_size(t));
    for (std::size_t i = 0; i < 6; ++i)
      x.set_element(i, static_cast<double>(i) * (t == dtype::u8 ? 1 : -1) + 2);
    f.add("t" + std::to_string(k++) + "_" + rotquant::io::dtype_name(t), x);
  }
  rotquant::io::tensor empty;
  empty.shape = {0, 4};
  f.add("empty", empty);
  rotquant::io::tensor scalar;
  scalar.shape = {};
  scalar.bytes.resize(4);
  f.add("scalar", scalar);
  f.metadata["format"] = "rotquant";
  f.metadata["quote\"and\\slash\n"] = "unicode \xC3\xA9";
  const auto bytes = rotquant::io::serialize_safetensors(f);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // header padded to 8 bytes like the reference writer
  const auto g = rotquant::io::parse_safetensors(bytes.data(), bytes.size());
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (std::size_t i = 0; i < f.tensors.size(); ++i) {
    EXPECT_EQ(g.tensors[i].first, f.tensors[i].first);
    EXPECT_EQ(g.tensors[i].second.type, f.tensors[i].second.type);
    EXPECT_EQ(g.tensors[i].second.shape, f.tensors[i].second.shape);
    EXPECT_EQ(g.tensors[i].second.bytes, f.tensors[i].second.bytes);
  }
  EXPECT_EQ(g.metadata, f.metadata);
  EXPECT_EQ(g.at("t1_F64").element(5), -3.0);
}

// One malformed image per reject rule (docs/testing.md section 7, rules 17-23).
TEST(Safetensors, MalformedFilesAreRejectedWithAReason) {
  const std::string one = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NO_THROW(parse(image(one, 8)));
  EXPECT_ROTQUANT_ERROR(parse({1, 2, 3}), "shorter than the 8-byte");
  auto huge = image(one, 8);
  huge[6] = 1;
  EXPECT_ROTQUANT_ERROR(parse(huge), "exceeds 100 MB");
  auto past = image(one, 8);
  past[0] = 0xF0;
  EXPECT_ROTQUANT_ERROR(parse(past), "runs past the end");
  EXPECT_ROTQUANT_ERROR(parse(image("[1,2]  ", 0)), "does not start with '{'");
  EXPECT_ROTQUANT_ERROR(parse(image("{\"\xFF\":1}", 0)), "not valid UTF-8");
  EXPECT_ROTQUANT_ERROR(parse(image("{\"a\":}", 0)), "invalid JSON");
  EXPECT_ROTQUANT_ERROR(parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                    16)),
                        "duplicate key 'a'");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8)),
      "unsupported dtype 'F33'");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
      "non-negative integers");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8)),
      "non-negative integers");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)), "begin > end");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
      "differs from numel * itemsize");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12)),
      "data section has 12 bytes");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)), "hole");
  EXPECT_ROTQUANT_ERROR(parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                    8)),
                        "overlaps");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8)), "differs");
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8)),
      "extra keys");
  EXPECT_ROTQUANT_ERROR(parse(image(R"({"a":{"dtype":"F32","shape":[2]}})", 8)), "lacks");
  EXPECT_ROTQUANT_ERROR(parse(image(R"({"__metadata__":{"k":1}})", 0)), "is not a string");
  EXPECT_ROTQUANT_ERROR(
      parse(image(
          R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
          8)),
      "overflows");
  // Regression (tests/fuzz): an empty tensor whose other dimensions overflow int64.
  EXPECT_ROTQUANT_ERROR(
      parse(image(R"({"a":{"dtype":"U8","shape":[4611686018427387904,2,0],"data_offsets":[0,0]}})",
                  0)),
      "overflows");
  EXPECT_EQ(parse(image(R"({"a":{"dtype":"U8","shape":[3037000499,0,3037000499],)"
                        R"("data_offsets":[0,0]}})",
                        0))
                .at("a")
                .numel(),
            0);
  std::string deep(100, '[');
  EXPECT_ROTQUANT_ERROR(parse(image("{\"a\":" + deep, 0)), "nesting deeper than 64");
  EXPECT_ROTQUANT_ERROR(rotquant::io::read_safetensors("/nonexistent/x.safetensors"),
                        "cannot open");
}

TEST(Safetensors, JsonEscapesAndNumbers) {
  const auto v = rotquant::io::parse_json(
      R"({"s":"a\"b\\c\u00e9\ud83d\ude00","n":-12,"f":1.5e3,"t":true,"z":null})");
  EXPECT_EQ(v.find("s")->string, "a\"b\\c\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_TRUE(v.find("n")->is_integer);
  EXPECT_EQ(v.find("n")->integer, -12);
  EXPECT_FALSE(v.find("f")->is_integer);
  EXPECT_EQ(v.find("f")->number, 1500.0);
  EXPECT_ROTQUANT_ERROR(rotquant::io::parse_json("{\"a\":01}"), "leading zero");
  EXPECT_ROTQUANT_ERROR(rotquant::io::parse_json("{\"a\":\"\\ud800\"}"), "lone surrogate");
  EXPECT_ROTQUANT_ERROR(rotquant::io::parse_json("{} x"), "trailing characters");
}

}  // namespace
