#include "nn/linear.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"

namespace seqgrad {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool with_bias, Generator& gen,
               DType dtype)
    : in_(in_features), out_(out_features) {
  if (in_features <= 0 || out_features <= 0) {
    throw ValueError(
        fmt::format("Linear: sizes must be positive, got in {} out {}", in_features, out_features));
  }
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight =
      register_parameter("weight", uniform({out_features, in_features}, -bound, bound, dtype, gen));
  if (with_bias)
    bias = register_parameter("bias", uniform({out_features}, -bound, bound, dtype, gen));
}

Variable Linear::forward(const Variable& x) const {
  if (x.dim() < 1 || x.size(-1) != in_) {
    throw ShapeError(fmt::format("Linear: input {} must end in the {} input features",
                                 shape_str(x.shape()), in_));
  }
  // matmul takes 2-D and 3-D operands; fold any further leading axes into the rows.
  Variable x2 = x.dim() == 2 || x.dim() == 3 ? x : reshape(x, {-1, in_});
  Variable y = matmul(x2, transpose(weight, 0, 1));
  if (bias.defined()) y = y + bias;
  if (x2.shape() != x.shape()) {
    Shape out = x.shape();
    out.back() = out_;
    y = reshape(y, out);
  }
  return y;
}

Linear::Packed Linear::packed() const {
  Packed p{PackedMatrix(weight.data().transpose(0, 1)), {}};
  if (grad_enabled()) p.w = PackedMatrix(weight.data());
  return p;
}

Variable Linear::forward(const Variable& x, const Packed& packed) const {
  if (x.dim() != 2 || x.size(1) != in_) {
    throw ShapeError(fmt::format("Linear: input {} must be [B,{}] for the packed weight",
                                 shape_str(x.shape()), in_));
  }
  Variable y = matmul_transposed(x, weight, packed.w_t, packed.w);
  if (bias.defined()) y = y + bias;
  return y;
}

}  // namespace seqgrad
