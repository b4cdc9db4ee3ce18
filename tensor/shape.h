// Shapes and strides (in elements), and the broadcasting rule shared by every elementwise op.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace seqgrad {

// A list of at most kMaxDims sizes (or strides), stored inline. Every Tensor, view and copy
// carries two of these; as std::vectors they were two heap allocations each, which dominated
// the cost of small ops. The interface is the part of std::vector the code uses.
class Shape {
 public:
  using value_type = std::int64_t;
  using size_type = std::size_t;
  using iterator = std::int64_t*;
  using const_iterator = const std::int64_t*;
  static constexpr std::size_t kMaxDims = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> values) { assign(values.begin(), values.end()); }
  explicit Shape(std::size_t n, std::int64_t value = 0) {
    check(n);
    n_ = static_cast<std::uint8_t>(n);
    std::fill(begin(), end(), value);
  }
  template <class It>
  requires(!std::is_integral_v<It>) Shape(It first, It last) { assign(first, last); }
  Shape(const std::vector<std::int64_t>& values) { assign(values.begin(), values.end()); }
  operator std::vector<std::int64_t>() const { return {begin(), end()}; }

  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  std::int64_t& operator[](std::size_t i) { return v_[i]; }
  std::int64_t operator[](std::size_t i) const { return v_[i]; }
  std::int64_t& back() { return v_[n_ - 1]; }
  std::int64_t back() const { return v_[n_ - 1]; }
  std::int64_t front() const { return v_[0]; }
  iterator begin() { return v_.data(); }
  iterator end() { return v_.data() + n_; }
  const_iterator begin() const { return v_.data(); }
  const_iterator end() const { return v_.data() + n_; }
  const std::int64_t* data() const { return v_.data(); }

  void push_back(std::int64_t value) {
    check(n_ + 1u);
    v_[n_++] = value;
  }
  void pop_back() { --n_; }
  void resize(std::size_t n, std::int64_t value = 0) {
    check(n);
    for (std::size_t i = n_; i < n; ++i) v_[i] = value;
    n_ = static_cast<std::uint8_t>(n);
  }
  iterator insert(const_iterator pos, std::int64_t value) {
    check(n_ + 1u);
    const auto i = static_cast<std::size_t>(pos - begin());
    std::copy_backward(begin() + i, end(), end() + 1);
    v_[i] = value;
    ++n_;
    return begin() + i;
  }
  iterator erase(const_iterator pos) {
    const auto i = static_cast<std::size_t>(pos - begin());
    std::copy(begin() + i + 1, end(), begin() + i);
    --n_;
    return begin() + i;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  static void check(std::size_t n);  // ShapeError beyond kMaxDims
  template <class It>
  void assign(It first, It last) {
    n_ = 0;
    for (; first != last; ++first) push_back(static_cast<std::int64_t>(*first));
  }
  std::array<std::int64_t, kMaxDims> v_{};
  std::uint8_t n_ = 0;
};

// "[2,3,4]"; "[]" for a scalar.
std::string shape_str(const Shape& s);
std::int64_t shape_numel(const Shape& s);
// Row-major strides for a dense tensor of this shape.
Shape contiguous_strides(const Shape& s);
// Maps a possibly negative axis into [0, ndim); throws IndexError naming `op` otherwise.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim, std::string_view op);
// NumPy broadcasting: align from the right, sizes equal or one of them 1. Throws ShapeError
// naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

}  // namespace seqgrad
