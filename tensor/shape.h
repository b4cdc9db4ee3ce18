// Shapes and strides (in elements), and the broadcasting rule shared by every elementwise op.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace seqgrad {

using Shape = std::vector<std::int64_t>;

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
