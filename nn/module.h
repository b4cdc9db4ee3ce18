// Module: a named tree of parameters, the way PyTorch's nn.Module names them
// ("encoder.rnn.weight_ih_l0"), with train/eval mode. Parameters are Variable handles shared
// with the owning layer, so an optimizer or a checkpoint loader that writes a parameter's data
// in place is seen by the layer at once.
//
// Modules are neither copyable nor movable: a parent keeps pointers to its child members.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"

namespace seqgrad {

using NamedParameters = std::vector<std::pair<std::string, Variable>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, depth first, in registration order.
  NamedParameters named_parameters() const;
  std::vector<Variable> parameters() const;
  std::int64_t num_parameters() const;  // number of scalar values
  // The parameter of that full name; throws ValueError listing a few names if absent.
  Variable parameter(const std::string& name) const;

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  void zero_grad();
  // Converts every parameter to dtype in place (float64 for gradient checks).
  void to(DType dtype);

 protected:
  // Registers a leaf that requires grad under `name` and returns its handle.
  Variable register_parameter(std::string name, Tensor value);
  // A child registered under an empty name shares this module's namespace (its parameter "w"
  // is this module's "w"): a facade over one implementation keeps the implementation's names.
  void register_module(std::string name, Module& child);

 private:
  void collect(const std::string& prefix, NamedParameters& out) const;
  NamedParameters params_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

}  // namespace seqgrad
