// SPDX-License-Identifier: Apache-2.0
// make_seeds.cpp: writes the committed seed corpora of the fuzz targets (small valid files,
// deterministic) into <dir>/{npy,safetensors,json,transform_file}. The npy corpus also holds
// NumPy-written files copied from tests/data. Regenerate with
//   cmake --build --preset fuzz --target fuzz_make_seeds
//   build/fuzz/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/io/npy.hpp"
#include "rotquant/io/safetensors.hpp"
#include "rotquant/io/transform_file.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"

namespace {

namespace io = rotquant::io;
using rotquant::index_t;

io::tensor make(io::dtype type, std::vector<std::int64_t> shape, double start) {
  io::tensor t;
  t.type = type;
  t.shape = std::move(shape);
  t.bytes.resize(static_cast<std::size_t>(t.numel()) * io::dtype_size(type));
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t.set_element(static_cast<std::size_t>(i), start + static_cast<double>(i % 7) - 3.0);
  return t;
}

void write_text(const std::string& path, const std::string& text) {
  io::detail::write_file(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

void npy_seeds(const std::string& dir) {
  io::write_npy(dir + "/f32_2x3.npy", make(io::dtype::f32, {2, 3}, 0.5));
  io::write_npy(dir + "/f16_4.npy", make(io::dtype::f16, {4}, 0.25));
  io::write_npy(dir + "/i64_scalar.npy", make(io::dtype::i64, {}, 7));
  io::write_npy(dir + "/u8_3x0x2.npy", make(io::dtype::u8, {3, 0, 2}, 3));
  // Version 2.0 preamble (4-byte header length) with a version 3.0 UTF-8 sibling.
  for (int version : {2, 3}) {
    std::string header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }";
    header.append((64 - (12 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::vector<std::uint8_t> out = {
        0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(version), 0};
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(header.size() >> (8 * i)));
    out.insert(out.end(), header.begin(), header.end());
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(i % 4 == 0 ? i + 1 : 0));
    io::detail::write_file(dir + "/i32_1x2_v" + std::to_string(version) + ".npy", out);
  }
}

void safetensors_seeds(const std::string& dir) {
  io::safetensors_file all;
  const io::dtype types[] = {io::dtype::f32, io::dtype::f64, io::dtype::f16, io::dtype::bf16,
                             io::dtype::i8,  io::dtype::u8,  io::dtype::i32, io::dtype::i64};
  int k = 0;
  for (io::dtype t : types) {
    all.add(io::dtype_name(t), make(t, {2, 1 + k % 3}, k));
    ++k;
  }
  all.metadata["format"] = "pt";
  all.metadata["note"] = "escapes \"\\\n\t \xC3\xA9";
  io::write_safetensors(dir + "/every_dtype.safetensors", all);

  io::safetensors_file edge;
  edge.add("scalar", make(io::dtype::f32, {}, 1));
  edge.add("empty", make(io::dtype::f16, {0}, 0));
  edge.add("empty2d", make(io::dtype::i8, {0, 5}, 0));
  edge.add("row", make(io::dtype::bf16, {1, 4}, 2));
  io::write_safetensors(dir + "/empty_and_scalar.safetensors", edge);

  io::write_safetensors(dir + "/no_tensors.safetensors", io::safetensors_file{});
  io::safetensors_file one;
  one.add("weight", make(io::dtype::f32, {3, 2}, 0));
  io::write_safetensors(dir + "/one_tensor.safetensors", one);
}

void json_seeds(const std::string& dir) {
  write_text(dir + "/header.json",
             R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],)"
             R"("data_offsets":[0,24]}})");
  write_text(dir + "/scalars.json",
             R"([null, true, false, 0, -0, 12, -9223372036854775808, 9223372036854775807,)"
             R"( 18446744073709551616, 1.5, -2.5e-3, 6.02E+23, 1e999])");
  write_text(dir + "/strings.json",
             R"({"s": "a\"b\\c\/d\b\f\n\r\t", "u": "\u00e9\u20ac\ud83d\ude00", "raw": "é€"})");
  write_text(dir + "/nested.json", R"({"a": [[[{"b": [[], {}]}]]], "c": {"d": {"e": [1, [2]]}}})");
  write_text(dir + "/string.json", R"("just a string")");
}

rotquant::vector_d positive(index_t n, std::uint64_t seed) {
  rotquant::rng g(seed);
  rotquant::vector_d s(n);
  for (index_t i = 0; i < n; ++i) s[i] = 0.5 + g.uniform();
  return s;
}

void transform_seeds(const std::string& dir) {
  {  // every stage kind over C = 8
    rotquant::transform t(8);
    t.append_scale(positive(8, 1));
    t.append_signs(rotquant::random_signs<double>(8, 2));
    t.append_hadamard();
    t.append_permutation(rotquant::random_permutation(8, 3));
    t.append_block_diagonal(rotquant::random_orthogonal(4, 4));  // one shared 4 x 4 block
    t.append_block_diagonal(std::vector<rotquant::matrix_d>{
        rotquant::random_orthogonal(2, 5), rotquant::random_orthogonal(2, 6),
        rotquant::random_orthogonal(2, 7), rotquant::random_orthogonal(2, 8)});
    t.append_hadamard(4, true);
    t.append_dense(rotquant::random_orthogonal(8, 9));
    io::save_transform(dir + "/every_stage_c8.safetensors", t, {{"method", "seed"}});
  }
  {  // randomized Hadamard over C = 12 (Paley base K = 12) and a second transform
    io::transform_bundle b;
    b.transforms.emplace_back("layer0.qkv", rotquant::randomized_hadamard(12, 11));
    rotquant::transform p(6);
    p.append_permutation(rotquant::random_permutation(6, 12));
    p.append_scale(positive(6, 13));
    b.transforms.emplace_back("layer0.down", p);
    b.metadata["seed"] = "11";
    io::save_transforms(dir + "/two_transforms.safetensors", b);
  }
  {  // a non-orthogonal (LU-inverted) dense stage and a block Hadamard of 20 (Paley K = 20)
    rotquant::transform t(40);
    t.append_hadamard(20);
    rotquant::transform d(3);
    d.append_dense((rotquant::matrix_d(3, 3) << 2, 1, 0, 0, 1, 0, 1, 0, 3).finished());
    io::transform_bundle b;
    b.transforms.emplace_back("h", t);
    b.transforms.emplace_back("d", d);
    io::save_transforms(dir + "/hadamard20_dense3.safetensors", b);
  }
  io::save_transform(dir + "/identity_c1.safetensors", rotquant::transform(1));
  {  // a whole-row Hadamard written as block "0" (accepted on load; the writer never emits it)
    rotquant::transform t(64);
    t.append_hadamard();
    io::transform_bundle b;
    b.transforms.emplace_back("r", t);
    io::safetensors_file f = io::to_safetensors(b);
    f.metadata["r.stage.0.block"] = "0";
    io::write_safetensors(dir + "/hadamard_block0.safetensors", f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir with npy/ safetensors/ json/ transform_file/>\n",
                 argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  try {
    npy_seeds(root + "/npy");
    safetensors_seeds(root + "/safetensors");
    json_seeds(root + "/json");
    transform_seeds(root + "/transform_file");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
