// Template members of Tensor.
#pragma once

#include <fmt/format.h>

namespace seqgrad {

template <class T>
T* Tensor::data() const {
  if (dtype_of<T>() != dtype_) {
    throw DTypeError(fmt::format("data: tensor holds {}, asked for {}", dtype_name(dtype_),
                                 dtype_name(dtype_of<T>())));
  }
  return static_cast<T*>(raw_data());
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape)) {
    throw ShapeError(fmt::format("from_vector: {} values do not fill shape {}", values.size(),
                                 shape_str(shape)));
  }
  Tensor t = empty(shape, dtype_of<T>());
  T* p = t.data<T>();
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}

}  // namespace seqgrad
