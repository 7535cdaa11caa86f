// SPDX-License-Identifier: Apache-2.0
// rotquant-calibrate: calibrates a rotquant preset on every layer of a calibration file (weights
// by round to nearest, or by GPTQ with --weights gptq) and writes what an engine loads: the online
// transforms (PREFIX.transforms.safetensors, read back with rotquant::io::load_transforms) and the
// quantized weights (PREFIX.weights.safetensors), then prints each layer's error report
// (quantized_linear::report on the calibration data).
//
// Weights file, per layer L (metadata "L.storage" says which form was written):
//   storage = packed (the layer has a packed kernel): L.codes U8 [out, row_bytes] (quantize()'s
//     codes: two 4-bit codes per byte, element 2i in the low nibble; signed INT as two's
//     complement), L.scales F32 [out, groups per row], L.zero_points I32 (asymmetric only),
//     L.scale_codes U8 (E8M0 / UE4M3 block scales), metadata L.packed_format (the kernels'
//     weight format, for rotquant::pack_weights), L.group, L.tensor_scale (NVFP4);
//   storage = dequantized_f32 (no kernel for the quantizer pair): L.weight F32 [out, C], the
//     fake-quantized weight W M^-T.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "calibration.hpp"
#include "cli.hpp"
#include "layers.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/io/transform_file.hpp"
#include "rotquant/version.hpp"

namespace {

using rotquant::index_t;

const char* const kTool = "rotquant-calibrate";

void print_usage() {
  std::printf(
      "usage: rotquant-calibrate [options] INPUT.safetensors\n"
      "       rotquant-calibrate [options] --x X.npy --w W.npy [--name NAME]\n"
      "\n"
      "Calibrates a preset on every layer L of INPUT (tensors L.x [T, C] calibration activations\n"
      "and L.weight [out, C]) and writes PREFIX.transforms.safetensors (the online transforms,\n"
      "rotquant::io::load_transforms) and PREFIX.weights.safetensors (the quantized weights),\n"
      "then prints each layer's error report on its calibration activations.\n"
      "\n"
      "options:\n"
      "  --preset P    %s (default quarot)\n"
      "  --weights M   %s: weights by round to nearest, or by GPTQ on the Hessian of the\n"
      "                layer's calibration activations after the preset's transform (block 128,\n"
      "                percdamp 0.01), on the preset's weight quantizer (default rtn)\n"
      "  --seed N      seed of the randomized rotations (default 0)\n"
      "  --out PREFIX  output prefix (default: INPUT without .safetensors, then .PRESET, then\n"
      "                -gptq with --weights gptq)\n"
      "  --threads N   layers calibrated at once (default: hardware threads)\n"
      "  --x, --w      one layer from .npy files instead of INPUT; --name names it (default "
      "linear)\n"
      "  --quiet       no report, only the written files\n"
      "  -h, --help    this text\n"
      "exit status: 0 done, 1 bad input (the message names the problem), 2 usage error\n",
      rqtool::preset_list().c_str(), rqtool::weight_method_list().c_str());
}

struct options {
  std::string input, x_npy, w_npy, name = "linear", preset = "quarot", weights = "rtn", out;
  std::uint64_t seed = 0;
  int threads = 0;
  bool quiet = false;
};

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  if (s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0)
    return s.substr(0, s.size() - suffix.size());
  return s;
}

// The same value for every layer, or "per layer" (then the per-layer keys hold them).
std::string common_value(const std::vector<std::string>& v) {
  for (const auto& s : v)
    if (s != v.front()) return "per layer";
  return v.empty() ? "" : v.front();
}

std::string packed_format(const rqtool::calibrated_layer& q) {
  return q.has_kernel ? q.packed_format : "none (fake quantization)";
}

rotquant::io::tensor u8_tensor(const std::vector<std::uint8_t>& bytes, std::int64_t rows,
                               std::int64_t cols) {
  rotquant::io::tensor t;
  t.type = rotquant::io::dtype::u8;
  t.shape = {rows, cols};
  t.bytes = bytes;
  return t;
}

template <class T>
rotquant::io::tensor raw_tensor(rotquant::io::dtype type, const std::vector<T>& v,
                                std::int64_t rows, std::int64_t cols) {
  rotquant::io::tensor t;
  t.type = type;
  t.shape = {rows, cols};
  t.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

void add_weights(rotquant::io::safetensors_file& f, const std::string& name,
                 const rqtool::calibrated_layer& q, const rqtool::layer_data& l) {
  auto& meta = f.metadata;
  meta[name + ".shape"] = std::to_string(l.w.rows()) + "," + std::to_string(l.w.cols());
  meta[name + ".weight_quantizer"] = q.weight_quantizer;
  if (!q.has_kernel) {
    meta[name + ".storage"] = "dequantized_f32";
    f.add(name + ".weight", rotquant::io::tensor::from_matrix(q.weight_dequantized));
    return;
  }
  const rqtool::weight_codes& c = q.codes;
  const std::int64_t rows = c.rows;
  const std::int64_t scale_rows = c.scales.size() == 1 ? 1 : rows;
  const std::int64_t scale_cols = static_cast<std::int64_t>(c.scales.size()) / scale_rows;
  meta[name + ".storage"] = "packed";
  meta[name + ".packed_format"] = q.packed_format;
  meta[name + ".group"] = std::to_string(c.group);
  meta[name + ".tensor_scale"] = rqtool::format("%.9g", static_cast<double>(c.tensor_scale));
  f.add(name + ".codes", u8_tensor(c.codes, rows, c.row_bytes));
  f.add(name + ".scales", raw_tensor(rotquant::io::dtype::f32, c.scales, scale_rows, scale_cols));
  if (!c.zero_points.empty())
    f.add(name + ".zero_points",
          raw_tensor(rotquant::io::dtype::i32, c.zero_points, scale_rows, scale_cols));
  if (!c.scale_codes.empty())
    f.add(name + ".scale_codes", u8_tensor(c.scale_codes, scale_rows, scale_cols));
}

void print_report(const rqtool::layer_data& l, const rqtool::calibrated_layer& q,
                  const std::string& weights, double seconds) {
  const rotquant::linear_report& r = q.report;
  using rqtool::format;
  using rqtool::pad;
  std::printf("layer %s  x [%lld, %lld]  W [%lld, %lld]  calibrated in %.2f s\n", l.name.c_str(),
              static_cast<long long>(l.x.rows()), static_cast<long long>(l.x.cols()),
              static_cast<long long>(l.w.rows()), static_cast<long long>(l.w.cols()), seconds);
  std::printf("  weights %s by %s, activations %s, %s\n", q.weight_quantizer.c_str(),
              weights == "gptq" ? "GPTQ" : "round to nearest", q.activation_quantizer.c_str(),
              q.has_kernel ? ("packed kernel " + q.packed_format).c_str()
                           : "fake quantization (no kernel)");
  std::printf("  output   SQNR %.2f dB   MSE %.4g   max |err| %.4g\n", r.output_sqnr_db,
              r.output_mse, r.output_max_abs_error);
  std::printf("  tokens   %lld massive (MSE %.4g)   %lld normal (MSE %.4g)\n",
              static_cast<long long>(r.massive_tokens), r.massive_token_mse,
              static_cast<long long>(r.normal_tokens), r.normal_token_mse);
  std::printf("  %s %12s %12s %18s\n", pad("activations after", 24).c_str(), "max|x|", "kurtosis",
              "max/median token");
  for (const auto& s : r.stages)
    std::printf("  %s %12s %12s %18s\n", pad(s.stage, 24).c_str(),
                format("%.4g", s.max_abs).c_str(), format("%.4g", s.kurtosis).c_str(),
                format("%.4g", s.max_token_ratio).c_str());
  std::printf("\n");
}

// One row per layer: the headline numbers of every report.
void print_summary(const std::vector<rqtool::layer_data>& layers,
                   const std::vector<rqtool::calibrated_layer>& quantized) {
  using rqtool::format;
  using rqtool::pad;
  std::size_t w = 5;
  for (const auto& l : layers) w = std::max(w, l.name.size());
  std::printf("%s %8s %10s %11s %11s %21s %21s  %s\n", pad("layer", w).c_str(), "SQNR dB", "MSE",
              "massive MSE", "normal MSE", "max|x| in -> out", "kurtosis in -> out", "weights");
  for (std::size_t k = 0; k < layers.size(); ++k) {
    const auto& r = quantized[k].report;
    const auto& in = r.stages.front();
    const auto& out = r.stages.back();
    std::printf("%s %8.2f %10.4g %11s %11.4g %21s %21s  %s\n", pad(layers[k].name, w).c_str(),
                r.output_sqnr_db, r.output_mse,
                r.massive_tokens ? format("%.4g", r.massive_token_mse).c_str() : "-",
                r.normal_token_mse, format("%.4g -> %.4g", in.max_abs, out.max_abs).c_str(),
                format("%.4g -> %.4g", in.kurtosis, out.kurtosis).c_str(),
                packed_format(quantized[k]).c_str());
  }
  std::printf("\n");
}

int run(const std::vector<std::string>& args) {
  options o;
  rqtool::arg_reader a(args);
  std::string v;
  while (!a.done()) {
    if (a.flag("-h") || a.flag("--help")) {
      print_usage();
      return 0;
    } else if (a.flag("--quiet")) {
      o.quiet = true;
    } else if (a.option("--preset", v)) {
      if (!rqtool::is_preset(v))
        throw rqtool::usage_error("unknown preset '" + v + "' (expected " + rqtool::preset_list() +
                                  ")");
      o.preset = v;
    } else if (a.option("--weights", v)) {
      const auto& m = rqtool::weight_methods();
      if (std::find(m.begin(), m.end(), v) == m.end())
        throw rqtool::usage_error("unknown --weights '" + v + "' (expected " +
                                  rqtool::weight_method_list() + ")");
      o.weights = v;
    } else if (a.option("--seed", v)) {
      o.seed = rqtool::parse_count("--seed", v);
    } else if (a.option("--threads", v)) {
      const auto n = rqtool::parse_count("--threads", v);
      if (n < 1 || n > 1024) throw rqtool::usage_error("--threads expects 1..1024, got " + v);
      o.threads = static_cast<int>(n);
    } else if (a.option("--out", v)) {
      o.out = v;
    } else if (a.option("--x", v)) {
      o.x_npy = v;
    } else if (a.option("--w", v)) {
      o.w_npy = v;
    } else if (a.option("--name", v)) {
      o.name = v;
    } else if (a.positional(v)) {
      if (!o.input.empty()) throw rqtool::usage_error("more than one INPUT ('" + v + "')");
      o.input = v;
    }
  }
  const bool npy = !o.x_npy.empty() || !o.w_npy.empty();
  if (npy && (o.x_npy.empty() || o.w_npy.empty()))
    throw rqtool::usage_error("--x and --w go together");
  if (npy && !o.input.empty()) throw rqtool::usage_error("give INPUT or --x/--w, not both");
  if (!npy && o.input.empty()) throw rqtool::usage_error("no INPUT file given");
  const bool gptq = o.weights == "gptq";
  if (o.out.empty())
    o.out = strip_suffix(npy ? o.w_npy : o.input, npy ? ".npy" : ".safetensors") + "." + o.preset +
            (gptq ? "-gptq" : "");

  std::vector<rqtool::layer_data> layers;
  if (npy)
    layers.push_back(rqtool::load_npy_layer(o.x_npy, o.w_npy, o.name));
  else
    layers = rqtool::load_layers(o.input);

  const std::size_t n = layers.size();
  int threads = o.threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), n));
  std::printf("%s %s: preset %s, weights %s, seed %llu, %zu layer%s, %d thread%s\n", kTool,
              rotquant::version.string, o.preset.c_str(), o.weights.c_str(),
              static_cast<unsigned long long>(o.seed), n, n == 1 ? "" : "s", threads,
              threads == 1 ? "" : "s");
  std::fflush(stdout);

  // Layers calibrate independently: spread them over the pool (parallelism inside a
  // calibration then runs inline). Results do not depend on the thread count.
  std::vector<rqtool::calibrated_layer> quantized(n);
  std::vector<double> seconds(n, 0.0);
  rotquant::thread_pool_executor pool(threads);
  rotquant::set_default_executor(&pool);
  rqtool::progress bar("calibrating", n);
  try {
    rotquant::parallel_for(0, static_cast<index_t>(n), 1, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i) {
        const auto k = static_cast<std::size_t>(i);
        const auto& l = layers[k];
        const auto t0 = std::chrono::steady_clock::now();
        try {
          rqtool::calibrate_options co;
          co.report = !o.quiet;
          co.gptq = gptq;
          quantized[k] = rqtool::calibrate_layer(o.preset, o.seed, l.x, l.w, co);
        } catch (const rotquant::error& e) {
          throw rotquant::error("layer '" + l.name + "': " + e.what());
        }
        seconds[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        bar.finished(l.name, seconds[k]);
      }
    });
  } catch (...) {
    rotquant::set_default_executor(nullptr);
    throw;
  }
  rotquant::set_default_executor(nullptr);

  // Transforms: one per layer, named by the layer, with the recipe in the metadata.
  rotquant::io::transform_bundle bundle;
  std::vector<std::string> wq, aq, pf;
  std::string names;
  for (std::size_t k = 0; k < n; ++k) {
    const auto& q = quantized[k];
    const std::string& name = layers[k].name;
    bundle.transforms.emplace_back(name, q.online);
    wq.push_back(q.weight_quantizer);
    aq.push_back(q.activation_quantizer);
    pf.push_back(packed_format(q));
    names += (names.empty() ? "" : ",") + name;
  }
  auto& meta = bundle.metadata;
  meta["tool"] = std::string(kTool) + " " + rotquant::version.string;
  meta["preset"] = o.preset;
  meta["weights"] = o.weights;
  meta["seed"] = std::to_string(o.seed);
  meta["weight_quantizer"] = common_value(wq);
  meta["activation_quantizer"] = common_value(aq);
  meta["packed_weight_format"] = common_value(pf);
  if (o.preset == "duquant") {
    std::vector<std::string> blocks;
    for (const auto& l : layers)
      blocks.push_back(std::to_string(rqtool::duquant_block(l.x.cols())));
    meta["duquant_block"] = common_value(blocks);
  }
  for (std::size_t k = 0; k < n; ++k) {
    const std::string& name = layers[k].name;
    meta[name + ":weight_quantizer"] = wq[k];
    meta[name + ":activation_quantizer"] = aq[k];
    meta[name + ":packed_weight_format"] = pf[k];
  }
  const std::string transforms_path = o.out + ".transforms.safetensors";
  rotquant::io::save_transforms(transforms_path, bundle);

  // Weights: packed codes and scales, or the fake-quantized float weight.
  rotquant::io::safetensors_file wf;
  wf.metadata["tool"] = meta["tool"];
  wf.metadata["preset"] = o.preset;
  wf.metadata["weights"] = o.weights;
  wf.metadata["seed"] = meta["seed"];
  wf.metadata["layers"] = names;
  for (std::size_t k = 0; k < n; ++k) add_weights(wf, layers[k].name, quantized[k], layers[k]);
  const std::string weights_path = o.out + ".weights.safetensors";
  rotquant::io::write_safetensors(weights_path, wf);

  if (!o.quiet) {
    std::printf("\n");
    for (std::size_t k = 0; k < n; ++k)
      print_report(layers[k], quantized[k], o.weights, seconds[k]);
    print_summary(layers, quantized);
  }
  std::printf("wrote %s (%zu transform%s)\n", transforms_path.c_str(), n, n == 1 ? "" : "s");
  std::printf("wrote %s (%s)\n", weights_path.c_str(),
              common_value(pf) == pf.front()
                  ? (quantized.front().has_kernel ? "packed codes and scales"
                                                  : "fake-quantized float weights")
                  : "packed where a kernel exists, float otherwise");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return rqtool::run_tool(kTool, argc, argv, run);
}
