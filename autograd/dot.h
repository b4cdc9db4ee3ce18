// Graphviz export of the tape, so a learner can look at what backward walks: one box per value
// with its op (or leaf name) and shape, and, where a gradient is present, its L2 norm.
// Render with: dot -Tsvg graph.dot > graph.svg
#pragma once

#include <string>

#include "autograd/variable.h"

namespace seqgrad {

std::string to_dot(const Variable& root);

}  // namespace seqgrad
