// SPDX-License-Identifier: Apache-2.0
// bm_quantize.cpp: per-token activation quantize + pack (INT4, INT8, MXFP4, NVFP4) on 2048 x 4096
// floats, alone and fused with the online Hadamard, vs a plain copy of the same bytes and vs the
// plain per-token INT4 loop an engine would write itself (absmax, multiply by the reciprocal
// scale, round, clamp, int8 store, code sum; AVX-512 where the build has it), also after
// rotquant's Hadamard (the unfused pipeline a user would assemble).
//
// Names spell out every argument: BM_quantize/fmt:qsi4dx/thr:1 (thr = rotquant's pool size),
// BM_quantize_path/fmt:mxfp4/isa:avx2, BM_ratio_to_copy/fmt:nvfp4/scale:static/thr:1, ...; the
// label names the SIMD path that ran where it was not forced.
// Counter bytes_per_second counts the float input bytes read (m * k * 4) per second, so every
// row compares directly with the copy peer (which reads and writes those bytes once).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/kernels/quantize_activations.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/transforms/hadamard.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace {

using rotquant::act_format;
using rotquant::index_t;
using rotquant::matrix_f;

constexpr index_t M = 2048, K = 4096;

const matrix_f& input() {
  static const matrix_f x = rotquant::random_normal_matrix<float>(M, K, 42);
  return x;
}

void set_rate(benchmark::State& st) {
  st.counters["bytes_per_second"] = benchmark::Counter(
      static_cast<double>(M) * K * 4, benchmark::Counter::kIsIterationInvariantRate);
}

std::string arg(const char* key, index_t v) {
  return "/" + std::string(key) + ":" + std::to_string(v);
}
std::string arg(const char* key, const char* v) {
  return "/" + std::string(key) + ":" + v;
}

const act_format kFormats[] = {act_format::qsi4dx, act_format::qai4dx, act_format::qsi8dx,
                               act_format::mxfp4, act_format::nvfp4};

// Peer: memcpy of the float activations (what any pass over them costs at least).
void BM_copy_f32(benchmark::State& st) {
  const matrix_f& x = input();
  std::vector<float> dst(static_cast<std::size_t>(M * K));
  for (auto _ : st) {
    std::memcpy(dst.data(), x.data(), dst.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_rate(st);
  st.SetLabel("plain copy peer");
}
BENCHMARK(BM_copy_f32)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_quantize(benchmark::State& st, act_format f, int threads) {
  rotquant::thread_pool_executor pool(threads);
  rotquant::packed_activations out;
  rotquant::quantize_activations(rotquant::view(input()), f, out, 1.0f, 128, &pool);
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), f, out, 1.0f, 128, &pool);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(rotquant::to_string(rotquant::active_isa()));
}
// Peer: the plain per-token INT4 loop (two passes over a row: absmax, then x * (1 / s) rounded
// to nearest even, clamped to [-8, 7], stored as int8 with the row's code sum). Not bit-exact
// with the division rule (x / s) that rotquant and the peers' PyTorch code use.
std::int32_t plain_int4_row(const float* x, index_t k, std::int8_t* codes, float* scale) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  __m512 m = _mm512_setzero_ps();
  for (index_t i = 0; i < k; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  const float amax = _mm512_reduce_max_ps(m);
  const float s = amax > 0.0f ? amax / 7.0f : 1.0f;
  const __m512 inv = _mm512_set1_ps(1.0f / s), lo = _mm512_set1_ps(-8.0f),
               hi = _mm512_set1_ps(7.0f);
  __m512i sum = _mm512_setzero_si512();
  for (index_t i = 0; i < k; i += 16) {
    const __m512 q =
        _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv), lo), hi);
    const __m512i c = _mm512_cvtps_epi32(q);
    sum = _mm512_add_epi32(sum, c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtepi32_epi8(c));
  }
  *scale = s;
  return _mm512_reduce_add_epi32(sum);
#else
  float amax = 0.0f;
  for (index_t i = 0; i < k; ++i) amax = std::max(amax, std::abs(x[i]));
  const float s = amax > 0.0f ? amax / 7.0f : 1.0f, inv = 1.0f / s;
  std::int32_t sum = 0;
  for (index_t i = 0; i < k; ++i) {
    const int c = static_cast<int>(std::nearbyint(std::min(std::max(x[i] * inv, -8.0f), 7.0f)));
    codes[i] = static_cast<std::int8_t>(c);
    sum += c;
  }
  *scale = s;
  return sum;
#endif
}

const char* plain_loop_label() {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  return "plain INT4 loop peer (AVX-512)";
#else
  return "plain INT4 loop peer (scalar)";
#endif
}

struct plain_codes {
  std::vector<std::int8_t> codes = std::vector<std::int8_t>(static_cast<std::size_t>(M * K));
  std::vector<float> scales = std::vector<float>(static_cast<std::size_t>(M));
  std::vector<std::int32_t> sums = std::vector<std::int32_t>(static_cast<std::size_t>(M));
  void run(const matrix_f& x) {
    for (index_t r = 0; r < M; ++r)
      sums[static_cast<std::size_t>(r)] =
          plain_int4_row(x.data() + r * K, K, codes.data() + r * K, scales.data() + r);
  }
};

void BM_plain_int4_loop(benchmark::State& st) {
  plain_codes out;
  for (auto _ : st) {
    out.run(input());
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(plain_loop_label());
}
BENCHMARK(BM_plain_int4_loop)->UseRealTime()->Unit(benchmark::kMillisecond);

// rotquant's per-token INT4 on one thread, the row the plain loop is compared with.
void BM_quantize_vs_plain(benchmark::State& st) {
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), act_format::qsi4dx, out);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_quantize_vs_plain)->UseRealTime()->Unit(benchmark::kMillisecond);

int register_quantize() {
  for (int threads : {1, 2})
    for (act_format f : kFormats) {
      const std::string name =
          "BM_quantize" + arg("fmt", rotquant::to_string(f)) + arg("thr", threads);
      benchmark::RegisterBenchmark(name.c_str(), BM_quantize, f, threads)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  return 0;
}
[[maybe_unused]] const int quantize_registered = register_quantize();

// The ratio to the copy peer from one run: every iteration times one copy and then one quantize
// back to back, so the shared machine's slow drift hits both alike. Counter x_copy = total
// quantize time / total copy time (a ratio, the figure the targets are stated in); the reported
// time is the quantize alone. NVFP4 runs with a static (calibrated) tensor scale or the dynamic
// one from X (scale:static / scale:dynamic).
void BM_ratio_to_copy(benchmark::State& st, act_format f, bool static_scale, int threads) {
  using clock = std::chrono::steady_clock;
  rotquant::thread_pool_executor pool(threads);
  rotquant::quantize_options opt;
  opt.group = 128;
  opt.ex = &pool;
  if (static_scale) opt.nvfp4_tensor_scale = rotquant::nvfp4_tensor_scale(input());
  const matrix_f& x = input();
  std::vector<float> dst(static_cast<std::size_t>(M * K));
  rotquant::packed_activations out;
  rotquant::quantize_activations(rotquant::view(x), f, out, opt);
  double copy_s = 0.0, quant_s = 0.0;
  for (auto _ : st) {
    const auto t0 = clock::now();
    std::memcpy(dst.data(), x.data(), dst.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
    const auto t1 = clock::now();
    rotquant::quantize_activations(rotquant::view(x), f, out, opt);
    benchmark::DoNotOptimize(out.codes.data());
    benchmark::ClobberMemory();
    const auto t2 = clock::now();
    copy_s += std::chrono::duration<double>(t1 - t0).count();
    quant_s += std::chrono::duration<double>(t2 - t1).count();
    st.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
  }
  st.counters["x_copy"] = copy_s > 0.0 ? quant_s / copy_s : 0.0;
  set_rate(st);
  st.SetLabel(std::string(rotquant::to_string(rotquant::active_isa())) +
              ", vs copy in the same iterations");
}
int register_ratio_to_copy() {
  struct point {
    act_format f;
    bool static_scale;
  };
  const point points[] = {{act_format::qsi4dx, false},
                          {act_format::mxfp4, false},
                          {act_format::nvfp4, false},
                          {act_format::nvfp4, true}};
  for (const point& p : points) {
    const std::string name =
        "BM_ratio_to_copy" + arg("fmt", rotquant::to_string(p.f)) +
        (p.f == act_format::nvfp4 ? arg("scale", p.static_scale ? "static" : "dynamic")
                                  : std::string()) +
        arg("thr", 1);
    benchmark::RegisterBenchmark(name.c_str(), BM_ratio_to_copy, p.f, p.static_scale, 1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}
[[maybe_unused]] const int ratio_registered = register_ratio_to_copy();

// Per-token FP4 E2M1 (s = absmax / 6 per row, nibble codes): the fast path of
// quantize_fp4_e2m1_rows; args: threads.
void BM_quantize_fp4_e2m1(benchmark::State& st) {
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(0)));
  rotquant::quantized_matrix out;
  rotquant::quantize_fp4_e2m1_rows(rotquant::view(input()), out, 1.0f, &pool);
  for (auto _ : st) {
    rotquant::quantize_fp4_e2m1_rows(rotquant::view(input()), out, 1.0f, &pool);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_quantize_fp4_e2m1)
    ->Arg(1)
    ->Arg(2)
    ->ArgNames({"thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// NVFP4 with a static (calibrated) tensor scale: one pass, as an engine that calibrated the
// activations' global scale offline runs it; args: threads.
void BM_quantize_nvfp4_static(benchmark::State& st) {
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(0)));
  rotquant::quantize_options opt;
  opt.nvfp4_tensor_scale = rotquant::nvfp4_tensor_scale(input());
  opt.ex = &pool;
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), act_format::nvfp4, out, opt);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_quantize_nvfp4_static)
    ->Arg(1)
    ->Arg(2)
    ->ArgNames({"thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Each SIMD path of the same kernel on one thread.
void BM_quantize_path(benchmark::State& st, act_format f, rotquant::isa path) {
  if (!rotquant::isa_available(path)) {
    st.SkipWithError("ISA not available on this CPU");
    return;
  }
  rotquant::scoped_isa force(path);
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations(rotquant::view(input()), f, out, 1.0f, 128);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
}
int register_quantize_path() {
  for (rotquant::isa path : {rotquant::isa::scalar, rotquant::isa::avx2, rotquant::isa::avx512})
    for (act_format f :
         {act_format::qsi4dx, act_format::qai4dx, act_format::mxfp4, act_format::nvfp4}) {
      const std::string name = "BM_quantize_path" + arg("fmt", rotquant::to_string(f)) +
                               arg("isa", rotquant::to_string(path));
      benchmark::RegisterBenchmark(name.c_str(), BM_quantize_path, f, path)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  return 0;
}
[[maybe_unused]] const int path_registered = register_quantize_path();

// Fused online Hadamard (n = 4096 whole rows, or 128-blocks) + quantize.
void BM_hadamard_quantize_fused(benchmark::State& st, act_format f, index_t n, int threads) {
  const rotquant::hadamard_plan plan(n);
  rotquant::thread_pool_executor pool(threads);
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations_rotated(rotquant::view(input()), plan, f, out, 1.0f, 0, &pool);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(rotquant::to_string(rotquant::active_isa()));
}
int register_hadamard_quantize_fused() {
  for (int threads : {1, 2})
    for (index_t n : {4096, 128})
      for (act_format f : {act_format::qsi4dx, act_format::mxfp4}) {
        const std::string name = "BM_hadamard_quantize_fused" + arg("fmt", rotquant::to_string(f)) +
                                 arg("n", n) + arg("thr", threads);
        benchmark::RegisterBenchmark(name.c_str(), BM_hadamard_quantize_fused, f, n, threads)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
  return 0;
}
[[maybe_unused]] const int fused_registered = register_hadamard_quantize_fused();

// Fused Hadamard + NVFP4 with a static tensor scale (one pass); args: n, threads.
void BM_hadamard_quantize_nvfp4_static(benchmark::State& st) {
  const rotquant::hadamard_plan plan(st.range(0));
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(1)));
  matrix_f xt = input();
  plan.apply_rows(xt.data(), M * (K / st.range(0)), st.range(0));
  rotquant::quantize_options opt;
  opt.nvfp4_tensor_scale = rotquant::nvfp4_tensor_scale(xt);
  opt.ex = &pool;
  rotquant::packed_activations out;
  for (auto _ : st) {
    rotquant::quantize_activations_rotated(rotquant::view(input()), plan, act_format::nvfp4, out,
                                           opt);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(rotquant::to_string(rotquant::active_isa()));
}
BENCHMARK(BM_hadamard_quantize_nvfp4_static)
    ->ArgsProduct({{4096, 128}, {1, 2}})
    ->ArgNames({"n", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Unfused reference point: Hadamard over the whole matrix, then quantize (two passes).
void BM_hadamard_then_quantize(benchmark::State& st) {
  const rotquant::hadamard_plan plan(st.range(0));
  matrix_f x = input();
  rotquant::packed_activations out;
  for (auto _ : st) {
    st.PauseTiming();
    x = input();
    st.ResumeTiming();
    plan.apply_rows(x.data(), M * (K / st.range(0)), st.range(0));
    rotquant::quantize_activations(rotquant::view(static_cast<const matrix_f&>(x)),
                                   act_format::qsi4dx, out);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel("unfused H + qsi4dx");
}
BENCHMARK(BM_hadamard_then_quantize)
    ->Arg(4096)
    ->Arg(128)
    ->ArgNames({"n"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Peer of the fused rows: rotquant's Hadamard over the matrix, then the plain INT4 loop.
void BM_hadamard_then_plain(benchmark::State& st) {
  const rotquant::hadamard_plan plan(st.range(0));
  matrix_f x = input();
  plain_codes out;
  for (auto _ : st) {
    st.PauseTiming();
    x = input();
    st.ResumeTiming();
    plan.apply_rows(x.data(), M * (K / st.range(0)), st.range(0));
    out.run(x);
    benchmark::DoNotOptimize(out.codes.data());
  }
  set_rate(st);
  st.SetLabel(std::string("rotquant H + ") + plain_loop_label());
}
BENCHMARK(BM_hadamard_then_plain)
    ->Arg(4096)
    ->Arg(128)
    ->ArgNames({"n"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
