// Helpers shared by the optimizer tests (test_optim.cpp, test_optim_parity.cpp): parameters
// from plain values, exact gradients through the tape, and element-wise comparison.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.h"

namespace seqgrad::optim_test {

using Values = std::vector<double>;

inline Variable param(const Values& v, const Shape& s, DType dtype = DType::f64) {
  return Variable(Tensor::from_vector(v, s).astype(dtype), true);
}

// Gives p exactly the gradient g, through the tape: d/dp sum(p * g) = g.
inline void set_grad(Variable& p, const Values& g) {
  p.zero_grad();
  sum(p * Variable(Tensor::from_vector(g, p.shape()).astype(p.dtype()))).backward();
}

inline Values values(const Variable& p) {
  return p.data().to_vector<double>();
}

inline void check_close(const Values& got, const Values& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol);
  }
}

}  // namespace seqgrad::optim_test
