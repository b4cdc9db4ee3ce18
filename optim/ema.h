// An exponential moving average of parameters (Polyak averaging), kept beside the optimizer:
// after each optimizer step, update() moves every average toward its parameter,
//   avg <- avg + (1 - d) (p - avg),  d = min(decay, (1 + n) / (10 + n)),
// where n counts the updates so far; the ramp in d (as in TensorFlow's ExponentialMovingAverage
// with num_updates) keeps the first averages from being dominated by the initial weights.
// swap() exchanges parameters and averages in place, so a caller can evaluate or save the
// averaged weights and then call swap() again to continue training from the raw ones.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/variable.h"

namespace seqgrad {

class ExponentialMovingAverage {
 public:
  // decay in (0, 1). The averages start as copies of the parameters.
  ExponentialMovingAverage(std::vector<Variable> params, double decay);

  void update();
  void swap();
  // Threads that update() spreads the parameters over (default 1); the same averages at every
  // count.
  void set_threads(int threads) { threads_ = threads; }

  double decay() const { return decay_; }
  std::int64_t updates() const { return updates_; }
  void set_updates(std::int64_t n) { updates_ = n; }
  // One dense tensor per parameter, in the order given (for checkpoints).
  std::vector<Tensor>& averages() { return averages_; }
  const std::vector<Tensor>& averages() const { return averages_; }

 private:
  std::vector<Variable> params_;
  std::vector<Tensor> averages_;
  double decay_;
  std::int64_t updates_ = 0;
  int threads_ = 1;
};

}  // namespace seqgrad
