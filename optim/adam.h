// Adam and AdamW (decoupled weight decay), in PyTorch's formulation (torch.optim.Adam/AdamW),
// including where epsilon goes: it is added after the bias correction of the second moment, so
// results match PyTorch to rounding and hyper-parameters carry over unchanged.
#pragma once

#include "optim/optimizer.h"

namespace seqgrad {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient, so it passes through the moments
};

// As AdamOptions; only the weight-decay default differs (PyTorch's AdamW default).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: shrinks p directly, never seen by the moments
};

// With t the parameter's update count (1 on its first update):
// g = g + weight_decay * p                       (Adam only)
// p = p * (1 - lr * weight_decay)                (AdamW only, before the update)
// m = beta1 * m + (1 - beta1) * g
// v = beta2 * v + (1 - beta2) * g^2
// p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
class Adam : public Optimizer {
 public:
  Adam(std::vector<Variable> params, const AdamOptions& options = {});
  std::string kind() const override { return decoupled_ ? "AdamW" : "Adam"; }
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(std::vector<Variable> params, const AdamOptions& options, bool decoupled);
  std::vector<std::string> buffer_names() const override;
  void update(Tensor& p, const Tensor& g, ParamState& state) override;

 private:
  AdamOptions options_;
  bool decoupled_ = false;  // AdamW
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Variable> params, const AdamWOptions& options = {});
};

}  // namespace seqgrad
