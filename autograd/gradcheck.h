// gradcheck: compares the gradients backward computes against central finite differences, in
// float64, over the full Jacobian (one backward per output element, so a transposed or
// misplaced gradient cannot hide) and once more with a random upstream gradient (the
// accumulation path a real loss takes).
//
// Error of one entry: |analytic - numeric| / max(1, |analytic|, |numeric|), i.e. relative for
// entries above 1 and absolute below; the check passes when the largest error is < tolerance.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace seqgrad {

struct GradcheckOptions {
  double eps = 1e-6;
  double tolerance = 1e-6;
  std::uint64_t seed = 1234;  // for the random upstream gradient
};

struct GradcheckResult {
  double max_error = 0;
  std::string worst;  // where the largest error was, e.g. "input 1 element 5 / output 2"
  std::int64_t entries = 0;
  bool passed = false;
};

using GradcheckFn = std::function<Variable(const std::vector<Variable>&)>;

// Each input must be a float64 tensor whose elements sit at distinct storage locations (any
// strides, including transposed views, but no stride-0 broadcast views). Every input is
// checked, and so is every variable in `params`: float64 leaves that f uses directly, such as a
// layer's parameters (perturbed in place). All values are restored afterwards.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {},
                          const std::vector<Variable>& params = {});

}  // namespace seqgrad
