#include "nn/dropout.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace seqgrad {

Variable dropout(const Variable& x, double p, bool training, Generator& gen) {
  if (!(p >= 0 && p < 1)) {
    throw ValueError(fmt::format("dropout: probability {} is outside [0, 1)", p));
  }
  if (!training || p == 0) return x;
  const Tensor keep = bernoulli(x.shape(), 1.0 - p, gen).astype(x.dtype());
  return x * Variable(affine(keep, 1.0 / (1.0 - p), 0.0));
}

Dropout::Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {
  if (!(p >= 0 && p < 1)) {
    throw ValueError(fmt::format("Dropout: probability {} is outside [0, 1)", p));
  }
}

}  // namespace seqgrad
