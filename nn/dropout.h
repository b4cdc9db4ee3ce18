// Dropout: in training, zero each element with probability p and scale the rest by 1/(1-p)
// (inverted dropout, so evaluation is the identity). The mask comes from a seeded generator.
#pragma once

#include "autograd/variable.h"
#include "nn/module.h"
#include "tensor/random.h"

namespace seqgrad {

// y = x * mask / (1 - p), mask ~ Bernoulli(1 - p); the identity when !training or p == 0.
Variable dropout(const Variable& x, double p, bool training, Generator& gen = default_generator());

class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator& gen = default_generator());
  Variable forward(const Variable& x) const { return dropout(x, p_, training(), *gen_); }
  Variable operator()(const Variable& x) const { return forward(x); }
  double p() const { return p_; }

 private:
  double p_;
  Generator* gen_;
};

}  // namespace seqgrad
