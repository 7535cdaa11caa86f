// SPDX-License-Identifier: Apache-2.0
// The bad-input table (issue 26): one row per malformed input to a public entry point, with the
// exception type it must throw and the words its message must hold. Rows cover the transform
// builders, quantizers, packing, kernels, pipeline stages and presets, io readers and writers,
// transform files and the core helpers. Every row runs as its own test, so the ASan+UBSan job
// shows which input tripped a sanitizer; a row passes only if the call throws exactly the given
// type (rotquant::error, or rotquant::io::io_error for files) and nothing else escapes.
#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/io/npy.hpp"
#include "rotquant/io/safetensors.hpp"
#include "rotquant/io/tensor.hpp"
#include "rotquant/io/transform_file.hpp"
#include "rotquant/kernels/gemm.hpp"
#include "rotquant/kernels/quantize_activations.hpp"
#include "rotquant/pipeline/model.hpp"
#include "rotquant/pipeline/pipeline.hpp"
#include "rotquant/pipeline/presets.hpp"
#include "rotquant/quant/gptq.hpp"
#include "rotquant/quant/metrics.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/quant/search.hpp"
#include "rotquant/transforms/dfrot.hpp"
#include "rotquant/transforms/duquant.hpp"
#include "rotquant/transforms/hadamard.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "rotquant/transforms/permutation.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"
#include "rotquant/transforms/smooth.hpp"
#include "rotquant/transforms/transform.hpp"

namespace {

namespace io = rotquant::io;
using rotquant::act_format;
using rotquant::granularity;
using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;
using rotquant::packed_activations;
using rotquant::packed_weights;
using rotquant::quantizer;
using rotquant::transform;
using rotquant::vector_d;
using rotquant::weight_format;

/// The exact type a row must throw.
enum class thrown { error, io_error };

/// One malformed input: the entry point, what is wrong with the input, the call, the type it
/// must throw and words its message must hold.
struct bad_case {
  std::string id;     ///< unique test name (letters, digits, underscores)
  std::string entry;  ///< public entry point
  std::string input;  ///< the malformed input
  std::function<void()> call;
  thrown type = thrown::error;
  std::vector<std::string> words;
};

void PrintTo(const bad_case& c, std::ostream* os) {
  *os << c.entry << " <- " << c.input;
}

constexpr index_t big = index_t{1} << 62;

matrix_f gaussian(index_t r, index_t c, std::uint64_t seed) {
  return rotquant::random_normal_matrix<float>(r, c, seed);
}
matrix_f with_nan(matrix_f x) {
  x(x.rows() - 1, x.cols() - 1) = std::nanf("");
  return x;
}

// Valid kernel inputs the rows edit: 3 x 64 activations, 20 x 64 weights.
const matrix_f& x64() {
  static const matrix_f x = gaussian(3, 64, 1);
  return x;
}
const matrix_f& w64() {
  static const matrix_f w = gaussian(20, 64, 2);
  return w;
}
packed_activations acts(act_format f = act_format::qsi4dx, index_t group = 0) {
  return rotquant::quantize_activations(x64(), f, 1.0f, group);
}
packed_weights weights(weight_format f = weight_format::qsi4cx, index_t group = 0) {
  return rotquant::pack_weights(w64(), f, group);
}
template <class Edit>
packed_activations edited_acts(Edit edit, act_format f = act_format::qsi4dx, index_t group = 0) {
  packed_activations a = acts(f, group);
  edit(a);
  return a;
}
template <class Edit>
packed_weights edited_weights(Edit edit, weight_format f = weight_format::qsi4cx,
                              index_t group = 0) {
  packed_weights w = weights(f, group);
  edit(w);
  return w;
}
void matmul(const packed_activations& a, const packed_weights& w) {
  matrix_f out(a.m > 0 ? a.m : 0, w.n > 0 ? w.n : 0);
  rotquant::quantized_matmul(a, w, rotquant::view(out));
}
template <class Edit>
rotquant::quantized_matrix edited_codes(Edit edit, const quantizer& q = quantizer::int_sym(4)) {
  rotquant::quantized_matrix m = rotquant::quantize(q, w64());
  edit(m);
  return m;
}

// io inputs.
io::tensor f32_tensor(std::vector<std::int64_t> shape, std::size_t nbytes) {
  io::tensor t;
  t.type = io::dtype::f32;
  t.shape = std::move(shape);
  t.bytes.assign(nbytes, 0);
  return t;
}
io::safetensors_file one_tensor_file(io::tensor t) {
  io::safetensors_file f;
  f.add("t", std::move(t));
  return f;
}
std::vector<std::uint8_t> npy_image() {
  return io::serialize_npy(io::tensor::from_matrix(gaussian(2, 3, 3)));
}
std::vector<std::uint8_t> safetensors_image() {
  return io::serialize_safetensors(one_tensor_file(io::tensor::from_matrix(gaussian(2, 3, 3))));
}
const std::string& missing_dir() {
  static const std::string d = std::string(::testing::TempDir()) + "/rotquant_no_such_dir/";
  return d;
}

// A transform file image (signs, permutation, block-diagonal, Hadamard over C = 8) and an edit
// of it that re-signs the checksum, as a user editing the file by hand would.
io::safetensors_file transform_image() {
  transform t(8);
  t.append_signs(rotquant::random_signs<double>(8, 1));
  t.append_permutation(rotquant::random_permutation(8, 2));
  t.append_block_diagonal(rotquant::random_orthogonal(4, 3));
  t.append_hadamard();
  io::transform_bundle b;
  b.transforms.emplace_back("t", t);
  return io::to_safetensors(b);
}
template <class Edit>
io::transform_bundle reload_edited(Edit edit, bool resign = true) {
  io::safetensors_file f = transform_image();
  edit(f);
  if (resign) f.metadata["checksum"] = io::detail::hex64(io::detail::checksum(f));
  return io::from_safetensors(f, "edited.safetensors");
}
io::tensor& tensor_named(io::safetensors_file& f, const std::string& name) {
  for (auto& kv : f.tensors)
    if (kv.first == name) return kv.second;
  throw std::logic_error("test setup: no tensor " + name);
}

// Pipeline inputs: 16 tokens x 16 channels (a Hadamard size), weight 8 x 16.
const matrix_f& px() {
  static const matrix_f x = gaussian(16, 16, 4);
  return x;
}
const matrix_f& pw() {
  static const matrix_f w = gaussian(8, 16, 5);
  return w;
}
const rotquant::quantized_linear& rtn_layer() {
  static const rotquant::quantized_linear l = rotquant::presets::rtn().calibrate(px(), pw());
  return l;
}

std::vector<bad_case> kernel_cases() {
  using E = thrown;
  std::vector<bad_case> v;
  auto add = [&v](std::string id, std::string entry, std::string input, std::function<void()> f,
                  std::vector<std::string> words, E type = E::error) {
    v.push_back(
        {std::move(id), std::move(entry), std::move(input), std::move(f), type, std::move(words)});
  };
  // ---- quantized_matmul: hand-edited packed_weights
  add("matmul_w_block_zero", "quantized_matmul", "packed_weights.block = 0",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.block = 0; })); },
      {"quantized_matmul", "packed_weights.block = 0", "k = 64"});
  add("matmul_wcg_block_zero", "quantized_matmul", "qsi4cg packed_weights.block = 0",
      [] {
        matmul(acts(),
               edited_weights([](packed_weights& w) { w.block = 0; }, weight_format::qsi4cg, 32));
      },
      {"packed_weights.block = 0", "multiple of 8"});
  add("matmul_w_scales_cleared", "quantized_matmul", "packed_weights.scales cleared",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.scales.clear(); })); },
      {"packed_weights.scales.size() = 0", "panels * blocks * 16"});
  add("matmul_w_scales_short", "quantized_matmul", "packed_weights.scales one short",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.scales.pop_back(); })); },
      {"packed_weights.scales.size() = 31"});
  add("matmul_w_data_short", "quantized_matmul", "packed_weights.data one byte short",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.data.pop_back(); })); },
      {"packed_weights.data.size()", "panels * panel_bytes()"});
  add("matmul_w_data_cleared", "quantized_matmul", "packed_weights.data cleared",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.data.clear(); })); },
      {"packed_weights.data.size() = 0"});
  add("matmul_w_n_grown", "quantized_matmul", "packed_weights.n = 1000 (buffers for 20)",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.n = 1000; })); },
      {"packed_weights.panels = 2", "ceil(n / 16)"});
  add("matmul_w_n_negative", "quantized_matmul", "packed_weights.n = -5",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.n = -5; })); },
      {"packed_weights.n = -5", ">= 1"});
  add("matmul_w_k_zero", "quantized_matmul", "packed_weights.k = 0",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.k = 0; })); },
      {"packed_weights.k = 0"});
  add("matmul_w_k_huge", "quantized_matmul", "packed_weights.k = 2^62",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.k = big; })); },
      {"packed_weights.k", "int32-exact"});
  add("matmul_w_kp_wrong", "quantized_matmul", "packed_weights.kp = 72 for k = 64",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.kp = 72; })); },
      {"packed_weights.kp = 72", "64"});
  add("matmul_w_blocks_wrong", "quantized_matmul", "packed_weights.blocks = 3",
      [] {
        matmul(acts(),
               edited_weights([](packed_weights& w) { w.blocks = 3; }, weight_format::qsi4cg, 32));
      },
      {"packed_weights.blocks = 3", "ceil(k / block)"});
  add("matmul_w_panels_zero", "quantized_matmul", "packed_weights.panels = 0",
      [] { matmul(acts(), edited_weights([](packed_weights& w) { w.panels = 0; })); },
      {"packed_weights.panels = 0"});
  add("matmul_w_format_bad", "quantized_matmul", "packed_weights.format = 9",
      [] {
        matmul(acts(),
               edited_weights([](packed_weights& w) { w.format = static_cast<weight_format>(9); }));
      },
      {"packed_weights.format = 9"});
  add("matmul_w_mxfp4_block", "quantized_matmul", "mxfp4 packed_weights.block = 16",
      [] {
        matmul(acts(),
               edited_weights([](packed_weights& w) { w.block = 16; }, weight_format::mxfp4));
      },
      {"packed_weights.block = 16", "32 for mxfp4"});
  add("matmul_w_nvfp4_block", "quantized_matmul", "nvfp4 packed_weights.block = 32",
      [] {
        matmul(acts(),
               edited_weights([](packed_weights& w) { w.block = 32; }, weight_format::nvfp4));
      },
      {"packed_weights.block = 32", "16 for nvfp4"});
  add("matmul_w_tensor_scale_nan", "quantized_matmul", "packed_weights.tensor_scale = NaN",
      [] {
        matmul(acts(), edited_weights([](packed_weights& w) { w.tensor_scale = std::nanf(""); }));
      },
      {"packed_weights.tensor_scale", "finite"});
  add("matmul_w_default", "quantized_matmul", "default-constructed packed_weights",
      [] { matmul(acts(), packed_weights{}); }, {"packed_weights.n = 0"});
  // ---- quantized_matmul: hand-edited packed_activations
  add("matmul_a_block_zero", "quantized_matmul", "qsi4dg packed_activations.block = 0",
      [] {
        matmul(edited_acts([](packed_activations& a) { a.block = 0; }, act_format::qsi4dg, 32),
               weights());
      },
      {"packed_activations.block = 0", "multiple of 8"});
  add("matmul_a_mx_block_zero", "quantized_matmul", "mxfp4 packed_activations.block = 0",
      [] {
        matmul(edited_acts([](packed_activations& a) { a.block = 0; }, act_format::mxfp4),
               weights());
      },
      {"packed_activations.block = 0", "32 for mxfp4"});
  add("matmul_a_scales_cleared", "quantized_matmul", "packed_activations.scales cleared",
      [] { matmul(edited_acts([](packed_activations& a) { a.scales.clear(); }), weights()); },
      {"packed_activations.scales.size() = 0", "m * blocks"});
  add("matmul_a_sums_cleared", "quantized_matmul", "packed_activations.sums cleared",
      [] { matmul(edited_acts([](packed_activations& a) { a.sums.clear(); }), weights()); },
      {"packed_activations.sums.size() = 0"});
  add("matmul_a_sums_short", "quantized_matmul", "mxfp4 packed_activations.sums one short",
      [] {
        matmul(edited_acts([](packed_activations& a) { a.sums.pop_back(); }, act_format::mxfp4),
               weights(weight_format::mxfp4));
      },
      {"packed_activations.sums.size() = 5"});
  add("matmul_a_codes_short", "quantized_matmul", "packed_activations.codes one short",
      [] { matmul(edited_acts([](packed_activations& a) { a.codes.pop_back(); }), weights()); },
      {"packed_activations.codes.size() = 191", "m * stride"});
  add("matmul_a_m_grown", "quantized_matmul", "packed_activations.m = 5 (buffers for 3)",
      [] { matmul(edited_acts([](packed_activations& a) { a.m = 5; }), weights()); },
      {"packed_activations.codes.size() = 192", "5 * 64"});
  add("matmul_a_m_negative", "quantized_matmul", "packed_activations.m = -1",
      [] { matmul(edited_acts([](packed_activations& a) { a.m = -1; }), weights()); },
      {"packed_activations.m = -1", ">= 0"});
  add("matmul_a_stride_zero", "quantized_matmul", "packed_activations.stride = 0",
      [] { matmul(edited_acts([](packed_activations& a) { a.stride = 0; }), weights()); },
      {"packed_activations.stride = 0", "rounded up to 8"});
  add("matmul_a_k_zero", "quantized_matmul", "packed_activations.k = 0",
      [] { matmul(edited_acts([](packed_activations& a) { a.k = 0; }), weights()); },
      {"packed_activations.k = 0"});
  add("matmul_a_blocks_wrong", "quantized_matmul", "packed_activations.blocks = 2",
      [] { matmul(edited_acts([](packed_activations& a) { a.blocks = 2; }), weights()); },
      {"packed_activations.blocks = 2", "ceil(k / block)"});
  add("matmul_a_format_bad", "quantized_matmul", "packed_activations.format = 17",
      [] {
        matmul(edited_acts([](packed_activations& a) { a.format = static_cast<act_format>(17); }),
               weights());
      },
      {"packed_activations.format = 17"});
  add("matmul_a_zero_points_cleared", "quantized_matmul", "qai4dx zero_points cleared",
      [] {
        matmul(
            edited_acts([](packed_activations& a) { a.zero_points.clear(); }, act_format::qai4dx),
            weights());
      },
      {"packed_activations.zero_points.size() = 0", "m = 3"});
  add("matmul_a_zero_points_extra", "quantized_matmul", "qsi4dx with zero_points",
      [] {
        matmul(edited_acts([](packed_activations& a) { a.zero_points.assign(3, 0); }), weights());
      },
      {"packed_activations.zero_points.size() = 3", "0 for qsi4dx"});
  add("matmul_a_scale_bytes_cleared", "quantized_matmul", "nvfp4 scale_bytes cleared",
      [] {
        matmul(edited_acts([](packed_activations& a) { a.scale_bytes.clear(); }, act_format::nvfp4),
               weights());
      },
      {"packed_activations.scale_bytes.size() = 0", "m * blocks"});
  add("matmul_a_tensor_scale_inf", "quantized_matmul", "packed_activations.tensor_scale = Inf",
      [] {
        matmul(edited_acts([](packed_activations& a) {
                 a.tensor_scale = std::numeric_limits<float>::infinity();
               }),
               weights());
      },
      {"packed_activations.tensor_scale", "finite"});
  // ---- quantized_matmul: shapes, epilogue, output
  add("matmul_k_mismatch", "quantized_matmul", "activations K = 48, weights K = 64",
      [] {
        matmul(rotquant::quantize_activations(gaussian(3, 48, 1), act_format::qsi4dx), weights());
      },
      {"K = 48", "must match"});
  add("matmul_blocks_incompatible", "quantized_matmul", "qsi4dg group 24 x qsi4cg group 32",
      [] { matmul(acts(act_format::qsi4dg, 24), weights(weight_format::qsi4cg, 32)); },
      {"incompatible"});
  add("matmul_out_shape", "quantized_matmul", "output 4 x 20 for 3 x 20",
      [] {
        matrix_f out = matrix_f::Zero(4, 20);
        rotquant::quantized_matmul(acts(), weights(), rotquant::view(out));
      },
      {"output is 4 x 20", "expected 3 x 20"});
  add("matmul_bias_size", "quantized_matmul", "bias of 5 for N = 20",
      [] {
        const rotquant::vector_f b = rotquant::vector_f::Zero(5);
        matrix_f out = matrix_f::Zero(3, 20);
        rotquant::quantized_matmul(acts(), weights(), rotquant::view(out),
                                   rotquant::gemm_epilogue::with_bias(b));
      },
      {"bias has 5 entries"});
  add("matmul_out_aliases_bias", "quantized_matmul", "bias is the output's first row",
      [] {
        matrix_f out = matrix_f::Zero(3, 20);
        rotquant::gemm_epilogue ep;
        ep.bias = out.data();
        ep.bias_size = 20;
        rotquant::quantized_matmul(acts(), weights(), rotquant::view(out), ep);
      },
      {"output overlaps the bias"});
  add("matmul_out_aliases_w_scales", "quantized_matmul", "output view over W.scales",
      [] {
        const packed_activations a = acts();
        packed_weights w = weights();
        w.scales.resize(64 * 16);  // room for the 3 x 20 output; panels then mismatch, so
        w.scales.resize(32);       // shrink back: capacity keeps the storage in place
        rotquant::matrix_view<float> out(w.scales.data(), 3, 20, Eigen::OuterStride<>(20));
        rotquant::quantized_matmul(a, w, out);
      },
      {"output overlaps W.scales"});
  add("matmul_out_null", "quantized_matmul", "output view with null data",
      [] {
        rotquant::matrix_view<float> out(nullptr, 3, 20, Eigen::OuterStride<>(20));
        rotquant::quantized_matmul(acts(), weights(), out);
      },
      {"null data"});
  add("matmul_out_stride", "quantized_matmul", "output row stride 5 < 20 columns",
      [] {
        matrix_f buf = matrix_f::Zero(3, 20);
        rotquant::matrix_view<float> out(buf.data(), 3, 20, Eigen::OuterStride<>(5));
        rotquant::quantized_matmul(acts(), weights(), out);
      },
      {"output row stride 5"});
  add("matmul_returning_edited", "quantized_matmul (returning)", "packed_activations.m = -7",
      [] {
        rotquant::quantized_matmul(edited_acts([](packed_activations& a) { a.m = -7; }), weights());
      },
      {"packed_activations.m = -7"});
  // ---- linear_w4a4
  add("linear_w_block_zero", "linear_w4a4", "packed_weights.block = 0",
      [] { rotquant::linear_w4a4(x64(), edited_weights([](packed_weights& w) { w.block = 0; })); },
      {"linear_w4a4", "packed_weights.block = 0"});
  add("linear_w_n_negative", "linear_w4a4", "packed_weights.n = -3",
      [] { rotquant::linear_w4a4(x64(), edited_weights([](packed_weights& w) { w.n = -3; })); },
      {"linear_w4a4", "packed_weights.n = -3"});
  add("linear_x_cols", "linear_w4a4", "X with 63 columns for K = 64",
      [] { rotquant::linear_w4a4(gaussian(2, 63, 1), weights()); }, {"63 columns", "K = 64"});
  add("linear_x_nan", "linear_w4a4", "X holds NaN",
      [] { rotquant::linear_w4a4(with_nan(x64()), weights()); }, {"NaN or Inf"});
  add("linear_scratch_aliases_x", "linear_w4a4", "X inside the scratch's scales",
      [] {
        packed_activations scratch;
        scratch.scales.assign(3 * 64, 0.0f);
        const auto xv =
            rotquant::make_view(static_cast<const float*>(scratch.scales.data()), 3, 64, 64);
        matrix_f out = matrix_f::Zero(3, 20);
        rotquant::linear_w4a4(xv, weights(), rotquant::view(out), act_format::qsi4dx, {}, nullptr,
                              1.0f, 0, &scratch);
      },
      {"X overlaps out.scales"});
  // ---- dequantize_weights / dequantize_activations
  add("dequant_w_block_zero", "dequantize_weights", "packed_weights.block = 0",
      [] { rotquant::dequantize_weights(edited_weights([](packed_weights& w) { w.block = 0; })); },
      {"dequantize_weights", "packed_weights.block = 0"});
  add("dequant_w_scales_cleared", "dequantize_weights", "packed_weights.scales cleared",
      [] {
        rotquant::dequantize_weights(edited_weights([](packed_weights& w) { w.scales.clear(); }));
      },
      {"dequantize_weights", "packed_weights.scales.size() = 0"});
  add("dequant_w_data_cleared", "dequantize_weights", "packed_weights.data cleared",
      [] {
        rotquant::dequantize_weights(edited_weights([](packed_weights& w) { w.data.clear(); }));
      },
      {"packed_weights.data.size() = 0"});
  add("dequant_a_block_zero", "dequantize_activations", "mxfp4 packed_activations.block = 0",
      [] {
        rotquant::dequantize_activations(
            edited_acts([](packed_activations& a) { a.block = 0; }, act_format::mxfp4));
      },
      {"dequantize_activations", "packed_activations.block = 0", "32 for mxfp4"});
  add("dequant_a_scales_cleared", "dequantize_activations", "packed_activations.scales cleared",
      [] {
        rotquant::dequantize_activations(
            edited_acts([](packed_activations& a) { a.scales.clear(); }));
      },
      {"dequantize_activations", "packed_activations.scales.size() = 0"});
  add("dequant_a_codes_short", "dequantize_activations", "packed_activations.codes halved",
      [] {
        rotquant::dequantize_activations(
            edited_acts([](packed_activations& a) { a.codes.resize(a.codes.size() / 2); }));
      },
      {"packed_activations.codes.size() = 96"});
  add("dequant_a_default_m", "dequantize_activations", "default struct with m = 4",
      [] {
        packed_activations a;
        a.m = 4;
        rotquant::dequantize_activations(a);
      },
      {"packed_activations.k = 0"});
  // ---- packing
  add("pack_group_20", "pack_weights", "qsi4cg group 20",
      [] { rotquant::pack_weights(w64(), weight_format::qsi4cg, 20); }, {"multiple of 8", "20"});
  add("pack_group_0", "pack_weights", "qsi4cg group 0",
      [] { rotquant::pack_weights(w64(), weight_format::qsi4cg, 0); }, {"multiple of 8"});
  add("pack_nan", "pack_weights", "W holds NaN",
      [] { rotquant::pack_weights(with_nan(w64()), weight_format::qsi4cx); }, {"non-finite"});
  add("pack_inf", "pack_weights", "W holds Inf (nvfp4)",
      [] {
        matrix_f w = w64();
        w(0, 0) = std::numeric_limits<float>::infinity();
        rotquant::pack_weights(w, weight_format::nvfp4);
      },
      {"non-finite"});
  add("pack_empty", "pack_weights", "0 x 0 W",
      [] { rotquant::pack_weights(matrix_f(0, 0), weight_format::qsi4cx); }, {"non-empty"});
  add("pack_k_too_large", "pack_weights", "K = gemm_max_k + 1",
      [] {
        rotquant::pack_weights(matrix_f::Zero(1, rotquant::gemm_max_k + 1), weight_format::qsi4cx);
      },
      {"699051", "int32-exact bound"});
  add("pack_format_bad", "pack_weights", "weight_format 7",
      [] { rotquant::pack_weights(w64(), static_cast<weight_format>(7)); }, {"weight format 7"});
  add("pack_view_stride", "pack_weights", "W view with row stride 8 < 64 columns",
      [] {
        const matrix_f& w = w64();
        rotquant::const_matrix_view<float> v(w.data(), 2, 64, Eigen::OuterStride<>(8));
        rotquant::pack_weights(v, weight_format::qsi4cx);
      },
      {"row stride 8"});
  add("pack_codes_null", "pack_weight_codes", "null codes",
      [] {
        const float s[1] = {1.0f};
        rotquant::pack_weight_codes(nullptr, s, 1, 2, weight_format::qsi4cx);
      },
      {"null codes"});
  add("pack_codes_range", "pack_weight_codes", "INT4 code 9",
      [] {
        const std::int8_t c[2] = {9, 0};
        const float s[1] = {1.0f};
        rotquant::pack_weight_codes(c, s, 1, 2, weight_format::qsi4cx);
      },
      {"INT4 code 9", "-8..7"});
  add("pack_codes_e2m1_range", "pack_weight_codes", "E2M1 code -1",
      [] {
        const std::int8_t c[2] = {-1, 0};
        const float s[1] = {1.0f};
        rotquant::pack_weight_codes(c, s, 1, 2, weight_format::mxfp4);
      },
      {"E2M1 code -1", "0..15"});
  add("pack_codes_scale_negative", "pack_weight_codes", "scale -1",
      [] {
        const std::int8_t c[2] = {1, 0};
        const float s[1] = {-1.0f};
        rotquant::pack_weight_codes(c, s, 1, 2, weight_format::qsi4cx);
      },
      {"scale -1", "finite and >= 0"});
  add("pack_codes_n_huge", "pack_weight_codes", "n = 2^62 (size argument)",
      [] {
        const std::int8_t c[1] = {0};
        const float s[1] = {1.0f};
        rotquant::pack_weight_codes(c, s, big, 8, weight_format::qsi4cx);
      },
      {"pack_weight_codes", "exceed what can be allocated"});
  add("pack_codes_n_negative", "pack_weight_codes", "n = -1",
      [] {
        const std::int8_t c[1] = {0};
        const float s[1] = {1.0f};
        rotquant::pack_weight_codes(c, s, -1, 8, weight_format::qsi4cx);
      },
      {"non-empty", "-1 x 8"});
  add("pack_q_scales_cleared", "pack_weights(quantized_matrix)", "scales cleared",
      [] { rotquant::pack_weights(edited_codes([](auto& m) { m.scales.clear(); })); },
      {"pack_weights", "quantized_matrix.scales.size() = 0"});
  add("pack_q_codes_cleared", "pack_weights(quantized_matrix)", "codes cleared",
      [] { rotquant::pack_weights(edited_codes([](auto& m) { m.codes.clear(); })); },
      {"quantized_matrix.codes.size() = 0"});
  add("pack_q_row_bytes", "pack_weights(quantized_matrix)", "row_bytes = 1",
      [] { rotquant::pack_weights(edited_codes([](auto& m) { m.row_bytes = 1; })); },
      {"quantized_matrix.row_bytes = 1", "32"});
  add("pack_q_rows_grown", "pack_weights(quantized_matrix)", "rows = 40 (buffers for 20)",
      [] { rotquant::pack_weights(edited_codes([](auto& m) { m.rows = 40; })); },
      {"quantized_matrix.codes.size() = 640"});
  add("pack_q_rows_negative", "pack_weights(quantized_matrix)", "rows = -1",
      [] { rotquant::pack_weights(edited_codes([](auto& m) { m.rows = -1; })); },
      {"negative shape"});
  add("pack_q_group", "pack_weights(quantized_matrix)", "per_group(32) with group = 0",
      [] {
        rotquant::pack_weights(edited_codes([](auto& m) { m.group = 0; },
                                            quantizer::int_sym(4, granularity::per_group, 32)));
      },
      {"quantized_matrix.group = 0", "must be 32"});
  add("pack_q_groups_per_row", "pack_weights(quantized_matrix)", "groups_per_row = 7",
      [] {
        rotquant::pack_weights(
            edited_codes([](auto& m) { m.groups_per_row = 7; }, quantizer::mxfp4()));
      },
      {"quantized_matrix.groups_per_row = 7", "must be 2"});
  add("pack_q_asym", "pack_weights(quantized_matrix)", "asymmetric int4",
      [] { rotquant::pack_weights(rotquant::quantize(quantizer::int_asym(4), w64())); },
      {"no GEMM kernel"});
  add("pack_q_int8", "pack_weights(quantized_matrix)", "int8 codes",
      [] { rotquant::pack_weights(rotquant::quantize(quantizer::int_sym(8), w64())); },
      {"no GEMM kernel"});
  add("pack_q_bits_edited", "pack_weights(quantized_matrix)", "quantizer bits = 0",
      [] { rotquant::pack_weights(edited_codes([](auto& m) { m.q.bits = 0; })); },
      {"0-bit integers"});
  // ---- quantize_activations (and the rotated and FP4 row forms)
  add("qact_no_columns", "quantize_activations", "3 x 0 X",
      [] { rotquant::quantize_activations(matrix_f(3, 0), act_format::qsi4dx); },
      {"at least one column"});
  add("qact_nan", "quantize_activations", "X holds NaN (qsi4dx)",
      [] { rotquant::quantize_activations(with_nan(x64()), act_format::qsi4dx); },
      {"row 2", "NaN or Inf"});
  add("qact_nan_mxfp4", "quantize_activations", "X holds NaN (mxfp4)",
      [] { rotquant::quantize_activations(with_nan(x64()), act_format::mxfp4); },
      {"row 2", "NaN or Inf"});
  add("qact_inf_nvfp4", "quantize_activations", "X holds Inf (nvfp4)",
      [] {
        matrix_f x = x64();
        x(1, 5) = -std::numeric_limits<float>::infinity();
        rotquant::quantize_activations(x, act_format::nvfp4);
      },
      {"row 1", "NaN or Inf"});
  add("qact_clip_zero", "quantize_activations", "clip 0",
      [] { rotquant::quantize_activations(x64(), act_format::qsi4dx, 0.0f); }, {"clip ratio"});
  add("qact_clip_nan", "quantize_activations", "clip NaN",
      [] { rotquant::quantize_activations(x64(), act_format::qsi8dx, std::nanf("")); },
      {"clip ratio"});
  add("qact_group_12", "quantize_activations", "qsi4dg group 12",
      [] { rotquant::quantize_activations(x64(), act_format::qsi4dg, 1.0f, 12); },
      {"multiple of 8", "12"});
  add("qact_group_negative", "quantize_activations", "qsi4dg group -8",
      [] { rotquant::quantize_activations(x64(), act_format::qsi4dg, 1.0f, -8); },
      {"multiple of 8"});
  add("qact_ts_negative", "quantize_activations", "nvfp4_tensor_scale -1",
      [] {
        rotquant::quantize_options o;
        o.nvfp4_tensor_scale = -1.0f;
        packed_activations out;
        rotquant::quantize_activations(rotquant::view(x64()), act_format::nvfp4, out, o);
      },
      {"nvfp4_tensor_scale", "-1"});
  add("qact_format_bad", "quantize_activations", "act_format 9",
      [] { rotquant::quantize_activations(x64(), static_cast<act_format>(9)); },
      {"activation format 9"});
  add("qact_x_aliases_scales", "quantize_activations", "X inside out.scales",
      [] {
        packed_activations out;
        out.scales.assign(2 * 32, 1.0f);
        const auto xv =
            rotquant::make_view(static_cast<const float*>(out.scales.data()), 2, 32, 32);
        rotquant::quantize_activations(xv, act_format::qsi4dx, out);
      },
      {"X overlaps out.scales"});
  add("qact_x_null", "quantize_activations", "X view with null data",
      [] {
        packed_activations out;
        rotquant::const_matrix_view<float> xv(nullptr, 2, 8, Eigen::OuterStride<>(8));
        rotquant::quantize_activations(xv, act_format::qsi4dx, out);
      },
      {"null data"});
  add("qact_x_stride", "quantize_activations", "X row stride 4 < 64 columns",
      [] {
        packed_activations out;
        rotquant::const_matrix_view<float> xv(x64().data(), 2, 64, Eigen::OuterStride<>(4));
        rotquant::quantize_activations(xv, act_format::qsi4dx, out);
      },
      {"row stride 4"});
  add("qact_rot_size", "quantize_activations_rotated", "rotation of 16 for rows of 24",
      [] {
        packed_activations out;
        const matrix_f x = gaussian(2, 24, 1);
        rotquant::quantize_activations_rotated(rotquant::view(x), rotquant::hadamard_plan(16),
                                               act_format::qsi4dx, out);
      },
      {"rotation size 16", "24"});
  add("qact_rot_aliases", "quantize_activations_rotated", "X inside out.sums",
      [] {
        packed_activations out;
        out.sums.assign(2 * 16, 0);
        const auto xv =
            rotquant::make_view(reinterpret_cast<const float*>(out.sums.data()), 2, 16, 16);
        rotquant::quantize_activations_rotated(xv, rotquant::hadamard_plan(16), act_format::qsi4dx,
                                               out);
      },
      {"X overlaps out.sums"});
  add("qact_rot_nan", "quantize_activations_rotated", "X holds NaN",
      [] {
        packed_activations out;
        const matrix_f x = with_nan(gaussian(2, 32, 1));
        rotquant::quantize_activations_rotated(rotquant::view(x), rotquant::hadamard_plan(32),
                                               act_format::mxfp4, out);
      },
      {"NaN or Inf"});
  add("fp4rows_nan", "quantize_fp4_e2m1_rows", "X holds NaN",
      [] { rotquant::quantize_fp4_e2m1_rows(with_nan(x64())); },
      {"quantize_fp4_e2m1_rows", "NaN or Inf"});
  add("fp4rows_clip", "quantize_fp4_e2m1_rows", "clip 0",
      [] { rotquant::quantize_fp4_e2m1_rows(x64(), 0.0f); }, {"clip"});
  add("fp4rows_aliases", "quantize_fp4_e2m1_rows", "X inside out.scales",
      [] {
        rotquant::quantized_matrix out;
        out.scales.assign(64, 1.0f);
        const auto xv =
            rotquant::make_view(static_cast<const float*>(out.scales.data()), 2, 32, 32);
        rotquant::quantize_fp4_e2m1_rows(xv, out);
      },
      {"X overlaps out.scales"});
  return v;
}

std::vector<bad_case> transform_cases() {
  using E = thrown;
  std::vector<bad_case> v;
  auto add = [&v](std::string id, std::string entry, std::string input, std::function<void()> f,
                  std::vector<std::string> words, E type = E::error) {
    v.push_back(
        {std::move(id), std::move(entry), std::move(input), std::move(f), type, std::move(words)});
  };
  // ---- sizes that cannot be allocated (checked before allocating)
  add("randomized_hadamard_2p62", "randomized_hadamard", "n = 2^62",
      [] { rotquant::randomized_hadamard(big, 0); },
      {"randomized_hadamard", "exceed what can be allocated"});
  add("random_orthogonal_2p32", "random_orthogonal", "n = 2^32 (n^2 overflows)",
      [] { rotquant::random_orthogonal(index_t{1} << 32, 0); },
      {"random_orthogonal", "exceed what can be allocated"});
  add("random_orthogonal_2p24", "random_orthogonal", "n = 2^24 (2^53 bytes)",
      [] { rotquant::random_orthogonal(index_t{1} << 24, 0); },
      {"random_orthogonal", "exceed what can be allocated"});
  add("random_normal_2p32", "random_normal_matrix", "2^32 x 2^32",
      [] { rotquant::random_normal_matrix<double>(index_t{1} << 32, index_t{1} << 32, 0); },
      {"random_normal_matrix", "4294967296 x 4294967296"});
  add("random_normal_2p31", "random_normal_matrix", "2^31 x 2^31 floats (bytes overflow)",
      [] { rotquant::random_normal_matrix<float>(index_t{1} << 31, index_t{1} << 31, 0); },
      {"random_normal_matrix", "exceed what can be allocated"});
  add("random_normal_max", "random_normal_matrix", "INT64_MAX x 2",
      [] { rotquant::random_normal_matrix<float>(std::numeric_limits<index_t>::max(), 2, 0); },
      {"random_normal_matrix", "exceed"});
  add("random_signs_2p62", "random_signs", "n = 2^62",
      [] { rotquant::random_signs<double>(big, 0); }, {"random_signs", "exceed"});
  add("random_permutation_2p61", "random_permutation", "n = 2^61",
      [] { rotquant::random_permutation(index_t{1} << 61, 0); }, {"random_permutation", "exceed"});
  add("hadamard_matrix_2p40", "hadamard_matrix", "n = 2^40",
      [] { rotquant::hadamard_matrix(index_t{1} << 40); }, {"hadamard_matrix", "exceed"});
  add("hadamard_plan_to_dense_2p40", "hadamard_plan::to_dense", "n = 2^40",
      [] { rotquant::hadamard_plan(index_t{1} << 40).to_dense(); },
      {"hadamard_plan::to_dense", "exceed"});
  add("transform_to_dense_2p40", "transform::to_dense", "C = 2^40",
      [] {
        transform t(index_t{1} << 40);
        t.append_hadamard();
        t.to_dense();
      },
      {"transform::to_dense", "exceed"});
  add("duquant_random_q_2p32", "duquant_random_q", "n = 2^32",
      [] { rotquant::duquant_random_q(index_t{1} << 32, 0); }, {"random_normal_matrix", "exceed"});
  // ---- zero, negative and unsupported sizes
  add("random_normal_negative", "random_normal_matrix", "-1 x 4",
      [] { rotquant::random_normal_matrix<float>(-1, 4, 0); }, {"negative shape"});
  add("random_signs_negative", "random_signs", "n = -1",
      [] { rotquant::random_signs<double>(-1, 0); }, {"negative length"});
  add("random_permutation_negative", "random_permutation", "n = -3",
      [] { rotquant::random_permutation(-3, 0); }, {"negative length"});
  add("hadamard_plan_zero", "hadamard_plan", "n = 0", [] { rotquant::hadamard_plan p(0); },
      {"Hadamard size must be >= 1"});
  add("hadamard_plan_negative", "hadamard_plan", "n = -8", [] { rotquant::hadamard_plan p(-8); },
      {"Hadamard size must be >= 1", "-8"});
  add("hadamard_plan_unsupported", "hadamard_plan", "n = 3 (no construction)",
      [] { rotquant::hadamard_plan p(3); }, {"no Hadamard matrix of order n = 3"});
  add("hadamard_plan_huge_base", "hadamard_plan", "n = 16412 (K above 16380)",
      [] { rotquant::hadamard_plan p(16412); }, {"16380"});
  add("hadamard_matrix_zero", "hadamard_matrix", "n = 0", [] { rotquant::hadamard_matrix(0); },
      {"Hadamard size must be >= 1"});
  add("randomized_hadamard_zero", "randomized_hadamard", "n = 0",
      [] { rotquant::randomized_hadamard(0, 1); }, {"size must be >= 1"});
  add("randomized_hadamard_unsupported", "randomized_hadamard", "n = 3",
      [] { rotquant::randomized_hadamard(3, 1); },
      {"randomized_hadamard", "no Hadamard matrix of order n = 3"});
  add("randomized_hadamard_empty", "randomized_hadamard(signs)", "empty sign vector",
      [] { rotquant::randomized_hadamard(vector_d()); }, {"empty sign vector"});
  add("randomized_hadamard_bad_sign", "randomized_hadamard(signs)", "sign 0.5",
      [] {
        vector_d d = vector_d::Ones(4);
        d[2] = 0.5;
        rotquant::randomized_hadamard(d);
      },
      {"sign[2] = 0.5"});
  add("random_orthogonal_zero", "random_orthogonal", "n = 0",
      [] { rotquant::random_orthogonal(0, 0); }, {"size must be >= 1"});
  add("random_orthogonal_negative", "random_orthogonal", "n = -2",
      [] { rotquant::random_orthogonal(-2, 0); }, {"size must be >= 1"});
  add("orthogonal_from_gaussian_nan", "orthogonal_from_gaussian", "g holds NaN",
      [] {
        matrix_d g = matrix_d::Identity(3, 3);
        g(1, 2) = std::nan("");
        rotquant::orthogonal_from_gaussian(g);
      },
      {"non-finite"});
  add("orthogonal_from_gaussian_rect", "orthogonal_from_gaussian", "3 x 4 g",
      [] { rotquant::orthogonal_from_gaussian(matrix_d::Ones(3, 4)); }, {"square", "3 x 4"});
  add("orthogonal_from_gaussian_singular", "orthogonal_from_gaussian", "zero g",
      [] { rotquant::orthogonal_from_gaussian(matrix_d::Zero(3, 3)); }, {"singular"});
  add("orthogonality_error_rect", "orthogonality_error", "2 x 3",
      [] { rotquant::orthogonality_error(matrix_d::Ones(2, 3)); }, {"expected square"});
  // ---- hadamard_plan application
  add("hadamard_apply_stride", "hadamard_plan::apply_rows", "stride 4 < n = 8",
      [] {
        std::vector<float> x(16);
        rotquant::hadamard_plan(8).apply_rows(x.data(), 2, 4);
      },
      {"row stride 4"});
  add("hadamard_apply_null", "hadamard_plan::apply_rows", "null data, 2 rows",
      [] { rotquant::hadamard_plan(8).apply_rows(static_cast<float*>(nullptr), 2, 8); },
      {"null data"});
  add("hadamard_apply_negative_rows", "hadamard_plan::apply_rows", "rows = -1",
      [] {
        std::vector<double> x(8);
        rotquant::hadamard_plan(8).apply_rows(x.data(), -1, 8);
      },
      {"negative row count"});
  add("hadamard_apply_overlap", "hadamard_plan::apply_rows (out of place)",
      "dst overlaps src by half a row",
      [] {
        std::vector<float> x(32);
        rotquant::hadamard_plan(8).apply_rows(static_cast<const float*>(x.data()), 8, x.data() + 4,
                                              8, 2);
      },
      {"dst overlaps src"});
  add("hadamard_apply_view_cols", "hadamard_plan::apply", "view of 6 columns for n = 8",
      [] {
        matrix_f x = matrix_f::Zero(2, 6);
        rotquant::hadamard_plan(8).apply(rotquant::view(x));
      },
      {"6 columns", "plan size is 8"});
  // ---- transform
  add("transform_dim_zero", "transform", "C = 0", [] { transform t(0); },
      {"dimension must be >= 1"});
  add("transform_dim_negative", "transform", "C = -4", [] { transform t(-4); },
      {"dimension must be >= 1", "-4"});
  add("append_scale_length", "transform::append_scale", "3 scales for C = 4",
      [] { transform(4).append_scale(vector_d::Ones(3)); }, {"3 scales for dimension 4"});
  add("append_scale_zero", "transform::append_scale", "scale 0",
      [] {
        vector_d s = vector_d::Ones(4);
        s[1] = 0;
        transform(4).append_scale(s);
      },
      {"scale[1] = 0"});
  add("append_scale_nan", "transform::append_scale", "scale NaN",
      [] {
        vector_d s = vector_d::Ones(4);
        s[3] = std::nan("");
        transform(4).append_scale(s);
      },
      {"scale[3]"});
  add("append_scale_subnormal", "transform::append_scale", "subnormal scale",
      [] {
        vector_d s = vector_d::Ones(4);
        s[0] = std::numeric_limits<double>::denorm_min();
        transform(4).append_scale(s);
      },
      {"scale[0]", "normal"});
  add("append_signs_value", "transform::append_signs", "sign 0",
      [] { transform(4).append_signs(vector_d::Zero(4)); }, {"expected +1 or -1"});
  add("append_signs_length", "transform::append_signs", "5 signs for C = 4",
      [] { transform(4).append_signs(vector_d::Ones(5)); }, {"5 signs for dimension 4"});
  add("append_permutation_duplicate", "transform::append_permutation", "{0, 0, 1, 2}",
      [] {
        transform(4).append_permutation({0, 0, 1, 2});
      },
      {"duplicate index 0"});
  add("append_permutation_range", "transform::append_permutation", "{0, 1, 2, 9}",
      [] {
        transform(4).append_permutation({0, 1, 2, 9});
      },
      {"entry 3 is 9"});
  add("append_permutation_negative", "transform::append_permutation", "{-1, 1, 2, 3}",
      [] {
        transform(4).append_permutation({-1, 1, 2, 3});
      },
      {"entry 0 is -1"});
  add("append_permutation_length", "transform::append_permutation", "3 entries for C = 4",
      [] {
        transform(4).append_permutation({0, 1, 2});
      },
      {"3 entries"});
  add("append_hadamard_divide", "transform::append_hadamard", "block 3 for C = 8",
      [] { transform(8).append_hadamard(3); }, {"block 3 does not divide"});
  add("append_hadamard_negative", "transform::append_hadamard", "block -2",
      [] { transform(8).append_hadamard(-2); }, {"block -2"});
  add("append_hadamard_unsupported", "transform::append_hadamard", "block 3 for C = 12",
      [] { transform(12).append_hadamard(3); }, {"no Hadamard matrix of order n = 3"});
  add("append_dense_shape", "transform::append_dense", "3 x 3 for C = 4",
      [] { transform(4).append_dense(matrix_d::Identity(3, 3)); }, {"3 x 3", "expected 4 x 4"});
  add("append_dense_singular", "transform::append_dense", "rank-1 matrix",
      [] { transform(3).append_dense(matrix_d::Ones(3, 3)); }, {"singular"});
  add("append_dense_nan", "transform::append_dense", "NaN entry",
      [] {
        matrix_d m = matrix_d::Identity(3, 3);
        m(0, 1) = std::nan("");
        transform(3).append_dense(m);
      },
      {"non-finite"});
  add("append_block_diagonal_empty", "transform::append_block_diagonal", "no blocks",
      [] { transform(4).append_block_diagonal(std::vector<matrix_d>{}); }, {"no blocks given"});
  add("append_block_diagonal_divide", "transform::append_block_diagonal", "3 x 3 for C = 8",
      [] { transform(8).append_block_diagonal(matrix_d::Identity(3, 3)); },
      {"block size 3 does not divide"});
  add("append_block_diagonal_count", "transform::append_block_diagonal", "3 blocks of 2 for C = 8",
      [] {
        transform(8).append_block_diagonal(std::vector<matrix_d>(3, matrix_d::Identity(2, 2)));
      },
      {"3 blocks of 2", "need 4"});
  add("append_block_diagonal_mixed", "transform::append_block_diagonal", "blocks of 2 and 4",
      [] {
        transform(4).append_block_diagonal(
            std::vector<matrix_d>{matrix_d::Identity(2, 2), matrix_d::Identity(4, 4)});
      },
      {"block 1 is 4 x 4", "expected 2 x 2"});
  add("append_block_diagonal_empty_block", "transform::append_block_diagonal", "0 x 0 block",
      [] { transform(4).append_block_diagonal(matrix_d(0, 0)); }, {"block size 0"});
  add("append_dims", "transform::append", "C = 4 onto C = 8",
      [] { transform(8).append(transform(4)); }, {"dimensions differ"});
  add("append_stage_dense_two", "transform::append_stage", "dense stage with 2 matrices",
      [] {
        rotquant::transform_stage st;
        st.kind = rotquant::stage_kind::dense;
        st.blocks.assign(2, matrix_d::Identity(4, 4));
        transform(4).append_stage(st);
      },
      {"needs one matrix"});
  add("transform_apply_cols", "transform::apply", "X with 5 columns for C = 4",
      [] { rotquant::randomized_hadamard(4, 0).apply(matrix_f(matrix_f::Zero(2, 5))); },
      {"5 columns", "dimension is 4"});
  add("transform_fold_cols", "transform::fold_into_weight", "W with 3 columns for C = 4",
      [] { rotquant::randomized_hadamard(4, 0).fold_into_weight(matrix_d(matrix_d::Zero(2, 3))); },
      {"3 columns"});
  add("transform_inplace_cols", "transform::apply_inplace", "view of 8 columns for C = 4",
      [] {
        matrix_f x = matrix_f::Zero(2, 8);
        rotquant::randomized_hadamard(4, 0).apply_inplace(rotquant::view(x));
      },
      {"8 columns"});
  // ---- permutations, smoothing, DuQuant, DFRot
  add("inverse_permutation_bad", "inverse_permutation", "{1, 1}",
      [] {
        rotquant::inverse_permutation({1, 1});
      },
      {"duplicate index 1"});
  add("permutation_matrix_bad", "permutation_matrix", "{0, 5}",
      [] {
        rotquant::permutation_matrix({0, 5});
      },
      {"entry 1 is 5"});
  add("permute_columns_bad", "permute_columns", "perm of 2 for 3 columns",
      [] {
        rotquant::permute_columns(matrix_f(matrix_f::Zero(2, 3)), {0, 1});
      },
      {"2 entries"});
  add("smooth_scales_lengths", "smooth_scales", "4 vs 3 channels",
      [] { rotquant::smooth_scales(vector_d::Ones(4), vector_d::Ones(3), 0.5); },
      {"4 channels", "3"});
  add("smooth_scales_alpha", "smooth_scales", "alpha 2",
      [] { rotquant::smooth_scales(vector_d::Ones(4), vector_d::Ones(4), 2.0); },
      {"alpha must be in [0, 1]"});
  add("smooth_scales_nan", "smooth_scales", "act_absmax NaN",
      [] {
        vector_d a = vector_d::Ones(4);
        a[2] = std::nan("");
        rotquant::smooth_scales(a, vector_d::Ones(4), 0.5);
      },
      {"act_absmax[2]"});
  add("smooth_scales_empty", "smooth_scales", "no channels",
      [] { rotquant::smooth_scales(vector_d(), vector_d(), 0.5); }, {"need equal and >= 1"});
  add("duquant_block_divide", "duquant", "B = 48 for C = 64",
      [] {
        rotquant::duquant_options o;
        o.block_size = 48;
        rotquant::duquant(gaussian(8, 64, 1), o);
      },
      {"block size 48 does not divide", "C = 64"});
  add("duquant_block_zero", "duquant", "B = 0",
      [] {
        rotquant::duquant_options o;
        o.block_size = 0;
        rotquant::duquant(gaussian(8, 64, 1), o);
      },
      {"block size must be >= 2"});
  add("duquant_nan", "duquant", "X holds NaN",
      [] {
        rotquant::duquant_options o;
        o.block_size = 16;
        rotquant::duquant(with_nan(gaussian(8, 64, 1)), o);
      },
      {"non-finite"});
  add("duquant_steps_negative", "duquant", "rotation_steps -1",
      [] {
        rotquant::duquant_options o;
        o.block_size = 16;
        o.rotation_steps = -1;
        rotquant::duquant(gaussian(8, 64, 1), o);
      },
      {"rotation steps N must be >= 0"});
  add("duquant_q_primes", "duquant", "one 3 x 3 Q' for B = 16",
      [] {
        rotquant::duquant_options o;
        o.block_size = 16;
        o.permutation_times = 0;
        o.q_primes.push_back(matrix_d::Identity(3, 3));
        rotquant::duquant(gaussian(8, 64, 1), o);
      },
      {"Q'", "expected 15"});
  add("duquant_empty", "duquant", "0 x 0 X", [] { rotquant::duquant(matrix_f(0, 0)); },
      {"need T >= 1 tokens"});
  add("duquant_zigzag_block", "duquant_zigzag_permutation", "block 0",
      [] { rotquant::duquant_zigzag_permutation(gaussian(4, 8, 1), 0); },
      {"block size 0", "must be >= 1"});
  add("duquant_base_rotation_one", "duquant_base_rotation", "block 1",
      [] { rotquant::duquant_base_rotation(1); }, {"block size must be >= 2"});
  add("duquant_rotation_rect", "duquant_rotation", "2 x 3 Q'",
      [] { rotquant::duquant_rotation(matrix_d::Ones(2, 3)); }, {"square"});
  add("dfrot_nan", "dfrot", "X holds NaN", [] { rotquant::dfrot(with_nan(gaussian(8, 16, 1))); },
      {"dfrot", "non-finite"});
  add("dfrot_alpha", "dfrot", "alpha NaN",
      [] {
        rotquant::dfrot_options o;
        o.alpha = std::nan("");
        rotquant::dfrot(gaussian(8, 16, 1), o);
      },
      {"alpha", "finite and > 0"});
  add("dfrot_steps", "dfrot", "steps -1",
      [] {
        rotquant::dfrot_options o;
        o.steps = -1;
        rotquant::dfrot(gaussian(8, 16, 1), o);
      },
      {"steps -1"});
  add("dfrot_given_none", "dfrot", "start = given without a start",
      [] {
        rotquant::dfrot_options o;
        o.start = rotquant::dfrot_start::given;
        rotquant::dfrot(gaussian(8, 16, 1), o);
      },
      {"exactly one of start_transform and"});
  add("dfrot_unsupported_c", "dfrot", "C = 3 with a randomized Hadamard start",
      [] { rotquant::dfrot(gaussian(8, 3, 1)); }, {"no Hadamard matrix of order n = 3"});
  add("procrustes_shapes", "procrustes_rotation", "2 x 3 vs 3 x 3",
      [] { rotquant::procrustes_rotation(matrix_d::Ones(2, 3), matrix_d::Ones(3, 3)); },
      {"procrustes_rotation"});
  return v;
}

std::vector<bad_case> quant_pipeline_cases() {
  using E = thrown;
  std::vector<bad_case> v;
  auto add = [&v](std::string id, std::string entry, std::string input, std::function<void()> f,
                  std::vector<std::string> words, E type = E::error) {
    v.push_back(
        {std::move(id), std::move(entry), std::move(input), std::move(f), type, std::move(words)});
  };
  // ---- quantizers
  add("quantize_bits_zero", "quantize", "int_sym(0)",
      [] { rotquant::quantize(quantizer::int_sym(0), x64()); }, {"0-bit integers", "2..8"});
  add("quantize_bits_nine", "quantize", "int_asym(9)",
      [] { rotquant::quantize(quantizer::int_asym(9), x64()); }, {"9-bit integers"});
  add("quantize_group_divide", "quantize", "per_group 5 on 64 columns",
      [] { rotquant::quantize(quantizer::int_sym(4, granularity::per_group, 5), x64()); },
      {"group size 5 does not divide"});
  add("quantize_group_zero", "quantize", "per_group 0",
      [] { rotquant::quantize(quantizer::int_sym(4, granularity::per_group, 0), x64()); },
      {"group size > 0"});
  add("quantize_clip_negative", "quantize", "clip -1",
      [] { rotquant::quantize(quantizer::int_sym(4, granularity::per_row, 0, -1.0f), x64()); },
      {"clip ratio -1"});
  add("quantize_nan", "quantize", "X holds NaN",
      [] { rotquant::quantize(quantizer::int_sym(4), with_nan(x64())); }, {"non-finite"});
  add("quantize_mxfp4_group", "quantize", "mxfp4 with group 16",
      [] {
        quantizer q = quantizer::mxfp4();
        q.group_size = 16;
        rotquant::quantize(q, x64());
      },
      {"mxfp4 uses blocks of 32"});
  add("quantize_nvfp4_clip", "quantize", "nvfp4 with clip 0.5",
      [] {
        quantizer q = quantizer::nvfp4();
        q.clip = 0.5f;
        rotquant::quantize(q, x64());
      },
      {"clip must be 1"});
  add("quantize_search_grid", "quantize", "mse search with grid 0",
      [] {
        quantizer q = quantizer::gptq_weight(4, true, true);
        q.search_grid = 0;
        rotquant::quantize(q, x64());
      },
      {"grid > 0"});
  add("fake_quantize_bits", "fake_quantize", "int_sym(1)",
      [] { rotquant::fake_quantize(quantizer::int_sym(1), x64()); }, {"1-bit integers"});
  add("dequantize_scales_cleared", "dequantize", "scales cleared",
      [] { rotquant::dequantize(edited_codes([](auto& m) { m.scales.clear(); })); },
      {"buffers do not match"});
  add("dequantize_scale_codes", "dequantize", "mxfp4 scale_codes cleared",
      [] {
        rotquant::dequantize(
            edited_codes([](auto& m) { m.scale_codes.clear(); }, quantizer::mxfp4()));
      },
      {"block scale bytes"});
  add("dequantize_cols_grown", "dequantize", "cols grown under the codes",
      [] { rotquant::dequantize(edited_codes([](auto& m) { m.cols += 64; })); }, {"row_bytes is"});
  add("dequantize_row_bytes", "dequantize", "row_bytes edited",
      [] { rotquant::dequantize(edited_codes([](auto& m) { m.row_bytes = 1; })); },
      {"row_bytes is 1"});
  add("dequantize_group", "dequantize", "group edited",
      [] {
        rotquant::dequantize(
            edited_codes([](auto& m) { m.group = 3; },
                         quantizer::int_sym(4, rotquant::granularity::per_group, 16)));
      },
      {"do not match the quantizer"});
  add("dequantize_negative_rows", "dequantize", "rows = -1",
      [] { rotquant::dequantize(edited_codes([](auto& m) { m.rows = -1; })); }, {"negative shape"});
  add("duquant_base_rotation_huge", "duquant_base_rotation", "block 2^31",
      [] { rotquant::duquant_base_rotation(index_t{1} << 31); }, {"can be allocated"});
  add("quantize_row_null", "quantize_row_int4_sym", "null x",
      [] {
        std::uint8_t out[4] = {};
        rotquant::quantize_row_int4_sym(nullptr, 8, 1.0f, out);
      },
      {"quantize_row_int4_sym"});
  add("search_clip_grid", "search_clip_ratio", "grid of 0 steps",
      [] {
        rotquant::clip_grid g{0.5f, 1.0f, 0};
        rotquant::search_clip_ratio(quantizer::int_sym(4), w64(), g);
      },
      {"clip_grid"});
  add("search_clip_x_cols", "search_clip_ratio", "X with 8 columns for W with 64",
      [] {
        rotquant::search_clip_ratio(quantizer::int_sym(4), w64(), gaussian(4, 8, 1),
                                    rotquant::clip_grid{});
      },
      {"8 columns", "64 input features"});
  add("select_fp4_empty", "select_fp4_format", "0 x 0 data",
      [] { rotquant::select_fp4_format(matrix_f(0, 0), granularity::per_row); },
      {"empty calibration data"});
  add("metrics_shapes", "mse", "2 x 3 vs 3 x 2",
      [] { rotquant::mse(matrix_f::Zero(2, 3), matrix_f::Zero(3, 2)); }, {"mse"});
  add("gptq_h_shape", "gptq", "H 3 x 3 for W with 64 columns",
      [] { rotquant::gptq(w64(), matrix_f(matrix_f::Identity(3, 3)), quantizer::int_sym(4)); },
      {"H is 3 x 3"});
  add("gptq_h_nan", "gptq", "H holds NaN",
      [] {
        matrix_f h = matrix_f::Identity(64, 64);
        h(3, 3) = std::nanf("");
        rotquant::gptq(w64(), h, quantizer::int_sym(4));
      },
      {"gptq"});
  add("gptq_block_zero", "gptq", "block_size 0",
      [] {
        rotquant::gptq_options o;
        o.block_size = 0;
        rotquant::gptq(w64(), matrix_f(matrix_f::Identity(64, 64)), quantizer::int_sym(4), o);
      },
      {"block"});
  add("gptq_percdamp", "gptq", "percdamp -1",
      [] {
        rotquant::gptq_options o;
        o.percdamp = -1;
        rotquant::gptq(w64(), matrix_f(matrix_f::Identity(64, 64)), quantizer::int_sym(4), o);
      },
      {"percdamp"});
  add("gptq_quantizer", "gptq", "int_sym(0)",
      [] { rotquant::gptq(w64(), matrix_f(matrix_f::Identity(64, 64)), quantizer::int_sym(0)); },
      {"0-bit integers"});
  add("hessian_cols_zero", "hessian_accumulator", "cols = 0",
      [] { rotquant::hessian_accumulator<float> h(0); }, {"cols must be >= 1"});
  add("hessian_cols_huge", "hessian_accumulator", "cols = 2^40",
      [] { rotquant::hessian_accumulator<double> h(index_t{1} << 40); }, {"can be allocated"});
  add("hessian_add_cols", "hessian_accumulator::add", "X with 8 columns for 64",
      [] {
        rotquant::hessian_accumulator<float> h(64);
        h.add(gaussian(4, 8, 1));
      },
      {"hessian_accumulator"});
  // ---- pipeline stages and presets
  add("calibrate_empty_x", "pipeline::calibrate", "0 x 16 X",
      [] { rotquant::presets::rtn().calibrate(matrix_f(0, 16), pw()); },
      {"need at least one token"});
  add("calibrate_w_cols", "pipeline::calibrate", "W with 12 features for X with 16",
      [] { rotquant::presets::rtn().calibrate(px(), gaussian(8, 12, 1)); },
      {"W is 8 x 12", "16 features"});
  add("calibrate_nan_x", "pipeline::calibrate", "X holds NaN",
      [] { rotquant::presets::quarot().calibrate(with_nan(px()), pw()); },
      {"pipeline::calibrate: X", "non-finite"});
  add("calibrate_nan_w", "pipeline::calibrate", "W holds Inf",
      [] {
        matrix_f w = pw();
        w(0, 0) = std::numeric_limits<float>::infinity();
        rotquant::presets::rtn().calibrate(px(), w);
      },
      {"pipeline::calibrate: W", "non-finite"});
  add("calibrate_hessian_cols", "pipeline::calibrate", "hessian_x with 8 features",
      [] { rotquant::presets::rtn_gptq().calibrate(px(), pw(), gaussian(4, 8, 1)); },
      {"hessian_x has 8 features"});
  add("quarot_unsupported_c", "presets::quarot", "C = 3 (no Hadamard)",
      [] { rotquant::presets::quarot().calibrate(gaussian(4, 3, 1), gaussian(2, 3, 2)); },
      {"no Hadamard matrix of order n = 3"});
  add("hqdit_unsupported_c", "presets::hqdit", "C = 3",
      [] { rotquant::presets::hqdit().calibrate(gaussian(4, 3, 1), gaussian(2, 3, 2)); },
      {"no Hadamard matrix of order n = 3"});
  add("duquant_preset_block", "presets::duquant", "block 48 for C = 16",
      [] { rotquant::presets::duquant(0, 48).calibrate(px(), pw()); },
      {"block size 48 does not divide"});
  add("smoothquant_alpha", "presets::smoothquant", "alpha 2",
      [] { rotquant::presets::smoothquant(2.0).calibrate(px(), pw()); },
      {"alpha must be in [0, 1]"});
  add("rtn_bad_quantizer", "presets::rtn", "weight quantizer int_sym(0)",
      [] { rotquant::presets::rtn(quantizer::int_sym(0)).calibrate(px(), pw()); },
      {"0-bit integers"});
  add("quarot_gptq_block", "presets::quarot_gptq", "gptq block_size 0",
      [] {
        rotquant::gptq_options g;
        g.block_size = 0;
        rotquant::presets::quarot_gptq(0, rotquant::presets::w4_per_channel(),
                                       rotquant::presets::a4_per_token(), g)
            .calibrate(px(), pw());
      },
      {"block"});
  add("stage_hadamard_block", "stages::rotate<hadamard_builder>", "block 3 for C = 16",
      [] {
        rotquant::make_pipeline(
            rotquant::stages::rotate<rotquant::stages::hadamard_builder>{{true, 0, 3}},
            rotquant::stages::quantize<>{{rotquant::presets::w4_per_channel()},
                                         {rotquant::presets::a4_per_token()}})
            .calibrate(px(), pw());
      },
      {"block 3 does not divide"});
  add("stage_permute_block", "stages::permute", "zigzag block 0",
      [] {
        rotquant::make_pipeline(rotquant::stages::permute{0, true, 0},
                                rotquant::stages::quantize<>{{rotquant::presets::w4_per_channel()},
                                                             {rotquant::presets::a4_per_token()}})
            .calibrate(px(), pw());
      },
      {"block size 0"});
  add("stage_refine_alpha", "stages::refine", "alpha 0",
      [] {
        rotquant::stages::refine r;
        r.options.alpha = 0;
        rotquant::make_pipeline(rotquant::stages::rotate<rotquant::stages::hadamard_builder>{}, r,
                                rotquant::stages::quantize<>{{rotquant::presets::w4_per_channel()},
                                                             {rotquant::presets::a4_per_token()}})
            .calibrate(px(), pw());
      },
      {"alpha"});
  add("layer_forward_cols", "quantized_linear::forward", "X with 12 features for 16",
      [] { rtn_layer().forward(gaussian(2, 12, 1)); }, {"input has 12 features", "16"});
  add("layer_forward_nan", "quantized_linear::forward", "X holds NaN (kernel path)",
      [] { rtn_layer().forward(with_nan(gaussian(2, 16, 1))); }, {"non-finite"});
  add("layer_forward_no_kernel", "quantized_linear::forward", "execution::kernel, int3",
      [] {
        rotquant::presets::rtn(quantizer::int_sym(3))
            .calibrate(px(), pw())
            .forward(px(), rotquant::execution::kernel);
      },
      {"no kernel"});
  add("layer_report_nan", "quantized_linear::report", "X holds NaN",
      [] { rtn_layer().report(with_nan(px())); }, {"report", "non-finite"});
  add("layer_transform_dim", "quantized_linear", "transform C = 8 for a weight of 16",
      [] {
        rotquant::quantized_linear l(transform(8), pw(), quantizer::int_sym(4),
                                     quantizer::int_sym(4));
      },
      {"transform has dimension 8", "16 input features"});
  add("layer_codes_shape", "quantized_linear(codes)", "codes 20 x 64 for a weight 8 x 16",
      [] {
        rotquant::quantized_linear l(transform(16), pw(),
                                     rotquant::quantize(quantizer::int_sym(4), w64()),
                                     quantizer::int_sym(4));
      },
      {"quantized weight is 20 x 64"});
  add("fuse_rms_norm_empty", "fuse_rms_norm", "empty gamma",
      [] {
        rotquant::vector_f g;
        rotquant::fuse_rms_norm<float>(g, {});
      },
      {"empty norm weight"});
  add("fuse_rms_norm_null", "fuse_rms_norm", "null reader",
      [] {
        rotquant::vector_f g = rotquant::vector_f::Ones(4);
        rotquant::fuse_rms_norm<float>(g, {nullptr});
      },
      {"reader 0 is null"});
  add("fuse_rms_norm_cols", "fuse_rms_norm", "reader with 3 features for 4",
      [] {
        rotquant::vector_f g = rotquant::vector_f::Ones(4);
        matrix_f w = matrix_f::Zero(2, 3);
        rotquant::fuse_rms_norm<float>(g, {&w});
      },
      {"3 input features"});
  add("rotate_stream_dims", "rotate_stream", "writer with 3 stream features for C = 4",
      [] {
        matrix_f w = matrix_f::Zero(3, 2);
        rotquant::rotate_stream<float>(rotquant::randomized_hadamard(4, 0), {}, {&w});
      },
      {"writer 0 has 3 stream features"});
  add("rotate_stream_null", "rotate_stream", "null embedding",
      [] {
        rotquant::rotate_stream<float>(rotquant::randomized_hadamard(4, 0), {}, {}, {nullptr});
      },
      {"embedding 0 is null"});
  return v;
}

std::vector<bad_case> io_cases() {
  using E = thrown;
  std::vector<bad_case> v;
  auto add = [&v](std::string id, std::string entry, std::string input, std::function<void()> f,
                  std::vector<std::string> words, E type = E::io_error) {
    v.push_back(
        {std::move(id), std::move(entry), std::move(input), std::move(f), type, std::move(words)});
  };
  // ---- io::tensor: every reader of the bytes checks them against shape x dtype
  add("tensor_to_vector_short", "tensor::to_vector", "4 bytes for F32 [2, 3]",
      [] {
        f32_tensor({2, 3}, 4).to_vector<float>();
      },
      {"tensor::to_vector", "holds 4 bytes", "[2, 3]", "need 24"});
  add("tensor_to_vector_double_short", "tensor::to_vector<double>", "F16 [4] with 2 bytes",
      [] {
        io::tensor t = f32_tensor({4}, 2);
        t.type = io::dtype::f16;
        t.to_vector<double>();
      },
      {"holds 2 bytes", "need 8"});
  add("tensor_to_matrix_short", "tensor::to_matrix", "empty bytes for F32 [3, 3]",
      [] {
        f32_tensor({3, 3}, 0).to_matrix<float>();
      },
      {"tensor::to_matrix", "need 36"});
  add("tensor_to_matrix_negative", "tensor::to_matrix", "shape [-2, 3]",
      [] {
        f32_tensor({-2, 3}, 24).to_matrix<double>();
      },
      {"negative dimension -2"});
  add("tensor_to_matrix_overflow", "tensor::to_matrix", "shape [2^62, 2^62]",
      [] {
        f32_tensor({big, big}, 0).to_matrix<float>();
      },
      {"overflows 64 bits"});
  add(
      "tensor_to_matrix_scalar", "tensor::to_matrix", "0-d tensor",
      [] { f32_tensor({}, 4).to_matrix<float>(); }, {"0-d tensor"}, E::error);
  add("tensor_numel_negative", "tensor::numel", "shape [3, -1]",
      [] {
        f32_tensor({3, -1}, 0).numel();
      },
      {"tensor::numel", "negative dimension -1"});
  add("tensor_numel_overflow", "tensor::numel", "shape [2^62, 4]",
      [] {
        f32_tensor({big, 4}, 0).numel();
      },
      {"overflows 64 bits"});
  add("tensor_element_past_end", "tensor::element", "element 6 of 6",
      [] {
        f32_tensor({2, 3}, 24).element(6);
      },
      {"tensor::element", "index 6", "6 stored"});
  add("tensor_element_negative", "tensor::element", "element -1",
      [] { f32_tensor({2}, 8).element(-1); }, {"index -1"});
  add("tensor_element_short_bytes", "tensor::element", "element 1 with 4 bytes stored",
      [] {
        f32_tensor({2, 3}, 4).element(1);
      },
      {"index 1", "1 stored"});
  add("tensor_element_dtype", "tensor::element", "dtype value 42",
      [] {
        io::tensor t = f32_tensor({1}, 4);
        t.type = static_cast<io::dtype>(42);
        t.element(0);
      },
      {"invalid dtype value 42"});
  add("tensor_set_element_past_end", "tensor::set_element", "element 2 of 2",
      [] { f32_tensor({2}, 8).set_element(2, 1.0); }, {"tensor::set_element", "index 2"});
  add(
      "tensor_set_element_int", "tensor::set_element", "I8 128",
      [] {
        io::tensor t = f32_tensor({1}, 1);
        t.type = io::dtype::i8;
        t.set_element(0, 128);
      },
      {"not an integer in [-128, 127]"}, E::error);
  add(
      "tensor_from_matrix_dtype", "tensor::from_matrix", "dtype value 99",
      [] { io::tensor::from_matrix(matrix_f::Ones(2, 2), static_cast<io::dtype>(99)); },
      {"invalid dtype value 99"}, E::error);
  // ---- writers
  add(
      "serialize_npy_short", "serialize_npy", "F32 [2, 3] with 8 bytes",
      [] {
        io::serialize_npy(f32_tensor({2, 3}, 8));
      },
      {"holds 8 bytes", "need 24"}, E::error);
  add("serialize_npy_negative", "serialize_npy", "shape [-1]",
      [] { io::serialize_npy(f32_tensor({-1}, 0)); }, {"negative dimension"});
  add("serialize_npy_bf16", "serialize_npy", "BF16 tensor",
      [] {
        io::tensor t = f32_tensor({2}, 4);
        t.type = io::dtype::bf16;
        io::serialize_npy(t);
      },
      {"bfloat16"});
  add("serialize_npy_dtype", "serialize_npy", "dtype value 42",
      [] {
        io::tensor t = f32_tensor({2}, 8);
        t.type = static_cast<io::dtype>(42);
        io::serialize_npy(t);
      },
      {"invalid dtype value 42"});
  add(
      "serialize_safetensors_short", "serialize_safetensors", "F32 [4] with 12 bytes",
      [] { io::serialize_safetensors(one_tensor_file(f32_tensor({4}, 12))); },
      {"tensor 't' holds 12 bytes", "needs 16"}, E::error);
  add("serialize_safetensors_dtype", "serialize_safetensors", "dtype value 8",
      [] {
        io::tensor t = f32_tensor({2}, 8);
        t.type = static_cast<io::dtype>(8);
        io::serialize_safetensors(one_tensor_file(t));
      },
      {"invalid dtype value 8"});
  add("serialize_safetensors_overflow", "serialize_safetensors", "shape [2^62, 2^62]",
      [] {
        io::serialize_safetensors(one_tensor_file(f32_tensor({big, big}, 0)));
      },
      {"overflows 64 bits"});
  add(
      "serialize_safetensors_reserved", "serialize_safetensors", "tensor named __metadata__",
      [] {
        io::safetensors_file f;
        f.tensors.emplace_back("__metadata__", f32_tensor({1}, 4));
        io::serialize_safetensors(f);
      },
      {"'__metadata__' is reserved"}, E::error);
  add(
      "safetensors_add_duplicate", "safetensors_file::add", "name added twice",
      [] {
        io::safetensors_file f = one_tensor_file(f32_tensor({1}, 4));
        f.add("t", f32_tensor({1}, 4));
      },
      {"duplicate tensor name 't'"}, E::error);
  add("safetensors_at_missing", "safetensors_file::at", "name not in the file",
      [] { one_tensor_file(f32_tensor({1}, 4)).at("nope"); }, {"no tensor named 'nope'"});
  add("write_npy_dir", "write_npy", "path in a missing directory",
      [] { io::write_npy(missing_dir() + "x.npy", f32_tensor({1}, 4)); }, {"cannot create"});
  add("write_safetensors_dir", "write_safetensors", "path in a missing directory",
      [] {
        io::write_safetensors(missing_dir() + "x.safetensors", one_tensor_file(f32_tensor({1}, 4)));
      },
      {"cannot create"});
  add("save_transform_dir", "save_transform", "path in a missing directory",
      [] { io::save_transform(missing_dir() + "t.safetensors", transform(4)); }, {"cannot create"});
  // ---- readers
  add("read_npy_missing", "read_npy", "missing file", [] { io::read_npy(missing_dir() + "x.npy"); },
      {"cannot open"});
  add("read_safetensors_missing", "read_safetensors", "missing file",
      [] { io::read_safetensors(missing_dir() + "x.safetensors"); }, {"cannot open"});
  add("parse_npy_truncated", "parse_npy", "5 bytes",
      [] {
        const auto b = npy_image();
        io::parse_npy(b.data(), 5);
      },
      {"shorter than the 10-byte"});
  add("parse_npy_data_short", "parse_npy", "data section one byte short",
      [] {
        const auto b = npy_image();
        io::parse_npy(b.data(), b.size() - 1);
      },
      {"data section has 23 bytes", "need 24"});
  add("parse_npy_header_past_end", "parse_npy", "header length past the end",
      [] {
        auto b = npy_image();
        b[8] = 0xFF;
        b[9] = 0xFF;
        io::parse_npy(b.data(), b.size());
      },
      {"header runs past the end"});
  add("parse_npy_magic", "parse_npy", "bad magic",
      [] {
        auto b = npy_image();
        b[1] = 'X';
        io::parse_npy(b.data(), b.size());
      },
      {"bad magic"});
  add("parse_npy_null_empty", "parse_npy", "null pointer, size 0",
      [] { io::parse_npy(nullptr, 0); }, {"shorter than the 10-byte"});
  add("parse_safetensors_truncated", "parse_safetensors", "data one byte short",
      [] {
        const auto b = safetensors_image();
        io::parse_safetensors(b.data(), b.size() - 1);
      },
      {"data_offsets run past the end"});
  add("parse_safetensors_header_len", "parse_safetensors", "header length 2^40",
      [] {
        auto b = safetensors_image();
        b[5] = 1;
        io::parse_safetensors(b.data(), b.size());
      },
      {"exceeds 100 MB"});
  add("parse_safetensors_short", "parse_safetensors", "3 bytes",
      [] {
        const std::uint8_t b[3] = {1, 2, 3};
        io::parse_safetensors(b, 3);
      },
      {"shorter than the 8-byte"});
  add("parse_safetensors_trailing", "parse_safetensors", "one extra data byte",
      [] {
        auto b = safetensors_image();
        b.push_back(0);
        io::parse_safetensors(b.data(), b.size());
      },
      {"data section has 25 bytes", "end at 24"});
  add("parse_json_invalid", "parse_json", "{\"a\":}", [] { io::parse_json("{\"a\":}"); },
      {"invalid JSON"});
  add("parse_json_deep", "parse_json", "nesting 100 deep",
      [] { io::parse_json(std::string(100, '[') + std::string(100, ']')); }, {"nesting deeper"});
  // ---- transform files
  add("transform_file_perm_short", "from_safetensors", "perm bytes truncated, checksum re-signed",
      [] {
        reload_edited(
            [](io::safetensors_file& f) { tensor_named(f, "t.stage.1.perm").bytes.resize(8); });
      },
      {"tensor 't.stage.1.perm'", "holds 8 bytes", "need 64"});
  add("transform_file_values_short", "from_safetensors", "signs bytes cleared, re-signed",
      [] {
        reload_edited(
            [](io::safetensors_file& f) { tensor_named(f, "t.stage.0.values").bytes.clear(); });
      },
      {"tensor 't.stage.0.values'", "holds 0 bytes"});
  add("transform_file_blocks_short", "from_safetensors", "blocks bytes halved, re-signed",
      [] {
        reload_edited([](io::safetensors_file& f) {
          auto& b = tensor_named(f, "t.stage.2.blocks").bytes;
          b.resize(b.size() / 2);
        });
      },
      {"tensor 't.stage.2.blocks'", "holds 64 bytes", "need 128"});
  add("transform_file_blocks_negative", "from_safetensors", "blocks shape [-1, 4, 4]",
      [] {
        reload_edited(
            [](io::safetensors_file& f) { tensor_named(f, "t.stage.2.blocks").shape[0] = -1; });
      },
      {"tensor 't.stage.2.blocks'", "negative dimension -1"});
  add("transform_file_perm_dtype", "from_safetensors", "perm stored as F64",
      [] {
        reload_edited([](io::safetensors_file& f) {
          tensor_named(f, "t.stage.1.perm").type = io::dtype::f64;
        });
      },
      {"perm' must be I64 [8]"});
  add("transform_file_perm_range", "from_safetensors", "perm entry 99",
      [] {
        reload_edited(
            [](io::safetensors_file& f) { tensor_named(f, "t.stage.1.perm").set_element(3, 99); });
      },
      {"entry 3 = 99", "outside [0, 8)"});
  add("transform_file_signs_value", "from_safetensors", "sign 0.25",
      [] {
        reload_edited([](io::safetensors_file& f) {
          tensor_named(f, "t.stage.0.values").set_element(2, 0.25);
        });
      },
      {"stage 't.stage.0.' is invalid", "expected +1 or -1"});
  add("transform_file_checksum", "from_safetensors", "edited bytes, stale checksum",
      [] {
        reload_edited(
            [](io::safetensors_file& f) {
              io::tensor& t = tensor_named(f, "t.stage.0.values");
              t.set_element(0, -t.element(0));
            },
            false);
      },
      {"checksum mismatch"});
  add("transform_file_format", "from_safetensors", "metadata format removed",
      [] { reload_edited([](io::safetensors_file& f) { f.metadata.erase("format"); }); },
      {"not a rotquant transform file"});
  add("transform_file_dim", "from_safetensors", "dim 'eight'",
      [] { reload_edited([](io::safetensors_file& f) { f.metadata["t.dim"] = "eight"; }); },
      {"'t.dim' is not a non-negative integer"});
  add("transform_file_dim_negative", "from_safetensors", "dim -8",
      [] { reload_edited([](io::safetensors_file& f) { f.metadata["t.dim"] = "-8"; }); },
      {"'t.dim' is not a non-negative integer"});
  add("transform_file_stages", "from_safetensors", "stages 9 of 4",
      [] { reload_edited([](io::safetensors_file& f) { f.metadata["t.stages"] = "9"; }); },
      {"lacks metadata 't.stage.4.kind'"});
  add("transform_file_hadamard_block", "from_safetensors", "hadamard block 2^62 + 1",
      [] {
        reload_edited(
            [](io::safetensors_file& f) { f.metadata["t.stage.3.block"] = "4611686018427387905"; });
      },
      {"stage 't.stage.3.' is invalid"});
  add("transform_file_kind", "from_safetensors", "stage kind 'fourier'",
      [] {
        reload_edited([](io::safetensors_file& f) { f.metadata["t.stage.3.kind"] = "fourier"; });
      },
      {"unknown stage kind 'fourier'"});
  add("transform_file_names", "from_safetensors", "transforms 't,,t'",
      [] { reload_edited([](io::safetensors_file& f) { f.metadata["transforms"] = "t,,t"; }); },
      {"empty transform name"});
  add(
      "to_safetensors_name", "to_safetensors", "name 'a,b'",
      [] {
        io::transform_bundle b;
        b.transforms.emplace_back("a,b", transform(4));
        io::to_safetensors(b);
      },
      {"contains ','"}, E::error);
  add(
      "to_safetensors_duplicate", "to_safetensors", "name used twice",
      [] {
        io::transform_bundle b;
        b.transforms.emplace_back("a", transform(4));
        b.transforms.emplace_back("a", transform(4));
        io::to_safetensors(b);
      },
      {"duplicate transform name 'a'"}, E::error);
  add(
      "to_safetensors_reserved", "to_safetensors", "metadata key 'checksum'",
      [] {
        io::transform_bundle b;
        b.transforms.emplace_back("a", transform(4));
        b.metadata["checksum"] = "0";
        io::to_safetensors(b);
      },
      {"metadata key 'checksum' is reserved"}, E::error);
  add("load_transform_missing", "load_transform", "missing file",
      [] { io::load_transform(missing_dir() + "t.safetensors"); }, {"cannot open"});
  add("bundle_at_missing", "transform_bundle::at", "name not in the bundle",
      [] { io::from_safetensors(transform_image(), "x").at("nope"); },
      {"no transform named 'nope'"});
  // ---- core helpers
  add(
      "thread_pool_zero", "thread_pool_executor", "0 threads",
      [] { rotquant::thread_pool_executor p(0); }, {"thread count must be >= 1"}, E::error);
  add(
      "thread_pool_huge", "thread_pool_executor", "INT_MAX threads",
      [] { rotquant::thread_pool_executor p(INT_MAX); }, {"<= 4096", "2147483647"}, E::error);
  add(
      "thread_pool_negative", "thread_pool_executor", "-3 threads",
      [] { rotquant::thread_pool_executor p(-3); }, {"got -3"}, E::error);
  add(
      "parallel_for_grain", "parallel_for", "grain 0",
      [] { rotquant::parallel_for(0, 10, 0, [](index_t, index_t) {}); }, {"grain must be >= 1"},
      E::error);
  add(
      "parallel_for_range_overflow", "parallel_for", "[INT64_MIN, INT64_MAX)",
      [] {
        rotquant::parallel_for(std::numeric_limits<index_t>::min(),
                               std::numeric_limits<index_t>::max(), 1, [](index_t, index_t) {});
      },
      {"more elements than index_t can count"}, E::error);
  add(
      "serial_grain_zero", "serial_executor::parallel_for", "grain 0",
      [] { rotquant::serial_executor().parallel_for(0, 10, 0, [](index_t, index_t) {}); },
      {"grain must be >= 1"}, E::error);
  add(
      "pool_range_overflow", "thread_pool_executor::parallel_for", "[-2^62, INT64_MAX - 5)",
      [] {
        rotquant::thread_pool_executor p(2);
        p.parallel_for(-big, std::numeric_limits<index_t>::max() - 5, 7, [](index_t, index_t) {});
      },
      {"more elements than index_t can count"}, E::error);
  add(
      "transform_inplace_stride", "transform::apply_inplace", "view with row stride 2 < C = 4",
      [] {
        matrix_f x = matrix_f::Zero(3, 4);
        rotquant::matrix_view<float> v(x.data(), 3, 4, Eigen::OuterStride<>(2));
        rotquant::randomized_hadamard(4, 0).apply_inplace(v);
      },
      {"row stride 2", "rows would overlap"}, E::error);
  add(
      "transform_inplace_null", "transform::fold_into_weight_inplace", "null view of 2 rows",
      [] {
        rotquant::matrix_view<double> v(nullptr, 2, 4, Eigen::OuterStride<>(4));
        rotquant::randomized_hadamard(4, 0).fold_into_weight_inplace(v);
      },
      {"null data"}, E::error);
  add(
      "pool_parallel_for_grain", "thread_pool_executor::parallel_for", "grain -1",
      [] {
        rotquant::thread_pool_executor p(2);
        p.parallel_for(0, 10, -1, [](index_t, index_t) {});
      },
      {"grain must be >= 1"}, E::error);
  add(
      "make_view_negative", "make_view", "-1 x 4",
      [] {
        float x[4] = {};
        rotquant::make_view(x, -1, 4, 4);
      },
      {"negative shape"}, E::error);
  add(
      "make_view_stride", "make_view", "stride 2 < 4 columns",
      [] {
        float x[8] = {};
        rotquant::make_view(x, 2, 4, 2);
      },
      {"row stride 2"}, E::error);
  add(
      "make_view_null", "make_view", "null data for 2 x 2",
      [] { rotquant::make_view(static_cast<float*>(nullptr), 2, 2, 2); }, {"null data"}, E::error);
  add(
      "rng_uniform_int_zero", "rng::uniform_int", "bound 0",
      [] { rotquant::rng(1).uniform_int(0); }, {"bound must be positive"}, E::error);
  add(
      "rng_from_state_zero", "rng::from_state", "all-zero state",
      [] { rotquant::rng::from_state(0, 0, 0, 0); }, {"all-zero state"}, E::error);
  return v;
}

std::vector<bad_case> all_cases() {
  std::vector<bad_case> v;
  for (auto* part : {kernel_cases, transform_cases, quant_pipeline_cases, io_cases}) {
    auto p = part();
    v.insert(v.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  }
  return v;
}

class BadInput : public ::testing::TestWithParam<bad_case> {};

TEST_P(BadInput, ThrowsTheDocumentedErrorAndNothingElse) {
  const bad_case& c = GetParam();
  bool thrown_right = false;
  try {
    c.call();
  } catch (const rotquant::error& e) {
    const bool is_io = dynamic_cast<const io::io_error*>(&e) != nullptr;
    EXPECT_EQ(is_io, c.type == thrown::io_error)
        << c.entry << " <- " << c.input << ": threw "
        << (is_io ? "rotquant::io::io_error" : "rotquant::error") << ": " << e.what();
    const std::string msg = e.what();
    for (const auto& w : c.words)
      EXPECT_NE(msg.find(w), std::string::npos)
          << c.entry << " <- " << c.input << ": message lacks '" << w << "': " << msg;
    thrown_right = true;
  } catch (const std::exception& e) {
    ADD_FAILURE() << c.entry << " <- " << c.input << ": threw " << typeid(e).name()
                  << " instead of a rotquant::error: " << e.what();
    return;
  } catch (...) {
    ADD_FAILURE() << c.entry << " <- " << c.input << ": threw a non-std exception";
    return;
  }
  EXPECT_TRUE(thrown_right) << c.entry << " <- " << c.input << ": nothing was thrown";
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<bad_case>& info) {
                           return info.param.id;
                         });

// The table itself: ids unique, every row names its entry point and input and expects words.
TEST(BadInputTable, RowsAreWellFormed) {
  const auto cases = all_cases();
  EXPECT_GE(cases.size(), 200u);
  std::vector<std::string> ids;
  for (const auto& c : cases) {
    EXPECT_FALSE(c.entry.empty() || c.input.empty() || c.words.empty()) << c.id;
    for (const auto& id : ids) EXPECT_NE(id, c.id) << "duplicate row id";
    ids.push_back(c.id);
  }
}

// Valid inputs right at the checked limits still work (the checks reject only what is wrong).
TEST(BadInputTable, LimitsStillAccepted) {
  const packed_activations a = acts(act_format::qsi4dg, 32);
  const packed_weights w = weights(weight_format::qsi4cg, 32);
  EXPECT_NO_THROW(a.validate("test"));
  EXPECT_NO_THROW(w.validate("test"));
  matrix_f out = matrix_f::Zero(3, 20);
  EXPECT_NO_THROW(rotquant::quantized_matmul(a, w, rotquant::view(out)));
  const packed_activations empty =
      rotquant::quantize_activations(matrix_f(0, 64), act_format::mxfp4);
  EXPECT_EQ(rotquant::quantized_matmul(empty, weights(weight_format::mxfp4)).rows(), 0);
  EXPECT_EQ(rotquant::dequantize_activations(empty).rows(), 0);
  // A reused scratch whose old storage is not read by the new call is fine.
  packed_activations scratch = acts();
  EXPECT_NO_THROW(
      rotquant::quantize_activations(rotquant::view(x64()), act_format::qai4dx, scratch));
  EXPECT_NO_THROW(scratch.validate("test"));
  EXPECT_EQ(rotquant::random_normal_matrix<float>(0, index_t{1} << 62, 0).size(), 0);
  EXPECT_NO_THROW(rotquant::detail::check_alloc(index_t{1} << 20, index_t{1} << 20, 8, "test"));
  EXPECT_NO_THROW(rotquant::thread_pool_executor(3));
  // Ranges that end at the largest index still run, chunk by chunk, without overflow.
  std::vector<std::pair<index_t, index_t>> got;
  const index_t top = std::numeric_limits<index_t>::max();
  rotquant::serial_executor().parallel_for(
      top - 5, top, 4, [&](index_t lo, index_t hi) { got.emplace_back(lo, hi); });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].second, top);
  rotquant::thread_pool_executor pool(2);
  std::atomic<index_t> covered{0};
  pool.parallel_for(top - 100, top, 7, [&](index_t lo, index_t hi) { covered += hi - lo; });
  EXPECT_EQ(covered.load(), 100);
  io::tensor t = f32_tensor({2, 0, 3}, 0);
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector<float>().empty());
  EXPECT_EQ(t.to_matrix<float>().size(), 0);
}

}  // namespace
