// Tensor: a typed, strided view of shared storage. Views (reshape of dense data, permute,
// transpose, narrow, unsqueeze, squeeze, expand) share storage and copy nothing; contiguous()
// copies only when the layout is not already dense row-major.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace seqgrad {

// One aligned allocation; tensors hold it through shared_ptr so views keep it alive.
class Storage {
 public:
  explicit Storage(std::size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false

  // Factories. Values are given as double and converted to the dtype.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  static Tensor scalar(double value, DType dtype = DType::f32);
  static Tensor arange(std::int64_t n, DType dtype = DType::i64);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  // Converts each value to `dtype`.
  static Tensor from_list(std::initializer_list<double> values, const Shape& shape,
                          DType dtype = DType::f32);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  std::int64_t offset() const { return offset_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t numel() const { return shape_numel(shape_); }
  std::int64_t size(std::int64_t axis) const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

  // Pointer to the first element of this view; checks that T matches the dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;

  // Views.
  Tensor reshape(Shape shape) const;  // one -1 allowed; copies only if not contiguous
  Tensor permute(const std::vector<std::int64_t>& order) const;
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  Tensor narrow(std::int64_t axis, std::int64_t start, std::int64_t length) const;
  Tensor select(std::int64_t axis, std::int64_t index) const;  // narrow + squeeze
  Tensor unsqueeze(std::int64_t axis) const;
  Tensor squeeze(std::int64_t axis) const;
  Tensor squeeze() const;                   // drops every size-1 axis
  Tensor expand(const Shape& shape) const;  // broadcasts size-1 axes with stride 0

  // Copies.
  Tensor contiguous() const;  // returns *this when already dense
  Tensor clone() const;       // always a fresh dense copy
  Tensor astype(DType dtype) const;
  // Copies src (broadcast to this shape, same dtype) into this view's elements.
  void copy_from(const Tensor& src);
  void fill_(double value);

  // Element access, mainly for tests and small host-side code.
  double item() const;  // the single element of a one-element tensor
  double at(std::initializer_list<std::int64_t> index) const;
  template <class T>
  std::vector<T> to_vector() const;  // values in row-major order, converted to T
  std::string str() const;           // "float32[2,3] {...}" for printing

 private:
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, std::int64_t offset,
         DType dtype);
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  std::int64_t offset_ = 0;
  DType dtype_ = DType::f32;
};

}  // namespace seqgrad

#include "tensor/tensor_impl.h"
