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

// y[..., :] = weight[ids[...], :];  dweight[v] = sum of dy over the positions holding id v,
// except the padding row, which never receives gradient
Variable embedding(const Variable& weight, const Tensor& ids, std::int64_t padding_idx) {
  if (weight.dim() != 2) {
    throw ShapeError(
        fmt::format("{}: weight must be [V,E], got {}", __func__, shape_str(weight.shape())));
  }
  if (padding_idx >= weight.size(0)) {
    throw IndexError(fmt::format("{}: padding index {} is outside the {} rows of the weight",
                                 __func__, padding_idx, weight.size(0)));
  }
  if (!ids.defined()) throw ValueError(fmt::format("{}: ids tensor is undefined", __func__));
  const Tensor flat = ids.reshape({-1});
  Shape out = ids.shape();
  out.push_back(weight.size(1));
  Tensor y = index_select(weight.data(), 0, flat).reshape(out);
  return make_result(std::move(y), Op::embedding, {&weight},
                     [in = weight.shape(), flat, padding_idx](const Tensor& dy, const GradSink& g) {
                       Tensor dw = Tensor::zeros(in, dy.dtype());
                       index_add_(dw, 0, flat, dy.reshape({-1, in[1]}));
                       if (padding_idx >= 0) dw.select(0, padding_idx).fill_(0.0);
                       g.add(0, dw);
                     });
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
