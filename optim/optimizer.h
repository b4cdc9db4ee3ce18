// Optimizer: the shared part of every update rule. It owns the parameter list, the learning rate,
// the step count and each parameter's state (a per-parameter step count and the rule's buffers,
// e.g. Adam's exp_avg); a subclass only says which buffers it keeps and how one parameter moves.
//
// Updates run in place on the parameters' data under NoGradGuard. Parameters whose grad is
// undefined (never reached by backward, or dropped by zero_grad) are skipped, like PyTorch:
// their buffers and step counts stay as they were.
//
// State is saved as a flat map of named tensors ("exp_avg.3" = buffer exp_avg of parameter 3,
// "step.3" = how many updates parameter 3 has had) plus a few numbers, the shape a safetensors
// checkpoint (name -> tensor, string metadata) stores directly.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "tensor/tensor.h"

namespace seqgrad {

struct OptimizerState {
  std::string kind;             // "SGD", "Adam", "AdamW": loading into another kind is an error
  std::int64_t num_params = 0;  // checked against the optimizer that loads it
  std::int64_t step_count = 0;  // calls to step()
  double lr = 0.0;              // the one hyper-parameter that changes during training
  // "<buffer>.<parameter index>"; parameters never updated have no entries.
  std::map<std::string, Tensor> tensors;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Applies one update to every parameter that has a gradient, then counts the step.
  void step();
  // Threads that step() spreads the parameters over (default 1). The parameters move
  // independently, so the result is the same at every count.
  void set_threads(int threads) { threads_ = threads; }
  // Drops every parameter's gradient (the next backward starts from nothing).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  // Calls to step() so far (schedules read it).
  std::int64_t step_count() const { return step_count_; }
  const std::vector<Variable>& params() const { return params_; }
  // "SGD", "Adam", "AdamW".
  virtual std::string kind() const = 0;

  // A deep copy: later steps do not change a saved state.
  OptimizerState state() const;
  // Validates everything (kind, parameter count, names, shapes, dtypes) before changing anything,
  // then copies the buffers in. Throws ValueError, ShapeError or DTypeError.
  void load_state(const OptimizerState& state);

 protected:
  // Checks every parameter (defined, leaf, requires_grad, floating, dense, none listed twice, no
  // two over the same memory) and lr. `kind` names the subclass in error messages.
  Optimizer(std::vector<Variable> params, double lr, std::string_view kind);

  struct ParamState {
    std::int64_t steps = 0;       // updates this parameter has had, including the current one
    std::vector<Tensor> buffers;  // one per buffer_names() entry, zeros until first update
  };
  // Names of the per-parameter buffers this rule keeps, fixed at construction.
  virtual std::vector<std::string> buffer_names() const = 0;
  // Moves one parameter. `p` and `g` are dense and of one shape and dtype; `state.steps` already
  // counts this update (so it is 1 on the first).
  virtual void update(Tensor& p, const Tensor& g, ParamState& state) = 0;

 private:
  // Throws unless parameter i, its grad and its buffers are dense and of one shape and dtype.
  void check_update(std::size_t i) const;

  std::vector<Variable> params_;
  std::vector<ParamState> states_;
  double lr_ = 0.0;
  std::int64_t step_count_ = 0;
  int threads_ = 1;
};

}  // namespace seqgrad
