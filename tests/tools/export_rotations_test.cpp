// SPDX-License-Identifier: Apache-2.0
// End-to-end test of tools/export_rotations.py. The setup test tools.export_rotations_py
// (tests/tools/make_peer_files.py) saves DFRot, SpinQuant and DuQuant rotations and activation
// dumps the way those projects do (torch.save, np.save), runs the exporter on them and lists in
// manifest.txt what to check here against the reference matrices it saved as .npy: the
// transforms as rotquant::io loads them (to_dense, apply), DuQuant's against the transform
// rotquant builds from the same matrices, and the activation tensors bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/io/npy.hpp"
#include "rotquant/io/safetensors.hpp"
#include "rotquant/io/transform_file.hpp"

#ifndef ROTQUANT_EXPORT_DIR
#error "ROTQUANT_EXPORT_DIR must name the folder the setup test tools.export_rotations_py fills"
#endif

namespace {

using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::transform;
namespace io = rotquant::io;

std::string export_dir() {
  const char* env = std::getenv("ROTQUANT_EXPORT_DIR");
  return env != nullptr && *env != '\0' ? env : ROTQUANT_EXPORT_DIR;
}

std::string in_dir(const std::string& name) {
  return export_dir() + "/" + name;
}

bool exists(const std::string& path) {
  return std::ifstream(path).good();
}

// Non-empty when the setup test skipped (PyTorch or NumPy missing): its reason.
std::string skip_reason() {
  std::ifstream f(in_dir("SKIPPED"));
  if (!f) return "";
  std::stringstream s;
  s << f.rdbuf();
  return "the setup test tools.export_rotations_py skipped: " + s.str();
}

// Skips when the setup test skipped; fails when it never ran or failed.
#define REQUIRE_EXPORTED_FILES()                                                         \
  do {                                                                                   \
    const std::string rq_skip_ = skip_reason();                                          \
    if (!rq_skip_.empty()) GTEST_SKIP() << rq_skip_;                                     \
    ASSERT_TRUE(exists(in_dir("manifest.txt")))                                          \
        << "no " << in_dir("manifest.txt")                                               \
        << ": the setup test tools.export_rotations_py did not run or failed (ctest -R " \
           "tools runs it first)";                                                       \
  } while (false)

// Manifest lines of one kind, split into words (the kind dropped).
std::vector<std::vector<std::string>> manifest(const std::string& kind) {
  std::vector<std::vector<std::string>> out;
  std::ifstream f(in_dir("manifest.txt"));
  for (std::string line; std::getline(f, line);) {
    std::istringstream words(line);
    std::string k;
    words >> k;
    if (k != kind) continue;
    std::vector<std::string> row;
    for (std::string w; words >> w;) row.push_back(w);
    out.push_back(row);
  }
  return out;
}

const io::transform_bundle& bundle(const std::string& file) {
  static std::map<std::string, io::transform_bundle> cache;
  auto it = cache.find(file);
  if (it == cache.end()) it = cache.emplace(file, io::load_transforms(in_dir(file))).first;
  return it->second;
}

matrix_d npy_matrix(const std::string& file) {
  return io::read_npy(in_dir(file)).to_matrix<double>();
}

// A [n, B, B] stack of matrices from a .npy.
std::vector<matrix_d> npy_stack(const std::string& file) {
  const io::tensor t = io::read_npy(in_dir(file));
  EXPECT_EQ(t.shape.size(), 3u) << file;
  const index_t n = t.shape[0], b = t.shape[1];
  const auto v = t.to_vector<double>();
  std::vector<matrix_d> out;
  for (index_t k = 0; k < n; ++k)
    out.push_back(Eigen::Map<const matrix_d>(v.data() + k * b * b, b, b));
  return out;
}

double max_abs(const matrix_d& m) {
  return m.size() == 0 ? 0.0 : m.cwiseAbs().maxCoeff();
}

// Equal shapes and entries (Eigen's == requires equal shapes).
template <class A, class B>
bool identical(const A& a, const B& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && a == b;
}

TEST(ExportRotations, TransformsEqualThePeersMatrices) {
  REQUIRE_EXPORTED_FILES();
  const auto rows = manifest("transform");
  ASSERT_GE(rows.size(), 20u);
  std::uint64_t seed = 1;
  for (const auto& row : rows) {
    ASSERT_EQ(row.size(), 3u);
    SCOPED_TRACE(row[0] + " : " + row[1]);
    const io::transform_bundle& b = bundle(row[0]);
    EXPECT_EQ(b.metadata.at("producer"), "rotquant tools/export_rotations.py");
    const transform& t = b.at(row[1]);
    const matrix_d ref = npy_matrix(row[2]);
    ASSERT_EQ(t.dim(), ref.rows());
    ASSERT_EQ(ref.rows(), ref.cols());
    const double scale = std::max(1.0, max_abs(ref));
    EXPECT_LE(max_abs(t.to_dense() - ref), 1e-12 * scale);
    // A peer's dense matrix is stored exactly (float64 of its float32/float64 values).
    if (t.num_stages() == 1 && t.stages()[0].kind == rotquant::stage_kind::dense) {
      EXPECT_TRUE(identical(t.stages()[0].blocks[0], ref));
    }
    // apply(X) = X R (row convention), in double and in float.
    const matrix_d x = rotquant::random_normal_matrix<double>(7, t.dim(), seed++);
    const matrix_d want = x * ref;
    const double yscale = std::max(1.0, max_abs(want));
    EXPECT_LE(max_abs(t.apply(x) - want), 1e-12 * yscale);
    const rotquant::matrix_f yf = t.apply(rotquant::matrix_f(x.cast<float>()));
    EXPECT_LE(max_abs(yf.cast<double>() - want), 1e-4 * yscale);
  }
}

TEST(ExportRotations, FilesHoldExactlyTheListedTransforms) {
  REQUIRE_EXPORTED_FILES();
  const auto rows = manifest("count");
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& row : rows) {
    ASSERT_EQ(row.size(), 2u);
    const io::transform_bundle& b = bundle(row[0]);
    EXPECT_EQ(b.transforms.size(), std::stoul(row[1])) << row[0];
    const std::string method = b.metadata.at("method");
    EXPECT_TRUE(method == "dfrot" || method == "spinquant" || method == "duquant") << method;
  }
  // The file read back is the one written: load again from the raw safetensors image and
  // check the checksum the Python writer computed is the one rotquant computes.
  const io::safetensors_file f = io::read_safetensors(in_dir("duquant.safetensors"));
  EXPECT_EQ(f.metadata.at("checksum"), io::detail::hex64(io::detail::checksum(f)));
  EXPECT_EQ(f.metadata.at("block_size"), "16");
}

// DuQuant: the exported transform equals the one rotquant builds from the same smoothing
// scales, rotations and permutation: scale(s) (X / s), block_diagonal(R1), permutation
// (new channel i = old channel perm[i]), block_diagonal(R2). Stage for stage, bit for bit.
TEST(ExportRotations, DuQuantEqualsTheTransformRotquantBuilds) {
  REQUIRE_EXPORTED_FILES();
  const auto rows = manifest("duquant");
  ASSERT_GE(rows.size(), 15u);
  std::uint64_t seed = 100;
  for (const auto& row : rows) {
    ASSERT_EQ(row.size(), 3u);
    SCOPED_TRACE(row[0] + " : " + row[1]);
    const transform& loaded = bundle(row[0]).at(row[1]);
    const std::string& p = row[2];
    const matrix_d s = npy_matrix(p + ".s.npy");
    const io::tensor perm_t = io::read_npy(in_dir(p + ".perm.npy"));
    ASSERT_EQ(perm_t.type, io::dtype::i64);
    std::vector<index_t> perm;
    for (std::int64_t i = 0; i < perm_t.numel(); ++i)
      perm.push_back(static_cast<index_t>(perm_t.element(i)));
    transform built(s.cols());
    built.append_scale(s.row(0).transpose());
    const auto add_rotation = [&built](std::vector<matrix_d> blocks) {
      if (blocks.size() == 1)
        built.append_block_diagonal(blocks[0]);
      else
        built.append_block_diagonal(std::move(blocks));
    };
    add_rotation(npy_stack(p + ".R1.npy"));
    built.append_permutation(perm);
    add_rotation(npy_stack(p + ".R2.npy"));

    ASSERT_EQ(loaded.num_stages(), built.num_stages());
    for (std::size_t i = 0; i < built.num_stages(); ++i) {
      const auto& a = loaded.stages()[i];
      const auto& b = built.stages()[i];
      EXPECT_EQ(a.kind, b.kind) << "stage " << i;
      EXPECT_TRUE(identical(a.values, b.values)) << "stage " << i;
      EXPECT_EQ(a.perm, b.perm) << "stage " << i;
      ASSERT_EQ(a.blocks.size(), b.blocks.size()) << "stage " << i;
      for (std::size_t k = 0; k < a.blocks.size(); ++k)
        EXPECT_TRUE(identical(a.blocks[k], b.blocks[k])) << "stage " << i << " block " << k;
    }
    const matrix_d x = rotquant::random_normal_matrix<double>(5, built.dim(), seed++);
    EXPECT_TRUE(loaded.apply(x) == built.apply(x));
    EXPECT_TRUE(loaded.fold_into_weight(x) == built.fold_into_weight(x));
    EXPECT_TRUE(loaded.to_dense() == built.to_dense());
  }
}

std::uint32_t float_bits(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u;
}

TEST(ExportRotations, ActivationDumpsRoundTripExactly) {
  REQUIRE_EXPORTED_FILES();
  const auto rows = manifest("activation");
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& row : rows) {
    ASSERT_EQ(row.size(), 4u);
    SCOPED_TRACE(row[0] + " : " + row[1]);
    const io::safetensors_file f = io::read_safetensors(in_dir(row[0]));
    EXPECT_EQ(f.metadata.at("producer"), "rotquant tools/export_rotations.py");
    const io::tensor& t = f.at(row[1]);
    const io::tensor ref = io::read_npy(in_dir(row[3]));
    EXPECT_EQ(io::dtype_name(t.type), row[2]);
    ASSERT_EQ(t.shape, ref.shape);
    if (t.type == ref.type) {
      // float32 and int64 dumps: the very bytes.
      EXPECT_TRUE(t.bytes == ref.bytes);
      continue;
    }
    // float16 / bfloat16: every element decodes to the float PyTorch's .float() gives (the
    // reference), sign of zero included, and re-encodes to the stored bits.
    ASSERT_EQ(ref.type, io::dtype::f32);
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const float got = static_cast<float>(t.element(i));
      const float want = static_cast<float>(ref.element(i));
      ASSERT_EQ(float_bits(got), float_bits(want)) << "element " << i;
      std::uint16_t stored;
      std::memcpy(&stored, t.bytes.data() + 2 * i, 2);
      const std::uint16_t again = t.type == io::dtype::f16 ? io::detail::float_to_half(got)
                                                           : io::detail::float_to_bf16(got);
      ASSERT_EQ(again, stored) << "element " << i;
    }
  }
}

}  // namespace
