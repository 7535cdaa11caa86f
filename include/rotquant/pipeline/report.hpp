// SPDX-License-Identifier: Apache-2.0
// report.hpp: error reports of a quantized linear layer: output SQNR / MSE, error on massive vs
// normal tokens, and max |x| and kurtosis of the activations after every pipeline stage.
#pragma once

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "rotquant/core/matrix.hpp"

namespace rotquant {

/// Distribution statistics of an activation matrix (after one pipeline stage).
struct activation_stats {
  std::string stage;           ///< "input" or the stage name
  double max_abs = 0;          ///< max |x| over all entries
  double kurtosis = 0;         ///< E[(x - mean)^4] / var^2 over all entries (3 for a Gaussian)
  double max_token_ratio = 0;  ///< max over tokens of max|x_t| / median over tokens of max|x_t|
};

/// Statistics of X (all entries), O(T * C).
inline activation_stats activation_statistics(const matrix_f& x, std::string stage) {
  activation_stats s;
  s.stage = std::move(stage);
  if (x.size() == 0) return s;
  const double n = static_cast<double>(x.size());
  const double mean = x.cast<double>().sum() / n;
  double m2 = 0, m4 = 0;
  for (index_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x.data()[i]) - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m4 /= n;
  s.max_abs = static_cast<double>(x.cwiseAbs().maxCoeff());
  s.kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0.0;
  std::vector<float> token_max(static_cast<std::size_t>(x.rows()));
  for (index_t t = 0; t < x.rows(); ++t)
    token_max[static_cast<std::size_t>(t)] = x.row(t).cwiseAbs().maxCoeff();
  std::vector<float> sorted = token_max;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2),
                   sorted.end());
  const double median = sorted[sorted.size() / 2];
  s.max_token_ratio =
      median > 0 ? *std::max_element(token_max.begin(), token_max.end()) / median : 0.0;
  return s;
}

/// Tokens whose max |x| exceeds `factor` times the median token's max |x| (massive activations).
inline std::vector<std::uint8_t> massive_tokens_by_magnitude(const matrix_f& x, double factor) {
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(x.rows()), 0);
  if (x.rows() == 0) return mask;
  std::vector<float> token_max(static_cast<std::size_t>(x.rows()));
  for (index_t t = 0; t < x.rows(); ++t)
    token_max[static_cast<std::size_t>(t)] = x.row(t).cwiseAbs().maxCoeff();
  std::vector<float> sorted = token_max;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2),
                   sorted.end());
  const double median = sorted[sorted.size() / 2];
  for (std::size_t t = 0; t < mask.size(); ++t) mask[t] = token_max[t] > factor * median ? 1 : 0;
  return mask;
}

/// What quantized_linear::report() measures on a batch X.
struct linear_report {
  double output_mse = 0;      ///< mean over entries of (Y_q - Y)^2, Y = X W^T in float
  double output_sqnr_db = 0;  ///< 10 log10(sum Y^2 / sum (Y_q - Y)^2)
  double output_max_abs_error = 0;
  index_t massive_tokens = 0;  ///< tokens flagged by massive_tokens_by_magnitude
  index_t normal_tokens = 0;
  double massive_token_mse = 0;          ///< output MSE over massive tokens' rows (0 if none)
  double normal_token_mse = 0;           ///< output MSE over the other rows
  std::vector<activation_stats> stages;  ///< input, then after every transform stage

  std::string to_string() const {
    std::ostringstream o;
    o << std::setprecision(4);
    o << "output: SQNR " << output_sqnr_db << " dB, MSE " << output_mse << ", max |err| "
      << output_max_abs_error << "\n";
    o << "tokens: " << massive_tokens << " massive (MSE " << massive_token_mse << "), "
      << normal_tokens << " normal (MSE " << normal_token_mse << ")\n";
    o << "activations:     stage  max|x|  kurtosis  max/median token max\n";
    for (const auto& s : stages)
      o << std::setw(22) << s.stage << "  " << s.max_abs << "  " << s.kurtosis << "  "
        << s.max_token_ratio << "\n";
    return o.str();
  }
};

}  // namespace rotquant
