// SPDX-License-Identifier: Apache-2.0
// transform_file.hpp: transform files, the artefact an engine loads with one call: a
// safetensors file holding one or more named rotquant::transform objects plus metadata.
//
// Format (version 1). `__metadata__` keys:
//   format = "rotquant.transform", version = "1", transforms = comma-separated names,
//   checksum = FNV-1a 64 of every tensor's bytes in file order (hex),
//   <name>.dim = C, <name>.stages = k, and per stage i:
//   <name>.stage.<i>.kind = scale|signs|permutation|hadamard|block_diagonal|dense,
//   <name>.stage.<i>.block = block size (hadamard: 0 = whole row; block_diagonal: B),
//   <name>.stage.<i>.transposed = 0|1 (hadamard), <name>.stage.<i>.shared = 0|1 (block_diagonal),
//   <name>.stage.<i>.hadamard_k = K of T = kron(H_K, S_2^m) (informational),
//   plus any caller metadata (seed, method, packed weight format names, ...) under its own keys.
// Tensors: <name>.stage.<i>.values (F64 [C]: scale s or signs d), <name>.stage.<i>.perm (I64 [C]),
//   <name>.stage.<i>.blocks (F64 [n, B, B]; dense: [1, C, C]).
// Loading validates everything the typed transform builders validate (bijective permutations,
// +-1 signs, finite positive scales, constructible Hadamard sizes, invertible blocks) and
// rejects wrong magic/version, checksum mismatches, missing tensors and inconsistent shapes.
#pragma once

#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/io/safetensors.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {
namespace io {

/// Transforms read from (or to be written to) a transform file, with the file's metadata.
struct transform_bundle {
  std::vector<std::pair<std::string, transform>> transforms;
  std::map<std::string, std::string> metadata;  // caller metadata (format keys removed)

  const transform& at(const std::string& name) const {
    for (const auto& kv : transforms)
      if (kv.first == name) return kv.second;
    throw io_error("transform file has no transform named '" + name + "'");
  }
};

namespace detail {

inline std::uint64_t fnv1a(std::uint64_t h, const std::vector<std::uint8_t>& bytes) {
  for (std::uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001B3ull;
  }
  return h;
}

inline std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

inline std::uint64_t checksum(const safetensors_file& f) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const auto& kv : f.tensors) h = fnv1a(h, kv.second.bytes);
  return h;
}

inline bool reserved_key(const std::string& k, const std::vector<std::string>& names) {
  if (k == "format" || k == "version" || k == "transforms" || k == "checksum") return true;
  for (const auto& n : names)
    if (k.compare(0, n.size() + 1, n + ".") == 0) return true;
  return false;
}

// Shapes are assigned from a constructed vector, not an initializer list: GCC 12 at -O3 reports
// a false -Wnonnull (memmove of a null pointer) in vector::_M_assign_aux for `shape = {...}`.
inline tensor vector_tensor(const vector_d& v) {
  tensor t = tensor::from_matrix(v.transpose(), dtype::f64);
  t.shape = std::vector<std::int64_t>{static_cast<std::int64_t>(v.size())};
  return t;
}

}  // namespace detail

/// Serialises named transforms and caller metadata into a safetensors image.
/// Names must be non-empty, unique and free of ',' (they prefix the keys).
inline safetensors_file to_safetensors(const transform_bundle& bundle) {
  safetensors_file f;
  std::string names;
  std::vector<std::string> seen;
  for (const auto& kv : bundle.transforms) {
    const std::string& name = kv.first;
    ROTQUANT_CHECK(!name.empty() && name.find(',') == std::string::npos,
                   "transform file: transform name '" << name << "' is empty or contains ','");
    for (const auto& s : seen)
      ROTQUANT_CHECK(s != name, "transform file: duplicate transform name '" << name << "'");
    seen.push_back(name);
    names += (names.empty() ? "" : ",") + name;
    const transform& t = kv.second;
    f.metadata[name + ".dim"] = std::to_string(t.dim());
    f.metadata[name + ".stages"] = std::to_string(t.num_stages());
    for (std::size_t i = 0; i < t.num_stages(); ++i) {
      const transform_stage& st = t.stages()[i];
      const std::string p = name + ".stage." + std::to_string(i) + ".";
      f.metadata[p + "kind"] = to_string(st.kind);
      switch (st.kind) {
        case stage_kind::scale:
        case stage_kind::signs:
          f.add(p + "values", detail::vector_tensor(st.values));
          break;
        case stage_kind::permutation: {
          tensor pt;
          pt.type = dtype::i64;
          pt.shape = std::vector<std::int64_t>{static_cast<std::int64_t>(st.perm.size())};
          pt.bytes.resize(st.perm.size() * 8);
          for (std::size_t k = 0; k < st.perm.size(); ++k)
            pt.set_element(k, static_cast<double>(st.perm[k]));
          f.add(p + "perm", std::move(pt));
          break;
        }
        case stage_kind::hadamard: {
          const index_t b = st.block == 0 ? t.dim() : st.block;
          f.metadata[p + "block"] = std::to_string(st.block);
          f.metadata[p + "transposed"] = st.transposed ? "1" : "0";
          index_t k = b;
          while (k % 2 == 0) k /= 2;
          f.metadata[p + "hadamard_k"] = std::to_string(k);
          break;
        }
        case stage_kind::block_diagonal:
        case stage_kind::dense: {
          const index_t b = st.blocks.empty() ? 0 : st.blocks[0].rows();
          if (st.kind == stage_kind::block_diagonal) {
            f.metadata[p + "block"] = std::to_string(b);
            f.metadata[p + "shared"] = (st.blocks.size() == 1 && b != t.dim()) ? "1" : "0";
          }
          tensor bt;
          bt.type = dtype::f64;
          bt.shape = std::vector<std::int64_t>{static_cast<std::int64_t>(st.blocks.size()), b, b};
          bt.bytes.resize(st.blocks.size() * static_cast<std::size_t>(b * b) * 8);
          std::size_t k = 0;
          for (const auto& m : st.blocks)
            for (index_t r = 0; r < b; ++r)
              for (index_t c = 0; c < b; ++c) bt.set_element(k++, m(r, c));
          f.add(p + "blocks", std::move(bt));
          break;
        }
      }
    }
  }
  for (const auto& kv : bundle.metadata) {
    ROTQUANT_CHECK(!detail::reserved_key(kv.first, seen),
                   "transform file: metadata key '" << kv.first << "' is reserved");
    f.metadata[kv.first] = kv.second;
  }
  f.metadata["format"] = "rotquant.transform";
  f.metadata["version"] = "1";
  f.metadata["transforms"] = names;
  f.metadata["checksum"] = detail::hex64(detail::checksum(f));
  return f;
}

/// Rebuilds transforms from a parsed safetensors image (validating as described above).
inline transform_bundle from_safetensors(const safetensors_file& f, const std::string& what) {
  auto meta = [&](const std::string& key) -> const std::string& {
    const auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw io_error(what + ": transform file lacks metadata '" + key + "'");
    return it->second;
  };
  auto integer = [&](const std::string& key) {
    const std::string& s = meta(key);
    std::size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(s, &used);
    } catch (...) {
      used = 0;
    }
    if (used != s.size() || v < 0)
      throw io_error(what + ": metadata '" + key + "' is not a non-negative integer");
    return static_cast<index_t>(v);
  };
  if (f.metadata.count("format") == 0 || meta("format") != "rotquant.transform")
    throw io_error(what +
                   ": not a rotquant transform file (metadata format != rotquant.transform)");
  if (meta("version") != "1")
    throw io_error(what + ": unsupported transform file version '" + meta("version") + "'");
  if (meta("checksum") != detail::hex64(detail::checksum(f)))
    throw io_error(what + ": checksum mismatch (file corrupted or edited)");
  transform_bundle out;
  std::vector<std::string> names;
  std::stringstream list(meta("transforms"));
  for (std::string n; std::getline(list, n, ',');) {
    // The writer refuses empty and repeated names, so the reader does too (a name prefixes
    // every key of its transform).
    if (n.empty()) throw io_error(what + ": empty transform name in metadata 'transforms'");
    for (const auto& seen : names)
      if (seen == n) throw io_error(what + ": duplicate transform name '" + n + "'");
    names.push_back(n);
  }
  for (const auto& name : names) {
    const index_t dim = integer(name + ".dim");
    const index_t stages = integer(name + ".stages");
    if (dim < 1) throw io_error(what + ": transform '" + name + "' has dimension 0");
    transform t(dim);
    for (index_t i = 0; i < stages; ++i) {
      const std::string p = name + ".stage." + std::to_string(i) + ".";
      const std::string& kind = meta(p + "kind");
      transform_stage st;
      auto tensor_of = [&](const std::string& suffix) -> const tensor& {
        if (!f.contains(p + suffix)) throw io_error(what + ": missing tensor '" + p + suffix + "'");
        // The image may be built or edited by hand: its bytes must match shape and dtype
        // before any of them is read.
        const tensor& v = f.at(p + suffix);
        v.check_bytes(what + ": tensor '" + p + suffix + "'");
        return v;
      };
      try {
        if (kind == "scale" || kind == "signs") {
          st.kind = kind == "scale" ? stage_kind::scale : stage_kind::signs;
          const tensor& v = tensor_of("values");
          if (v.shape.size() != 1 || v.shape[0] != dim)
            throw io_error(what + ": '" + p + "values' has the wrong shape");
          const auto vals = v.to_vector<double>();
          st.values = Eigen::Map<const vector_d>(vals.data(), dim);
        } else if (kind == "permutation") {
          st.kind = stage_kind::permutation;
          const tensor& v = tensor_of("perm");
          if (v.shape.size() != 1 || v.shape[0] != dim || v.type != dtype::i64)
            throw io_error(what + ": '" + p + "perm' must be I64 [" + std::to_string(dim) + "]");
          // Range-checked as integers: an index beyond 2^53 must not pass through double.
          for (std::int64_t k = 0; k < dim; ++k) {
            const auto e = detail::load_le<std::int64_t>(v.bytes.data() + 8 * k);
            if (e < 0 || e >= dim)
              throw io_error(what + ": '" + p + "perm' entry " + std::to_string(k) + " = " +
                             std::to_string(e) + " is outside [0, " + std::to_string(dim) + ")");
            st.perm.push_back(static_cast<index_t>(e));
          }
        } else if (kind == "hadamard") {
          st.kind = stage_kind::hadamard;
          st.block = integer(p + "block");
          st.transposed = meta(p + "transposed") == "1";
        } else if (kind == "block_diagonal" || kind == "dense") {
          st.kind = kind == "dense" ? stage_kind::dense : stage_kind::block_diagonal;
          const tensor& v = tensor_of("blocks");
          if (v.shape.size() != 3 || v.shape[1] != v.shape[2] || v.shape[0] < 1)
            throw io_error(what + ": '" + p + "blocks' must have shape [n, B, B]");
          const index_t b = static_cast<index_t>(v.shape[1]);
          if (st.kind == stage_kind::block_diagonal) {
            st.block = integer(p + "block");
            if (st.block != b)
              throw io_error(what + ": '" + p + "block' disagrees with the blocks' shape");
          }
          const auto vals = v.to_vector<double>();
          for (std::int64_t k = 0; k < v.shape[0]; ++k)
            st.blocks.push_back(Eigen::Map<const matrix_d>(vals.data() + k * b * b, b, b));
        } else {
          throw io_error(what + ": unknown stage kind '" + kind + "' in '" + p + "kind'");
        }
        t.append_stage(st);
      } catch (const io_error&) {
        throw;
      } catch (const rotquant::error& e) {
        throw io_error(what + ": stage '" + p + "' is invalid: " + e.what());
      }
    }
    out.transforms.emplace_back(name, std::move(t));
  }
  for (const auto& kv : f.metadata)
    if (!detail::reserved_key(kv.first, names)) out.metadata[kv.first] = kv.second;
  return out;
}

/// Writes a transform file holding `bundle`.
inline void save_transforms(const std::string& path, const transform_bundle& bundle) {
  write_safetensors(path, to_safetensors(bundle));
}

/// Writes one transform (named "transform") with caller metadata.
inline void save_transform(const std::string& path, const transform& t,
                           const std::map<std::string, std::string>& metadata = {}) {
  transform_bundle b;
  b.transforms.emplace_back("transform", t);
  b.metadata = metadata;
  save_transforms(path, b);
}

/// Reads every transform of a transform file. Throws io_error on any problem.
inline transform_bundle load_transforms(const std::string& path) {
  return from_safetensors(read_safetensors(path), path);
}

/// Reads the single transform called `name` (default "transform") of a transform file.
inline transform load_transform(const std::string& path, const std::string& name = "transform") {
  return load_transforms(path).at(name);
}

}  // namespace io
}  // namespace rotquant
