// Error types. User mistakes throw one of these (built with fmt so messages show every shape);
// internal bugs are asserts. The op name in a message comes from the throwing function itself.
#pragma once

#include <stdexcept>
#include <string>

namespace seqgrad {

// Shapes that do not fit together: broadcasting, matmul inner dimensions, concat, reshape.
struct ShapeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A dtype the op does not accept, or two inputs whose dtypes differ.
struct DTypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// An index or axis out of range.
struct IndexError : std::out_of_range {
  using std::out_of_range::out_of_range;
};

// Any other invalid argument (a negative size, a bad probability, an undefined tensor).
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Failures that are not the caller's argument: I/O, corrupt files, exhausted resources.
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace seqgrad
