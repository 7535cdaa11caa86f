// SPDX-License-Identifier: Apache-2.0
// tools_testdata: the inputs and checks of the command-line tools' tests (not installed).
//
//   tools_testdata gen DIR
//     writes DIR/layers.safetensors: 2 layers (L.x [128, 64] with two outlier channels and one
//     massive token, L.weight [96, 64]; the second weight stored as BF16) plus one unrelated
//     tensor; DIR/x.npy and DIR/w.npy (the first layer); and malformed inputs:
//     truncated.safetensors, bad_header.safetensors, mismatch.safetensors (weight with 48
//     input features), no_layers.safetensors, nan.safetensors, bad.json.
//   tools_testdata check PREFIX INPUT N PRESET
//     loads PREFIX.transforms.safetensors with rotquant::io::load_transforms and checks that it
//     has N transforms named after INPUT's layers, of dimension C, with metadata preset PRESET;
//     then rebuilds each layer from the transform and PREFIX.weights.safetensors and checks that
//     (X M) W_q^T reproduces X W^T (SQNR above 10 dB; 4-bit weights give about 20).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/io/npy.hpp"
#include "rotquant/io/transform_file.hpp"

namespace {

namespace io = rotquant::io;
using rotquant::index_t;
using rotquant::matrix_f;

const index_t kTokens = 128, kChannels = 64, kOut = 96;
const char* const kLayers[] = {"layers.0.attn.qkv", "layers.0.mlp.up"};

// N(0, 1) activations with two outlier channels (scaled and offset) and one massive token.
matrix_f activations(int layer) {
  matrix_f x = rotquant::random_normal_matrix<float>(kTokens, kChannels, 100 + layer);
  const index_t a = 7 + 11 * layer, b = 41 - 5 * layer;
  x.col(a) = (x.col(a) * 8.0f).array() + 12.0f;
  x.col(b) = (x.col(b) * 6.0f).array() - 9.0f;
  const index_t massive = 3 + 40 * layer;
  x(massive, 13) = 1800.0f;
  x(massive, 50) = -1200.0f;
  return x;
}

matrix_f weight(int layer) {
  return rotquant::random_normal_matrix<float>(kOut, kChannels, 200 + layer) * 0.05f;
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  io::detail::write_file(path, bytes);
}

int gen(const std::string& dir) {
  std::filesystem::create_directories(dir);
  io::safetensors_file f;
  f.metadata["what"] = "rotquant tools test input";
  for (int l = 0; l < 2; ++l) {
    const std::string name = kLayers[l];
    f.add(name + ".x", io::tensor::from_matrix(activations(l)));
    // The second weight as BF16: the tools convert any float dtype.
    const io::tensor w =
        io::tensor::from_matrix(weight(l), l == 0 ? io::dtype::f32 : io::dtype::bf16);
    f.add(name + ".weight", w);
  }
  io::tensor extra = io::tensor::from_matrix(matrix_f::Ones(1, 8));
  f.add("rope.inv_freq", extra);
  const std::vector<std::uint8_t> good = io::serialize_safetensors(f);
  write_bytes(dir + "/layers.safetensors", good);

  io::write_npy(dir + "/x.npy", io::tensor::from_matrix(activations(0)));
  io::write_npy(dir + "/w.npy", io::tensor::from_matrix(weight(0)));

  write_bytes(dir + "/truncated.safetensors",
              std::vector<std::uint8_t>(good.begin(), good.end() - 10));
  const std::string header = "{\"a.x\": [1, 2";
  std::vector<std::uint8_t> bad(8, 0);
  bad[0] = static_cast<std::uint8_t>(header.size());
  bad.insert(bad.end(), header.begin(), header.end());
  write_bytes(dir + "/bad_header.safetensors", bad);

  io::safetensors_file mm;
  mm.add("proj.x", io::tensor::from_matrix(activations(0)));
  mm.add("proj.weight",
         io::tensor::from_matrix(rotquant::random_normal_matrix<float>(kOut, 48, 9)));
  io::write_safetensors(dir + "/mismatch.safetensors", mm);

  io::safetensors_file none;
  none.add("embed_tokens", io::tensor::from_matrix(weight(0)));
  io::write_safetensors(dir + "/no_layers.safetensors", none);

  io::safetensors_file nan;
  matrix_f xn = activations(0);
  xn(5, 9) = std::nanf("");
  nan.add("proj.x", io::tensor::from_matrix(xn));
  nan.add("proj.weight", io::tensor::from_matrix(weight(0)));
  io::write_safetensors(dir + "/nan.safetensors", nan);

  write_bytes(dir + "/bad.json", {'{', '"', 'c', 'o', 'n', 't', 'e', 'x', 't', '"', ':', ' ', '{'});
  std::printf("wrote the tools' test inputs to %s\n", dir.c_str());
  return 0;
}

// The layer's weight as the engine would use it: dequantized from the weights file.
matrix_f stored_weight(const io::safetensors_file& wf, const std::string& name, bool& checked) {
  const auto meta = [&](const std::string& key) {
    const auto it = wf.metadata.find(name + "." + key);
    if (it == wf.metadata.end())
      throw io::io_error("weights file lacks metadata " + name + "." + key);
    return it->second;
  };
  checked = true;
  if (meta("storage") == "dequantized_f32") return wf.at(name + ".weight").to_matrix<float>();
  const std::string format = meta("packed_format");
  const io::tensor& codes = wf.at(name + ".codes");
  const io::tensor& scales = wf.at(name + ".scales");
  const index_t rows = codes.shape[0], row_bytes = codes.shape[1];
  const index_t cols = kChannels, group = std::stol(meta("group"));
  matrix_f w = matrix_f::Zero(rows, cols);
  if (format != "qsi4cx" && format != "qsi4cg") {
    checked = false;  // FP4 codes: not decoded here
    return w;
  }
  const index_t gpr = scales.shape[1];
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) {
      const std::uint8_t byte = codes.bytes[static_cast<std::size_t>(r * row_bytes + c / 2)];
      const int nib = c % 2 ? byte >> 4 : byte & 15;
      const int code = nib >= 8 ? nib - 16 : nib;
      w(r, c) = static_cast<float>(code * scales.element(r * gpr + c / group));
    }
  return w;
}

int check(const std::string& prefix, const std::string& input, std::size_t n,
          const std::string& preset) {
  const io::transform_bundle b = io::load_transforms(prefix + ".transforms.safetensors");
  const io::safetensors_file in = io::read_safetensors(input);
  const io::safetensors_file wf = io::read_safetensors(prefix + ".weights.safetensors");
  int failures = 0;
  auto fail = [&](const std::string& why) {
    std::printf("FAIL: %s\n", why.c_str());
    ++failures;
  };
  std::printf("%s: %zu transforms, preset '%s'\n", prefix.c_str(), b.transforms.size(),
              b.metadata.count("preset") ? b.metadata.at("preset").c_str() : "?");
  if (b.transforms.size() != n)
    fail("expected " + std::to_string(n) + " transforms, found " +
         std::to_string(b.transforms.size()));
  if (!b.metadata.count("preset") || b.metadata.at("preset") != preset)
    fail("metadata preset is not '" + preset + "'");
  for (const char* key :
       {"seed", "weight_quantizer", "activation_quantizer", "packed_weight_format"})
    if (!b.metadata.count(key)) fail(std::string("metadata lacks '") + key + "'");
  for (const auto& kv : b.transforms) {
    const std::string& name = kv.first;
    const rotquant::transform& t = kv.second;
    if (!in.contains(name + ".x")) {
      fail("transform '" + name + "' names no layer of " + input);
      continue;
    }
    const matrix_f x = in.at(name + ".x").to_matrix<float>();
    const matrix_f w = in.at(name + ".weight").to_matrix<float>();
    if (t.dim() != x.cols()) {
      fail("transform '" + name + "' has dimension " + std::to_string(t.dim()));
      continue;
    }
    bool checked = false;
    const matrix_f wq = stored_weight(wf, name, checked);
    const matrix_f y = x * w.transpose();
    const matrix_f yq = (t.num_stages() ? t.apply(x) : x) * wq.transpose();
    const double err = (y - yq).cast<double>().squaredNorm();
    const double sqnr = 10 * std::log10(y.cast<double>().squaredNorm() / err);
    std::printf("  %-20s dim %lld, %zu stages, %s, (X M) W_q^T vs X W^T: SQNR %.2f dB\n",
                name.c_str(), static_cast<long long>(t.dim()), t.num_stages(),
                wf.metadata.at(name + ".storage").c_str(), checked ? sqnr : 0.0);
    if (checked && !(sqnr > 10)) fail("layer '" + name + "' does not reproduce X W^T");
  }
  if (failures)
    std::printf("%d check(s) failed\n", failures);
  else
    std::printf("all checks passed\n");
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() == 2 && a[0] == "gen") return gen(a[1]);
    if (a.size() == 5 && a[0] == "check")
      return check(a[1], a[2], static_cast<std::size_t>(std::stoul(a[3])), a[4]);
    std::fprintf(stderr,
                 "usage: tools_testdata gen DIR\n"
                 "       tools_testdata check PREFIX INPUT N PRESET\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tools_testdata: %s\n", e.what());
    return 1;
  }
}
