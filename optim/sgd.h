// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, in
// PyTorch's formulation (torch.optim.SGD), so hyper-parameters carry over unchanged.
#pragma once

#include "optim/optimizer.h"

namespace seqgrad {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0
};

// d = g + weight_decay * p
// buf = d on a parameter's first update, then buf = momentum * buf + (1 - dampening) * d
// d = nesterov ? d + momentum * buf : buf       (when momentum != 0)
// p = p - lr * d
class SGD : public Optimizer {
 public:
  SGD(std::vector<Variable> params, const SGDOptions& options);
  std::string kind() const override { return "SGD"; }
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> buffer_names() const override;
  void update(Tensor& p, const Tensor& g, ParamState& state) override;

 private:
  SGDOptions options_;
};

}  // namespace seqgrad
