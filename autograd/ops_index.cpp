// Indexing ops. Their backwards are the adjoint scatters: index_select's is index_add (rows
// picked twice receive both gradients), gather's is scatter_add.
#include <fmt/format.h>

#include "autograd/ops.h"
#include "tensor/index.h"

namespace seqgrad {

// y = x[index] along axis;  dx = zeros, then dx[index[i]] += dy[i] along axis
Variable index_select(const Variable& x, std::int64_t axis, const Tensor& index) {
  Tensor y = index_select(x.data(), axis, index);
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  return make_result(std::move(y), Op::index_select, {&x},
                     [in = x.shape(), a, index](const Tensor& dy, const GradSink& g) {
                       Tensor dx = Tensor::zeros(in, dy.dtype());
                       index_add_(dx, a, index, dy);
                       g.add(0, dx);
                     });
}

Variable embedding(const Variable& weight, const Tensor& ids) {
  if (weight.dim() != 2) {
    throw ShapeError(fmt::format("{}: weight must be [V,E], got {}", __func__,
                                 shape_str(weight.shape())));
  }
  Shape out = ids.defined() ? ids.shape() : Shape{};
  out.push_back(weight.size(1));
  return reshape(index_select(weight, 0, ids.defined() ? ids.reshape({-1}) : ids), out);
}

// y = x[..., index[...], ...] along axis (elementwise pick);  dx = scatter_add of dy
Variable gather(const Variable& x, std::int64_t axis, const Tensor& index) {
  Tensor y = gather(x.data(), axis, index);
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  return make_result(std::move(y), Op::gather, {&x},
                     [in = x.shape(), a, index](const Tensor& dy, const GradSink& g) {
                       Tensor dx = Tensor::zeros(in, dy.dtype());
                       scatter_add_(dx, a, index, dy);
                       g.add(0, dx);
                     });
}

}  // namespace seqgrad
