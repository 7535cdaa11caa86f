// SPDX-License-Identifier: Apache-2.0
#include "rotquant/io/transform_file.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;

rotquant::transform every_stage_kind(index_t c, std::uint64_t seed) {
  rotquant::transform t(c);
  rotquant::rng g(seed);
  rotquant::vector_d s(c);
  for (index_t i = 0; i < c; ++i) s[i] = 0.5 + g.uniform();
  t.append_scale(s);
  t.append_signs(rotquant::random_signs<double>(c, seed + 1));
  t.append_hadamard();
  t.append_permutation(rotquant::random_permutation(c, seed + 2));
  t.append_block_diagonal(rotquant::random_orthogonal(8, seed + 3));
  std::vector<rotquant::matrix_d> blocks;
  for (index_t b = 0; b < c / 4; ++b)
    blocks.push_back(rotquant::random_orthogonal(4, seed + 10 + static_cast<std::uint64_t>(b)));
  t.append_block_diagonal(blocks);
  t.append_hadamard(c / 2, true);
  t.append_dense(rotquant::random_orthogonal(c, seed + 4));
  return t;
}

std::string temp_path(const char* name) {
  return std::string(::testing::TempDir()) + "/rotquant_" + name + ".safetensors";
}

TEST(TransformFile, RoundTripIsExactForEveryStageKind) {
  rotquant::io::transform_bundle b;
  b.transforms.emplace_back("layer0.q_proj", every_stage_kind(24, 1));  // 24 = 12 * 2
  b.transforms.emplace_back("layer0.down_proj", every_stage_kind(32, 7));
  b.metadata["method"] = "test";
  b.metadata["weight_format"] = "qsi4cx";
  const std::string path = temp_path("roundtrip");
  rotquant::io::save_transforms(path, b);
  const auto loaded = rotquant::io::load_transforms(path);
  ASSERT_EQ(loaded.transforms.size(), 2u);
  EXPECT_EQ(loaded.metadata.at("method"), "test");
  EXPECT_EQ(loaded.metadata.at("weight_format"), "qsi4cx");
  EXPECT_EQ(loaded.metadata.count("checksum"), 0u);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& a = b.transforms[i].second;
    const auto& c = loaded.transforms[i].second;
    EXPECT_EQ(loaded.transforms[i].first, b.transforms[i].first);
    ASSERT_EQ(c.num_stages(), a.num_stages());
    const auto x = rotquant::random_normal_matrix<float>(5, a.dim(), 3);
    EXPECT_EQ(c.apply(x), a.apply(x));  // bit-identical
    EXPECT_EQ(c.to_dense(), a.to_dense());
  }
  EXPECT_EQ(rotquant::io::load_transform(path, "layer0.down_proj").dim(), 32);
  EXPECT_ROTQUANT_ERROR(rotquant::io::load_transform(path), "no transform named 'transform'");
  std::remove(path.c_str());
}

TEST(TransformFile, RejectsCorruptOrForeignFiles) {
  const auto good = rotquant::io::to_safetensors([] {
    rotquant::io::transform_bundle b;
    b.transforms.emplace_back("t", every_stage_kind(16, 3));
    return b;
  }());
  auto reparse = [](const rotquant::io::safetensors_file& f) {
    const auto bytes = rotquant::io::serialize_safetensors(f);
    return rotquant::io::from_safetensors(
        rotquant::io::parse_safetensors(bytes.data(), bytes.size()), "f");
  };
  EXPECT_NO_THROW(reparse(good));
  auto f = good;
  f.metadata["format"] = "something.else";
  EXPECT_ROTQUANT_ERROR(reparse(f), "not a rotquant transform file");
  f = good;
  f.metadata["version"] = "9";
  EXPECT_ROTQUANT_ERROR(reparse(f), "unsupported transform file version '9'");
  f = good;
  f.tensors[0].second.bytes[3] ^= 1;
  EXPECT_ROTQUANT_ERROR(reparse(f), "checksum mismatch");
  f = good;
  f.metadata["t.stage.2.kind"] = "fourier";
  EXPECT_ROTQUANT_ERROR(reparse(f), "unknown stage kind 'fourier'");
  f = good;
  f.metadata["t.stages"] = "-1";
  EXPECT_ROTQUANT_ERROR(reparse(f), "not a non-negative integer");
  f = good;
  f.metadata["t.stages"] = "12";  // more stages than stored
  EXPECT_ROTQUANT_ERROR(reparse(f), "lacks metadata 't.stage.8.kind'");
  // A permutation with a duplicate index, checksum recomputed so only the invariant fails.
  f = good;
  for (auto& kv : f.tensors)
    if (kv.first == "t.stage.3.perm") kv.second.set_element(0, kv.second.element(1));
  f.metadata["checksum"] = rotquant::io::detail::hex64(rotquant::io::detail::checksum(f));
  EXPECT_ROTQUANT_ERROR(reparse(f), "stage 't.stage.3.' is invalid");
  f = good;
  f.metadata["t.stage.2.block"] = "7";  // Hadamard of a size with no construction
  EXPECT_ROTQUANT_ERROR(reparse(f), "is invalid");
  rotquant::io::transform_bundle bad;
  bad.transforms.emplace_back("a,b", rotquant::transform(4));
  EXPECT_ROTQUANT_ERROR(rotquant::io::to_safetensors(bad), "contains ','");
  rotquant::io::transform_bundle reserved;
  reserved.transforms.emplace_back("t", rotquant::transform(4));
  reserved.metadata["checksum"] = "x";
  EXPECT_ROTQUANT_ERROR(rotquant::io::to_safetensors(reserved), "is reserved");
}

rotquant::io::transform_bundle reload(const rotquant::io::safetensors_file& f) {
  const auto bytes = rotquant::io::serialize_safetensors(f);
  return rotquant::io::from_safetensors(rotquant::io::parse_safetensors(bytes.data(), bytes.size()),
                                        "f");
}

// A file with one whole-row Hadamard stage over a dimension given as text.
rotquant::io::safetensors_file hadamard_file(const std::string& dim) {
  rotquant::io::safetensors_file f;
  f.metadata = {{"format", "rotquant.transform"},
                {"version", "1"},
                {"transforms", "t"},
                {"t.dim", dim},
                {"t.stages", "1"},
                {"t.stage.0.kind", "hadamard"},
                {"t.stage.0.block", "0"},
                {"t.stage.0.transposed", "0"}};
  f.metadata["checksum"] = rotquant::io::detail::hex64(rotquant::io::detail::checksum(f));
  return f;
}

// Regressions (found while adding tests/fuzz): a transform file names its dimension, so a
// Hadamard size can be any 64-bit value. Factorising it overflowed (k *= 2 past 2^63 for
// n = 2^62 + 1) and, for a size with no construction, the suggested block was searched by
// trying every b <= n (about 10^18 steps here). Both are now bounded by the largest base order.
TEST(TransformFile, HugeHadamardSizesAreRejectedQuickly) {
  EXPECT_ROTQUANT_ERROR(reload(hadamard_file("4611686018427387905")),
                        "no Hadamard matrix of order n = 4611686018427387905");
  EXPECT_ROTQUANT_ERROR(reload(hadamard_file("1000000000000000001")), "block b = 1 ");
  EXPECT_ROTQUANT_ERROR(reload(hadamard_file("9223372036854775807")), "is invalid");
  // 2^40 * 1000003 (prime): no base divides the odd part; the largest block is 2^40.
  EXPECT_ROTQUANT_ERROR(reload(hadamard_file("1099514926310883328")), "block b = 1099511627776 ");
  // A size whose only base is above max_hadamard_base (16412, Paley I with q = 16411) counts
  // as not constructible, and the message says where the search stopped.
  EXPECT_ROTQUANT_ERROR(reload(hadamard_file("16412")), "<= 16380");
  // Powers of two need no base table, however large.
  EXPECT_EQ(reload(hadamard_file("4611686018427387904")).at("t").dim(), index_t{1} << 62);
  EXPECT_EQ(reload(hadamard_file("1280")).at("t").stages()[0].block, 1280);  // 20 * 64
}

// Regressions (found while adding tests/fuzz): permutation indices went through double and an
// out-of-range float-to-integer cast (UB) before validation; and the reader accepted empty or
// repeated transform names that the writer refuses, so a loaded bundle could not be saved.
TEST(TransformFile, RejectsBadPermutationIndicesAndNames) {
  const auto good = rotquant::io::to_safetensors([] {
    rotquant::io::transform_bundle b;
    b.transforms.emplace_back("t", every_stage_kind(16, 3));
    return b;
  }());
  EXPECT_EQ(reload(good).transforms.size(), 1u);
  for (const std::int64_t bad : {std::numeric_limits<std::int64_t>::max(), std::int64_t{-1},
                                 std::int64_t{16}, std::numeric_limits<std::int64_t>::min()}) {
    auto f = good;
    for (auto& kv : f.tensors)
      if (kv.first == "t.stage.3.perm") std::memcpy(kv.second.bytes.data() + 8, &bad, 8);
    f.metadata["checksum"] = rotquant::io::detail::hex64(rotquant::io::detail::checksum(f));
    EXPECT_ROTQUANT_ERROR(
        reload(f), "'t.stage.3.perm' entry 1 = " + std::to_string(bad) + " is outside [0, 16)");
  }
  auto f = good;
  f.metadata["transforms"] = "t,t";
  EXPECT_ROTQUANT_ERROR(reload(f), "duplicate transform name 't'");
  f.metadata["transforms"] = ",t";
  EXPECT_ROTQUANT_ERROR(reload(f), "empty transform name");
  f.metadata["transforms"] = "t,";  // a trailing separator names nothing more
  EXPECT_EQ(reload(f).transforms.size(), 1u);
}

}  // namespace
