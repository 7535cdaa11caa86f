// SPDX-License-Identifier: Apache-2.0
// bm_gemm.cpp: packed W4A4 / W4A8 GEMM on LLaMA-2-7B shapes vs Eigen fp32 and oneDNN int8.
//
// Names spell out every argument: BM_w4a4_qsi4cx_qsi4dx/M:2048/N:4096/thr:1/quant:excl/isa:amx
// (thr = rotquant's pool size; quant:incl = the activation quantization inside the timed loop,
// quant:excl = the GEMM alone; isa = the path forced: amx (AMX-INT8 tiles for M >= 16, VNNI
// below), avx512 (VNNI), avx2), BM_formats/M:2048/N:4096/wfmt:qsi4cg/afmt:qsi4dx/group:128/isa:amx.
// A path the CPU lacks is reported as an error row ("ISA not available"), not run.
// Counters: ops_per_second = 2 M N K per second (the console's 386G/s is 386 GOPS);
// bytes_per_second = the packed weight bytes read per second (cold decode and its read peer).
// Peers in this binary: Eigen float GEMM (Y = X W^T, one thread) and, when built with
// ROTQUANT_HAVE_DNNL, oneDNN's u8 x s8 -> s32 matmul with weights reordered once (its threads
// follow OMP_NUM_THREADS; run with OMP_NUM_THREADS=1 for the single-core comparison). oneDNN
// picks its own implementation (AMX where the CPU has it): the name carries it, e.g.
// BM_onednn_u8s8s32/M:2048/N:4096/impl:brg_avx512_core_amx_int8 (pd.impl_info_str()).
// Eigen's AVX-512 GEMM kernels trip GCC 12's -Wmaybe-uninitialized inside the intrinsic headers
// (GCC bug 105593) when built with -march=native; not our code, so silence it for this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <benchmark/benchmark.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cstring>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/kernels/gemm.hpp"

#if defined(ROTQUANT_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.hpp>
#endif
#if ROTQUANT_HAS_AMX
#include "rotquant/detail/arch/amx/tiles.hpp"
#endif

namespace {

using rotquant::act_format;
using rotquant::index_t;
using rotquant::matrix_f;
using rotquant::weight_format;

constexpr index_t K = 4096;

const matrix_f& weights_f32(index_t n) {
  static std::map<index_t, std::unique_ptr<matrix_f>> cache;
  auto& p = cache[n];
  if (!p) p = std::make_unique<matrix_f>(rotquant::random_normal_matrix<float>(n, K, 11 + n));
  return *p;
}

const matrix_f& activations_f32(index_t m) {
  static std::map<index_t, std::unique_ptr<matrix_f>> cache;
  auto& p = cache[m];
  if (!p) p = std::make_unique<matrix_f>(rotquant::random_normal_matrix<float>(m, K, 5 + m));
  return *p;
}

const rotquant::packed_weights& packed(index_t n, weight_format f, index_t group) {
  static std::map<std::tuple<index_t, int, index_t>, std::unique_ptr<rotquant::packed_weights>>
      cache;
  auto& p = cache[{n, static_cast<int>(f), group}];
  if (!p)
    p = std::make_unique<rotquant::packed_weights>(
        rotquant::pack_weights(weights_f32(n), f, group));
  return *p;
}

void set_gops(benchmark::State& st, index_t m, index_t n) {
  st.counters["ops_per_second"] = benchmark::Counter(2.0 * static_cast<double>(m) * n * K,
                                                     benchmark::Counter::kIsIterationInvariantRate);
}

void set_bytes(benchmark::State& st, std::size_t bytes) {
  st.counters["bytes_per_second"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
}

std::string arg(const char* key, index_t v) {
  return "/" + std::string(key) + ":" + std::to_string(v);
}
std::string arg(const char* key, const char* v) {
  return "/" + std::string(key) + ":" + v;
}

void BM_w4a4_qsi4cx_qsi4dx(benchmark::State& st, index_t m, index_t n, int threads, bool with_quant,
                           rotquant::isa path) {
  if (!rotquant::isa_available(path)) {
    st.SkipWithError("ISA not available");
    return;
  }
  rotquant::scoped_isa force(path);
  rotquant::thread_pool_executor pool(threads);
  const auto& pw = packed(n, weight_format::qsi4cx, 0);
  const matrix_f& x = activations_f32(m);
  rotquant::packed_activations pa;
  rotquant::quantize_activations(rotquant::view(x), act_format::qsi4dx, pa, 1.0f, 0, &pool);
  matrix_f out(m, n);
  for (auto _ : st) {
    if (with_quant)
      rotquant::quantize_activations(rotquant::view(x), act_format::qsi4dx, pa, 1.0f, 0, &pool);
    rotquant::quantized_matmul(pa, pw, rotquant::view(out), {}, &pool);
    benchmark::DoNotOptimize(out.data());
  }
  set_gops(st, m, n);
}

int register_w4a4() {
  for (rotquant::isa path : {rotquant::isa::amx, rotquant::isa::avx512, rotquant::isa::avx2})
    for (int threads : {1, 2})
      for (bool q : {false, true})
        for (index_t n : {4096, 11008})
          for (index_t m : {1, 16, 128, 2048}) {
            if (path == rotquant::isa::avx2 && (q || n != 4096)) continue;  // AVX2: fewer points
            const std::string name = "BM_w4a4_qsi4cx_qsi4dx" + arg("M", m) + arg("N", n) +
                                     arg("thr", threads) + arg("quant", q ? "incl" : "excl") +
                                     arg("isa", rotquant::to_string(path));
            benchmark::RegisterBenchmark(name.c_str(), BM_w4a4_qsi4cx_qsi4dx, m, n, threads, q,
                                         path)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
          }
  return 0;
}
[[maybe_unused]] const int w4a4_registered = register_w4a4();

// Decode with weights far larger than the caches: cycle through enough copies of the packed
// 4096 x 4096 weights (8 MiB each) to exceed L3 (32 MiB) several times.
void BM_w4a4_decode_cold(benchmark::State& st) {
  const index_t n = st.range(0);
  const int copies = 12;
  std::vector<rotquant::packed_weights> ws(copies, packed(n, weight_format::qsi4cx, 0));
  const auto pa = rotquant::quantize_activations(activations_f32(1), act_format::qsi4dx, 1.0f, 0);
  matrix_f out(1, n);
  int i = 0;
  for (auto _ : st) {
    rotquant::quantized_matmul(pa, ws[static_cast<std::size_t>(i)], rotquant::view(out));
    i = (i + 1) % copies;
    benchmark::DoNotOptimize(out.data());
  }
  set_gops(st, 1, n);
  set_bytes(st, ws[0].data.size());
  st.SetLabel("M = 1, weights streamed from DRAM (12 copies)");
}
BENCHMARK(BM_w4a4_decode_cold)
    ->Arg(4096)
    ->Arg(11008)
    ->ArgNames({"N"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Peer of the cold decode: one core reading the same packed weight bytes (the same 12 copies, in
// the same order) and summing them as 64-bit words: the DRAM read rate a decode kernel can reach
// at best, so decode time / this time is the kernel's distance from the memory bound.
void BM_stream_read_cold(benchmark::State& st) {
  const index_t n = st.range(0);
  const int copies = 12;
  std::vector<rotquant::packed_weights> ws(copies, packed(n, weight_format::qsi4cx, 0));
  const std::size_t words = ws[0].data.size() / 8;
  std::uint64_t total = 0;
  int i = 0;
  for (auto _ : st) {
    const std::uint8_t* p = ws[static_cast<std::size_t>(i)].data.data();
    std::uint64_t s = 0;
    for (std::size_t w = 0; w < words; ++w) {
      std::uint64_t v;
      std::memcpy(&v, p + 8 * w, 8);
      s += v;
    }
    total += s;
    i = (i + 1) % copies;
    benchmark::DoNotOptimize(total);
  }
  set_bytes(st, words * 8);
  st.SetLabel("read peer: the same bytes summed");
}
BENCHMARK(BM_stream_read_cold)
    ->Arg(4096)
    ->Arg(11008)
    ->ArgNames({"N"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Other formats at M = 2048 (and M = 1), one thread, GEMM only.
void BM_formats(benchmark::State& st, index_t m, index_t n, weight_format wf, act_format af,
                index_t group, rotquant::isa path) {
  if (!rotquant::isa_available(path)) {
    st.SkipWithError("ISA not available");
    return;
  }
  rotquant::scoped_isa force(path);
  const auto& pw = packed(n, wf, group);
  const auto pa = rotquant::quantize_activations(activations_f32(m), af, 1.0f, group);
  matrix_f out(m, n);
  for (auto _ : st) {
    rotquant::quantized_matmul(pa, pw, rotquant::view(out));
    benchmark::DoNotOptimize(out.data());
  }
  set_gops(st, m, n);
}

// BM_formats/M:2048/N:4096/wfmt:qsi4cg/afmt:qsi4dx[/group:128] (group only where grouped).
int register_formats() {
  struct point {
    index_t m;
    weight_format wf;
    act_format af;
    index_t group;
  };
  const point points[] = {{2048, weight_format::qsi4cg, act_format::qsi4dx, 128},
                          {2048, weight_format::mxfp4, act_format::mxfp4, 0},
                          {2048, weight_format::nvfp4, act_format::nvfp4, 0},
                          {2048, weight_format::qsi4cx, act_format::qsi8dx, 0},
                          {2048, weight_format::qsi4cx, act_format::qai4dx, 0},
                          {1, weight_format::qsi4cg, act_format::qsi4dx, 128},
                          {1, weight_format::mxfp4, act_format::mxfp4, 0}};
  for (rotquant::isa path : {rotquant::isa::amx, rotquant::isa::avx512})
    for (const point& p : points) {
      const std::string name =
          "BM_formats" + arg("M", p.m) + arg("N", 4096) + arg("wfmt", rotquant::to_string(p.wf)) +
          arg("afmt", rotquant::to_string(p.af)) +
          (p.group ? arg("group", p.group) : std::string()) + arg("isa", rotquant::to_string(path));
      benchmark::RegisterBenchmark(name.c_str(), BM_formats, p.m, index_t{4096}, p.wf, p.af,
                                   p.group, path)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  return 0;
}
[[maybe_unused]] const int formats_registered = register_formats();

// The per-core limits the GEMM rows are read against, measured in the same run: back-to-back
// vpdpbusd zmm on 12 independent accumulators (no loads), and TDPBSSD on four accumulator
// tiles with operands held in tiles (ops = 2 x multiply-adds per second).
#if ROTQUANT_HAS_AVX512
ROTQUANT_TARGET_AVX512 std::int64_t vpdpbusd_loop(std::int64_t iters) {
  __m512i acc[12];
  ROTQUANT_UNROLL for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
  for (std::int64_t it = 0; it < iters; ++it) {
    ROTQUANT_UNROLL for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    __asm__ volatile("" : "+v"(a), "+v"(b));
  }
  __m512i s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) std::int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  return lanes[0];
}
#endif

void BM_limit_vpdpbusd(benchmark::State& st) {
#if ROTQUANT_HAS_AVX512
  if (!rotquant::isa_available(rotquant::isa::avx512)) {
    st.SkipWithError("ISA not available");
    return;
  }
  constexpr std::int64_t iters = 1 << 16;
  for (auto _ : st) benchmark::DoNotOptimize(vpdpbusd_loop(iters));
  st.counters["ops_per_second"] = benchmark::Counter(2.0 * 64 * 12 * static_cast<double>(iters),
                                                     benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel("limit: vpdpbusd zmm, one core");
#else
  st.SkipWithError("ISA not available");
#endif
}
BENCHMARK(BM_limit_vpdpbusd)->UseRealTime()->Unit(benchmark::kMicrosecond);

#if ROTQUANT_HAS_AMX
ROTQUANT_TARGET_AMX void tdpbssd_loop(std::int64_t iters, std::int32_t* out) {
  rotquant::detail::arch::amx_tile_config cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.rows[i] = 16;
    cfg.colsb[i] = 64;
  }
  alignas(64) static std::int8_t ones[1024];
  for (auto& v : ones) v = 1;
  _tile_loadconfig(&cfg);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (std::int64_t it = 0; it < iters; ++it) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_release();
}
#endif

void BM_limit_tdpbssd(benchmark::State& st) {
#if ROTQUANT_HAS_AMX
  if (!rotquant::isa_available(rotquant::isa::amx)) {
    st.SkipWithError("ISA not available");
    return;
  }
  constexpr std::int64_t iters = 1 << 14;
  alignas(64) static std::int32_t out[256];
  for (auto _ : st) {
    tdpbssd_loop(iters, out);
    benchmark::DoNotOptimize(out[0]);
  }
  st.counters["ops_per_second"] =
      benchmark::Counter(2.0 * 4 * 16 * 16 * 64 * static_cast<double>(iters),
                         benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel("limit: tdpbssd (AMX), one core");
#else
  st.SkipWithError("ISA not available");
#endif
}
BENCHMARK(BM_limit_tdpbssd)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Peer: Eigen fp32 GEMM, Y = X W^T (single thread).
void BM_eigen_f32(benchmark::State& st) {
  const index_t m = st.range(0), n = st.range(1);
  const matrix_f& w = weights_f32(n);
  const matrix_f& x = activations_f32(m);
  matrix_f out(m, n);
  for (auto _ : st) {
    out.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(out.data());
  }
  set_gops(st, m, n);
  st.SetLabel(std::string("Eigen fp32 peer (") + Eigen::SimdInstructionSetsInUse() + ")");
}
BENCHMARK(BM_eigen_f32)
    ->ArgsProduct({{1, 16, 128, 2048}, {4096, 11008}})
    ->ArgNames({"M", "N"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

#if defined(ROTQUANT_HAVE_DNNL)
// Peer: oneDNN int8 matmul (u8 activations x s8 weights -> s32), weights reordered once into
// oneDNN's preferred layout outside the timed loop.
dnnl::matmul::primitive_desc onednn_pd(index_t m, index_t n, const dnnl::engine& eng) {
  using namespace dnnl;
  const memory::desc a_md({m, K}, memory::data_type::u8, memory::format_tag::ab);
  const memory::desc b_any({K, n}, memory::data_type::s8, memory::format_tag::any);
  const memory::desc c_md({m, n}, memory::data_type::s32, memory::format_tag::ab);
  return matmul::primitive_desc(matmul::desc(a_md, b_any, c_md), eng);
}

void BM_onednn_u8s8s32(benchmark::State& st, index_t m, index_t n) {
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const matmul::primitive_desc pd = onednn_pd(m, n, eng);
  const memory::desc b_md({K, n}, memory::data_type::s8, memory::format_tag::ab);
  memory a(pd.src_desc(), eng), b_plain(b_md, eng), b(pd.weights_desc(), eng),
      c(pd.dst_desc(), eng);
  rotquant::rng g(3);
  auto* ap = static_cast<std::uint8_t*>(a.get_data_handle());
  for (index_t i = 0; i < m * K; ++i) ap[i] = static_cast<std::uint8_t>(g.uniform_int(256));
  auto* bp = static_cast<std::int8_t*>(b_plain.get_data_handle());
  for (index_t i = 0; i < n * K; ++i) bp[i] = static_cast<std::int8_t>(g.uniform_int(256) - 128);
  reorder(b_plain, b).execute(s, b_plain, b);
  s.wait();
  const matmul prim(pd);
  for (auto _ : st) {
    prim.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
  }
  set_gops(st, m, n);
  st.SetLabel("oneDNN int8 peer");
}

// Registered with the implementation oneDNN chose for the shape in the name (impl:...).
int register_onednn() {
  const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  for (index_t n : {4096, 11008})
    for (index_t m : {1, 16, 128, 2048}) {
      std::string impl = onednn_pd(m, n, eng).impl_info_str();
      for (char& ch : impl)
        if (ch == ':' || ch == '/' || ch == ' ') ch = '_';
      const std::string name =
          "BM_onednn_u8s8s32" + arg("M", m) + arg("N", n) + arg("impl", impl.c_str());
      benchmark::RegisterBenchmark(name.c_str(), BM_onednn_u8s8s32, m, n)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  return 0;
}
[[maybe_unused]] const int onednn_registered = register_onednn();
#endif

}  // namespace
