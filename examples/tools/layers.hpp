// SPDX-License-Identifier: Apache-2.0
// layers.hpp: the input convention of rotquant-calibrate and rotquant-inspect, and the preset
// names they accept (calibration.hpp runs them).
//
// Input: a safetensors file holding, for each layer L, the calibration activations `L.x`
// ([T, C], or [..., C]: leading dimensions are flattened into tokens) and the weight `L.weight`
// ([out, C], nn.Linear layout), any float dtype (F32, F64, F16, BF16). Layers come in the file
// order of their `L.x` tensors; other tensors are ignored. Or one layer from two .npy files.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/io/npy.hpp"
#include "rotquant/io/safetensors.hpp"

namespace rqtool {

using rotquant::index_t;
using rotquant::matrix_f;

/// One linear layer's calibration data.
struct layer_data {
  std::string name;
  matrix_f x;  ///< [T, C]
  matrix_f w;  ///< [out, C]
};

namespace detail {

inline std::string shape_string(const rotquant::io::tensor& t) {
  std::string s = "[";
  for (std::size_t i = 0; i < t.shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

inline bool is_float(rotquant::io::dtype t) {
  using rotquant::io::dtype;
  return t == dtype::f32 || t == dtype::f64 || t == dtype::f16 || t == dtype::bf16;
}

/// The tensor as a matrix after checking dtype and rank; `what` names it in messages.
inline matrix_f to_matrix(const rotquant::io::tensor& t, const std::string& what, bool weight) {
  using rotquant::io::io_error;
  if (!is_float(t.type))
    throw io_error(what + " has dtype " + rotquant::io::dtype_name(t.type) +
                   "; expected a float dtype (F32, F64, F16 or BF16)");
  if (weight ? t.shape.size() != 2 : t.shape.size() < 2)
    throw io_error(what + " has shape " + shape_string(t) +
                   (weight ? "; expected [out, C]" : "; expected [T, C] (or [..., C])"));
  if (t.numel() == 0) throw io_error(what + " has shape " + shape_string(t) + ", which is empty");
  return t.to_matrix<float>();
}

inline layer_data make_layer(std::string name, matrix_f x, matrix_f w, const std::string& xwhat,
                             const std::string& wwhat) {
  if (x.cols() != w.cols())
    throw rotquant::io::io_error("layer '" + name + "': " + wwhat + " has " +
                                 std::to_string(w.cols()) + " input features but " + xwhat +
                                 " has " + std::to_string(x.cols()) + " channels");
  return {std::move(name), std::move(x), std::move(w)};
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace detail

/// The layer names of a parsed input file (order of their `.x` tensors).
inline std::vector<std::string> layer_names(const rotquant::io::safetensors_file& f,
                                            const std::string& path) {
  std::vector<std::string> names;
  for (const auto& kv : f.tensors)
    if (detail::ends_with(kv.first, ".x") && kv.first.size() > 2)
      names.push_back(kv.first.substr(0, kv.first.size() - 2));
  for (const auto& n : names)
    if (!f.contains(n + ".weight"))
      throw rotquant::io::io_error(path + ": layer '" + n + "' has '" + n + ".x' but no '" + n +
                                   ".weight'");
  if (names.empty())
    throw rotquant::io::io_error(
        path +
        ": no layers found (expected tensors 'L.x' [T, C] and 'L.weight' [out, C] for "
        "each layer L; the file has " +
        std::to_string(f.tensors.size()) + " tensors)");
  return names;
}

/// Reads the layers of a safetensors input; `only` non-empty selects one layer by name.
inline std::vector<layer_data> load_layers(const std::string& path, const std::string& only = "") {
  const rotquant::io::safetensors_file f = rotquant::io::read_safetensors(path);
  const std::vector<std::string> names = layer_names(f, path);
  std::vector<layer_data> out;
  for (const auto& n : names) {
    if (!only.empty() && n != only) continue;
    const std::string xn = n + ".x", wn = n + ".weight";
    out.push_back(detail::make_layer(n, detail::to_matrix(f.at(xn), path + ": '" + xn + "'", false),
                                     detail::to_matrix(f.at(wn), path + ": '" + wn + "'", true),
                                     "'" + xn + "'", "'" + wn + "'"));
  }
  if (out.empty()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw rotquant::io::io_error(path + ": no layer named '" + only + "' (layers: " + list + ")");
  }
  return out;
}

/// One layer from two .npy files.
inline layer_data load_npy_layer(const std::string& xpath, const std::string& wpath,
                                 const std::string& name) {
  return detail::make_layer(name, detail::to_matrix(rotquant::io::read_npy(xpath), xpath, false),
                            detail::to_matrix(rotquant::io::read_npy(wpath), wpath, true), xpath,
                            wpath);
}

/// The preset names the tools accept.
inline const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {
      "rtn", "smoothquant", "quarot", "duquant", "dfrot", "hqdit", "quarot-mxfp4", "quarot-nvfp4"};
  return names;
}

inline bool is_preset(const std::string& p) {
  for (const auto& n : preset_names())
    if (n == p) return true;
  return false;
}

inline std::string preset_list() {
  std::string s;
  for (const auto& n : preset_names()) s += (s.empty() ? "" : "|") + n;
  return s;
}

/// DuQuant's block size for C channels: the released 128 when it divides C, else the largest
/// divisor of C in [2, 128] (a rotquant::error if C has none, i.e. C = 1).
inline index_t duquant_block(index_t c) {
  for (index_t b = 128; b >= 2; --b)
    if (c % b == 0) return b;
  throw rotquant::error("duquant: no block size in [2, 128] divides C = " + std::to_string(c));
}

}  // namespace rqtool
