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
  return x * Variable(dropout_mask(x.shape(), p, x.dtype(), gen));
}

Dropout::Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {
  if (!(p >= 0 && p < 1)) {
    throw ValueError(fmt::format("Dropout: probability {} is outside [0, 1)", p));
  }
}

}  // namespace seqgrad
