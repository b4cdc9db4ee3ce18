// concat/stack/split copy or view slabs; the index ops walk the index tensor with for_each_row,
// carrying the data operand with its stride on the indexed axis set to 0 and adding
// index * stride by hand.
#include "tensor/index.h"

#include <fmt/format.h>

#include <cstring>

#include "tensor/simd.h"
#include "tensor/strided_loop.h"

namespace seqgrad {

namespace {

std::string shapes_str(const std::vector<Tensor>& xs) {
  std::vector<std::string> parts;
  for (const auto& x : xs) parts.push_back(x.defined() ? shape_str(x.shape()) : "undefined");
  return fmt::format("{}", fmt::join(parts, ", "));
}

void check_index(const Tensor& index, std::int64_t limit, std::string_view op) {
  if (!index.defined() || index.dtype() != DType::i64) {
    throw DTypeError(fmt::format("{}: indices must be an int64 tensor, got {}", op,
                                 index.defined() ? dtype_name(index.dtype()) : "undefined"));
  }
  for (auto v : index.to_vector<std::int64_t>()) {
    if (v < 0 || v >= limit) {
      throw IndexError(
          fmt::format("{}: index {} is out of range for an axis of size {}", op, v, limit));
    }
  }
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis) {
  if (xs.empty()) throw ValueError("concat: no tensors given");
  for (const auto& x : xs) {
    if (!x.defined())
      throw ValueError(fmt::format("concat: undefined input among {}", shapes_str(xs)));
  }
  const std::int64_t a = normalize_axis(axis, xs[0].dim(), __func__);
  Shape shape = xs[0].shape();
  shape[a] = 0;
  for (const auto& x : xs) {
    if (x.dtype() != xs[0].dtype()) {
      throw DTypeError(fmt::format("{}: dtypes differ ({}{} vs {}{})", __func__,
                                   dtype_name(xs[0].dtype()), shape_str(xs[0].shape()),
                                   dtype_name(x.dtype()), shape_str(x.shape())));
    }
    bool fits = x.dim() == xs[0].dim();
    for (std::int64_t d = 0; fits && d < x.dim(); ++d) {
      fits = d == a || x.shape()[d] == xs[0].shape()[d];
    }
    if (!fits) {
      throw ShapeError(fmt::format("{}: along axis {}: shapes {} differ off the axis", __func__, a,
                                   shapes_str(xs)));
    }
    shape[a] += x.shape()[a];
  }
  Tensor out = Tensor::empty(shape, xs[0].dtype());
  std::int64_t pos = 0;
  for (const auto& x : xs) {
    out.narrow(a, pos, x.shape()[a]).copy_from(x);
    pos += x.shape()[a];
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, std::int64_t axis) {
  if (xs.empty()) throw ValueError("stack: no tensors given");
  for (const auto& x : xs) {
    if (!x.defined() || x.shape() != xs[0].shape()) {
      throw ShapeError(
          fmt::format("{}: all shapes must be equal, got {}", __func__, shapes_str(xs)));
    }
    if (x.dtype() != xs[0].dtype()) {
      throw DTypeError(fmt::format("{}: dtypes differ ({}{} vs {}{})", __func__,
                                   dtype_name(xs[0].dtype()), shape_str(xs[0].shape()),
                                   dtype_name(x.dtype()), shape_str(x.shape())));
    }
  }
  const std::int64_t a = normalize_axis(axis, xs[0].dim() + 1, __func__);
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (const auto& x : xs) parts.push_back(x.unsqueeze(a));
  return concat(parts, a);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes,
                          std::int64_t axis) {
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  std::int64_t total = 0;
  for (auto s : sizes) total += s < 0 ? x.shape()[a] + 1 : s;
  if (total != x.shape()[a]) {
    throw ShapeError(fmt::format("{}: sizes [{}] do not add up to axis {} of {}", __func__,
                                 fmt::join(sizes, ","), a, shape_str(x.shape())));
  }
  std::vector<Tensor> out;
  std::int64_t pos = 0;
  for (auto s : sizes) {
    out.push_back(x.narrow(a, pos, s));
    pos += s;
  }
  return out;
}

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index) {
  if (!x.defined()) throw ValueError("index_select: input tensor is undefined");
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  if (index.defined() && index.dim() != 1) {
    throw ShapeError(
        fmt::format("{}: index must be 1-D, got {}", __func__, shape_str(index.shape())));
  }
  check_index(index, x.shape()[a], __func__);
  Shape shape = x.shape();
  shape[a] = index.numel();
  Tensor out = Tensor::empty(shape, x.dtype());
  const auto idx = index.to_vector<std::int64_t>();
  if (a == 0 && x.is_contiguous()) {  // embedding lookup: whole rows
    const std::size_t row =
        (x.numel() / std::max<std::int64_t>(x.shape()[0], 1)) * dtype_size(x.dtype());
    const char* src = static_cast<const char*>(x.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    for (std::size_t i = 0; i < idx.size(); ++i)
      std::memcpy(dst + i * row, src + idx[i] * row, row);
    return out;
  }
  for (std::size_t i = 0; i < idx.size(); ++i) {
    out.select(a, static_cast<std::int64_t>(i)).copy_from(x.select(a, idx[i]));
  }
  return out;
}

void index_add_(Tensor& out, std::int64_t axis, const Tensor& index, const Tensor& src) {
  if (!out.defined() || !src.defined()) throw ValueError("index_add_: undefined tensor");
  const std::int64_t a = normalize_axis(axis, out.dim(), __func__);
  Shape expect = out.shape();
  if (index.defined()) expect[a] = index.numel();
  if (src.dtype() != out.dtype()) {
    throw DTypeError(fmt::format("{}: dtypes differ (out {}{} vs src {}{})", __func__,
                                 dtype_name(out.dtype()), shape_str(out.shape()),
                                 dtype_name(src.dtype()), shape_str(src.shape())));
  }
  if (!index.defined() || index.dim() != 1 || src.shape() != expect || !out.is_contiguous()) {
    throw ShapeError(fmt::format("{}: out {} (dense), index {}, src {}: src must be {}", __func__,
                                 shape_str(out.shape()),
                                 index.defined() ? shape_str(index.shape()) : "undefined",
                                 shape_str(src.shape()), shape_str(expect)));
  }
  check_index(index, out.shape()[a], __func__);
  const auto idx = index.to_vector<std::int64_t>();
  dispatch_floating(out.dtype(), __func__, [&]<class T>() {
    const Tensor s = src.contiguous();
    // View both as [outer, axis, inner] so a slab is `inner` dense elements.
    std::int64_t outer = 1, inner = 1;
    for (std::int64_t d = 0; d < a; ++d) outer *= out.shape()[d];
    for (std::int64_t d = a + 1; d < out.dim(); ++d) inner *= out.shape()[d];
    const std::int64_t n_out = out.shape()[a], n_src = static_cast<std::int64_t>(idx.size());
    T* po = out.data<T>();
    const T* ps = s.data<T>();
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t i = 0; i < n_src; ++i) {
        T* dst = po + (o * n_out + idx[i]) * inner;
        simd::binary_row(dst, 1, ps + (o * n_src + i) * inner, 1, dst, inner,
                         [](auto p, auto q) { return p + q; });
      }
    }
  });
}

namespace {

// gather and scatter_add take an index of the data's rank.
void check_gather(const Tensor& data, const Tensor& index, std::string_view op) {
  if (!data.defined()) throw ValueError(fmt::format("{}: data tensor is undefined", op));
  if (!index.defined() || index.dim() != data.dim()) {
    throw ShapeError(fmt::format("{}: index {} must have the rank of the data {}", op,
                                 index.defined() ? shape_str(index.shape()) : "undefined",
                                 shape_str(data.shape())));
  }
}

}  // namespace

Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index) {
  check_gather(x, index, __func__);
  const std::int64_t a = normalize_axis(axis, x.dim(), __func__);
  for (std::int64_t d = 0; d < x.dim(); ++d) {
    if (d != a && index.shape()[d] > x.shape()[d]) {
      throw ShapeError(fmt::format("{}: index {} is larger than the data {} off axis {}", __func__,
                                   shape_str(index.shape()), shape_str(x.shape()), a));
    }
  }
  check_index(index, x.shape()[a], __func__);
  Tensor out = Tensor::empty(index.shape(), x.dtype());
  dispatch_all(x.dtype(), [&]<class T>() {
    Shape xst = x.strides();
    const std::int64_t step = xst[a];
    xst[a] = 0;
    const T* px = static_cast<const T*>(x.raw_data());
    const auto* pi = index.data<std::int64_t>();
    T* po = static_cast<T*>(out.raw_data());
    for_each_row<3>(index.shape(), {&out.strides(), &index.strides(), &xst},
                    [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                        const std::array<std::int64_t, 3>& inc) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        po[off[0] + i] = px[off[2] + i * inc[2] + pi[off[1] + i * inc[1]] * step];
                      }
                    });
  });
  return out;
}

void scatter_add_(Tensor& out, std::int64_t axis, const Tensor& index, const Tensor& src) {
  check_gather(out, index, __func__);
  const std::int64_t a = normalize_axis(axis, out.dim(), __func__);
  if (!src.defined() || src.shape() != index.shape()) {
    throw ShapeError(fmt::format("{}: src {} must have the index's shape {}", __func__,
                                 src.defined() ? shape_str(src.shape()) : "undefined",
                                 shape_str(index.shape())));
  }
  if (src.dtype() != out.dtype()) {
    throw DTypeError(fmt::format("{}: dtypes differ (out {}{} vs src {}{})", __func__,
                                 dtype_name(out.dtype()), shape_str(out.shape()),
                                 dtype_name(src.dtype()), shape_str(src.shape())));
  }
  for (std::int64_t d = 0; d < out.dim(); ++d) {
    if (d != a && index.shape()[d] > out.shape()[d]) {
      throw ShapeError(fmt::format("{}: index {} is larger than the output {} off axis {}",
                                   __func__, shape_str(index.shape()), shape_str(out.shape()), a));
    }
  }
  check_index(index, out.shape()[a], __func__);
  dispatch_floating(out.dtype(), __func__, [&]<class T>() {
    Shape ost = out.strides();
    const std::int64_t step = ost[a];
    ost[a] = 0;
    T* po = out.data<T>();
    const auto* pi = index.data<std::int64_t>();
    const T* ps = src.data<T>();
    for_each_row<3>(index.shape(), {&ost, &index.strides(), &src.strides()},
                    [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                        const std::array<std::int64_t, 3>& inc) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        po[off[0] + i * inc[0] + pi[off[1] + i * inc[1]] * step] +=
                            ps[off[2] + i * inc[2]];
                      }
                    });
  });
}

}  // namespace seqgrad
