#include "tensor/shape.h"

#include <fmt/format.h>

#include "tensor/errors.h"

namespace seqgrad {

void Shape::check(std::size_t n) {
  if (n > kMaxDims) {
    throw ShapeError(
        fmt::format("shape: {} dimensions; seqgrad tensors have at most {}", n, kMaxDims));
  }
}

std::string shape_str(const Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ","));
}

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  std::int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, std::string_view op) {
  if (axis < -ndim || axis >= ndim || (ndim == 0 && axis != 0)) {
    throw IndexError(
        fmt::format("{}: axis {} is out of range for a tensor with {} dimensions", op, axis, ndim));
  }
  return axis < 0 ? axis + ndim : axis;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(fmt::format(
          "{}: shapes {} and {} do not broadcast (dimension {} of the result: {} vs {})", op,
          shape_str(a), shape_str(b), i, da, db));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace seqgrad
