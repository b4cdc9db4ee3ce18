// Shape ops. The forwards are tensor views (no copy); each backward undoes the view on dy.
#include <fmt/format.h>

#include <numeric>

#include "autograd/ops.h"
#include "tensor/index.h"

namespace seqgrad {

// y = x viewed as `shape`;  dx = dy viewed as x's shape
Variable reshape(const Variable& x, const Shape& shape) {
  Tensor y = x.data().reshape(shape);
  return make_result(
      std::move(y), Op::reshape, {&x},
      [in = x.shape()](const Tensor& dy, const GradSink& g) { g.add(0, dy.reshape(in)); });
}

// y = x with axes reordered;  dx = dy with the inverse order
Variable permute(const Variable& x, const std::vector<std::int64_t>& order) {
  Tensor y = x.data().permute(order);
  std::vector<std::int64_t> inverse(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    inverse[order[i] < 0 ? order[i] + x.dim() : order[i]] = static_cast<std::int64_t>(i);
  }
  return make_result(
      std::move(y), Op::permute, {&x},
      [inverse](const Tensor& dy, const GradSink& g) { g.add(0, dy.permute(inverse)); });
}

Variable transpose(const Variable& x, std::int64_t a, std::int64_t b) {
  std::vector<std::int64_t> order(x.dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order.at(normalize_axis(a, x.dim(), __func__)),
            order.at(normalize_axis(b, x.dim(), __func__)));
  return permute(x, order);
}

// y = x[start : start+length] along axis;  dx = dy in that slab, 0 elsewhere
Variable narrow(const Variable& x, std::int64_t axis, std::int64_t start, std::int64_t length) {
  Tensor y = x.data().narrow(axis, start, length);
  return make_result(std::move(y), Op::narrow, {&x},
                     [a = normalize_axis(axis, x.dim(), __func__), start](
                         const Tensor& dy, const GradSink& g) { g.add_slab(0, a, start, dy); });
}

Variable select(const Variable& x, std::int64_t axis, std::int64_t index) {
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  return squeeze(narrow(x, a, index < 0 ? index + x.shape()[a] : index, 1), a);
}

// y = x with a size-1 axis inserted;  dx = dy with it removed
Variable unsqueeze(const Variable& x, std::int64_t axis) {
  Tensor y = x.data().unsqueeze(axis);
  const std::int64_t a = normalize_axis(axis, x.dim() + 1, __func__);
  return make_result(std::move(y), Op::unsqueeze, {&x},
                     [a](const Tensor& dy, const GradSink& g) { g.add(0, dy.squeeze(a)); });
}

// y = x with a size-1 axis removed;  dx = dy with it re-inserted
Variable squeeze(const Variable& x, std::int64_t axis) {
  Tensor y = x.data().squeeze(axis);
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  return make_result(std::move(y), Op::squeeze, {&x},
                     [a](const Tensor& dy, const GradSink& g) { g.add(0, dy.unsqueeze(a)); });
}

// y = x broadcast to `shape` (stride 0);  dx = dy summed back to x's shape
Variable expand(const Variable& x, const Shape& shape) {
  Tensor y = x.data().expand(shape);
  return make_result(
      std::move(y), Op::expand, {&x},
      [in = x.shape()](const Tensor& dy, const GradSink& g) { g.add(0, sum_to_shape(dy, in)); });
}

// y = x in dense layout;  dx = dy
Variable contiguous(const Variable& x) {
  Tensor y = x.data().contiguous();
  return make_result(std::move(y), Op::contiguous, {&x},
                     [](const Tensor& dy, const GradSink& g) { g.add(0, dy); });
}

// y = [x_0, x_1, ...] along axis;  dx_i = dy's slab for x_i
Variable concat(const std::vector<Variable>& xs, std::int64_t axis) {
  std::vector<Tensor> parts;
  std::vector<std::int64_t> sizes;
  parts.reserve(xs.size());
  for (const auto& x : xs) parts.push_back(x.data());
  Tensor y = concat(parts, axis);  // checks shapes and the axis
  const std::int64_t a = normalize_axis(axis, y.dim(), __func__);
  for (const auto& x : xs) sizes.push_back(x.shape()[a]);
  return make_result(std::move(y), Op::concat, xs, [a, sizes](const Tensor& dy, const GradSink& g) {
    std::int64_t pos = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (g.needs(i)) g.add(i, dy.narrow(a, pos, sizes[i]));
      pos += sizes[i];
    }
  });
}

Variable stack(const std::vector<Variable>& xs, std::int64_t axis) {
  if (xs.empty()) throw ValueError("stack: no variables given");
  for (const auto& x : xs) {
    if (x.shape() != xs[0].shape()) {
      std::vector<std::string> shapes;
      for (const auto& v : xs) shapes.push_back(shape_str(v.shape()));
      throw ShapeError(
          fmt::format("{}: all shapes must be equal, got {}", __func__, fmt::join(shapes, ", ")));
    }
  }
  const std::int64_t a = normalize_axis(axis, xs[0].dim() + 1, __func__);
  std::vector<Variable> parts;
  parts.reserve(xs.size());
  for (const auto& x : xs) parts.push_back(unsqueeze(x, a));
  return concat(parts, a);
}

std::vector<Variable> split(const Variable& x, const std::vector<std::int64_t>& sizes,
                            std::int64_t axis) {
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  (void)split(x.data(), sizes, a);  // checks that the sizes add up
  std::vector<Variable> out;
  std::int64_t pos = 0;
  for (auto s : sizes) {
    out.push_back(narrow(x, a, pos, s));
    pos += s;
  }
  return out;
}

}  // namespace seqgrad
