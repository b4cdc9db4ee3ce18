// Anomaly mode, as torch.autograd.detect_anomaly: while it is on, every op checks its output
// when it is computed and every backward checks the gradients it hands its inputs, and the first
// one that is not finite stops the pass with an AnomalyError naming the op and its input shapes.
// Forward flags NaN and +inf (-inf is how masks are written: a masked log-probability is -inf);
// backward flags NaN and both infinities (a gradient is never legitimately infinite).
// It costs a scan of every tensor, so it is off by default. The switch is process-wide (not
// per thread) so data-parallel workers see it too.
#pragma once

#include <string>
#include <vector>

#include "autograd/op_registry.h"
#include "tensor/errors.h"
#include "tensor/tensor.h"

namespace seqgrad {

struct AnomalyError : RuntimeError {
  using RuntimeError::RuntimeError;
};

void set_detect_anomaly(bool on);
bool detect_anomaly();

// Turns anomaly mode on for its scope (restoring the previous setting after).
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool on = true);
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

// "f32[2,3]": how anomaly messages and graph dumps show a value.
std::string describe(const Tensor& t);

// Throws AnomalyError when `y`, the output of `op` on inputs shaped as `inputs`, holds NaN or
// +inf. Called by make_result while anomaly mode is on.
void check_forward(Op op, const Tensor& y, const std::vector<std::string>& inputs);
// Throws AnomalyError when `g`, the gradient the backward of `op` handed its input `index`,
// holds NaN or an infinity. `inputs` describes the op's inputs.
void check_backward(Op op, std::size_t index, const Tensor& g,
                    const std::vector<std::string>& inputs);

}  // namespace seqgrad
