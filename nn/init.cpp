#include "nn/init.h"

#include <fmt/format.h>

#include <cmath>

namespace seqgrad {

void uniform_(Tensor& t, double low, double high, Generator& gen) {
  t.copy_from(uniform(t.shape(), low, high, t.dtype(), gen));
}

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  t.copy_from(normal(t.shape(), mean, std, t.dtype(), gen));
}

void xavier_uniform_(Tensor& t, Generator& gen, double gain) {
  if (t.dim() < 2) {
    throw ShapeError(fmt::format("xavier_uniform_: needs a weight of at least 2 dimensions, got {}",
                                 shape_str(t.shape())));
  }
  const double receptive = static_cast<double>(t.numel() / (t.size(0) * t.size(1)));
  const double fan_in = static_cast<double>(t.size(1)) * receptive;
  const double fan_out = static_cast<double>(t.size(0)) * receptive;
  const double a = gain * std::sqrt(6.0 / (fan_in + fan_out));
  uniform_(t, -a, a, gen);
}

}  // namespace seqgrad
