// SPDX-License-Identifier: Apache-2.0
// readme_context.hpp: the names README's C++ snippets use, for the program generated from them
// (tests/cmake/readme_snippets.cmake): x_calib [256, 256] calibration activations with outlier
// channels and a massive token, w [64, 256] a weight in nn.Linear layout, x [32, 256] inputs,
// codes the weight quantized offline (QuaRot's preset, seed 0) as an engine would load it.
#pragma once

#include <cstdio>
#include <exception>
#include <iostream>

#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/pipeline/presets.hpp"

#define RQ_README_ARGS                                                                            \
  [[maybe_unused]] const rotquant::matrix_f &x_calib,                                             \
      [[maybe_unused]] const rotquant::matrix_f &w, [[maybe_unused]] const rotquant::matrix_f &x, \
      [[maybe_unused]] const rotquant::quantized_matrix &codes

namespace readme_context {

inline int& failures() {
  static int n = 0;
  return n;
}

inline rotquant::matrix_f activations(rotquant::index_t t, std::uint64_t seed) {
  rotquant::matrix_f a = rotquant::random_normal_matrix<float>(t, 256, seed);
  a.col(3) *= 30.0f;
  a.col(129) *= 20.0f;
  a(0, 7) = 800.0f;
  return a;
}

}  // namespace readme_context

template <class F>
void rq_run_snippet(int i, F run) {
  using readme_context::activations;
  const rotquant::matrix_f x_calib = activations(256, 1), x = activations(32, 2);
  const rotquant::matrix_f w = rotquant::random_normal_matrix<float>(64, 256, 3) * 0.05f;
  const rotquant::quantized_matrix codes =
      rotquant::presets::quarot(0).calibrate(x_calib, w).weight_codes();
  try {
    run(x_calib, w, x, codes);
    std::printf("README cpp block %d: ran\n", i);
  } catch (const std::exception& e) {
    std::printf("README cpp block %d: FAILED: %s\n", i, e.what());
    ++readme_context::failures();
  }
}

inline int rq_snippet_failures() {
  return readme_context::failures() == 0 ? 0 : 1;
}
