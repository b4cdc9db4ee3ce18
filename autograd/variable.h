// Variable: a tensor on the tape. A leaf is made by the user (parameters, inputs); every other
// Variable is the output of an op and remembers the op's name, its inputs and a backward
// closure written right under the op's forward (see ops_*.cpp).
//
// Gradients accumulate: backward adds into `.grad`, so a value used twice receives the sum.
// Leaves own their gradient buffer (dense, never shared), so optimizers may update it in place.
//
// The tape keeps what backward reads, not every value: each backward closure holds the tensors it
// needs (as PyTorch's saved tensors), and when the last Variable handle of a value goes while the
// tape still links to it, the value's data is released (the tape keeps its shape, dtype and
// layout). A bias add's input or a concatenation feeding an index_select is then freed as soon
// as the forward moves on, instead of living until backward.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/anomaly.h"
#include "autograd/op_registry.h"
#include "tensor/tensor.h"

namespace seqgrad {

struct VarImpl;
class Variable;

// What a backward closure uses to hand gradients to the inputs of `node`, the op's output.
// In anomaly mode it checks each gradient before adding it.
class GradSink {
 public:
  explicit GradSink(const VarImpl& node);
  // Whether input i wants a gradient (skip computing it otherwise).
  bool needs(std::size_t i) const;
  // Adds g (of input i's shape and dtype) into input i's gradient.
  void add(std::size_t i, const Tensor& g) const;
  // Adds g into the slab [start, start + g.size(axis)) along `axis` of input i's gradient, which
  // is otherwise zero: what narrow's backward hands on, without a zero tensor of the input's size
  // per call (a per-step select over a sequence then costs O(T), not O(T^2)).
  void add_slab(std::size_t i, std::int64_t axis, std::int64_t start, const Tensor& g) const;
  // Adds the product a @ b (of input i's shape) into input i's gradient. When that gradient
  // already exists and may be written in place, gemm accumulates into it (beta = 1): no
  // product-sized temporary to zero and then add, which for a weight used at every step of a
  // sequence is most of the weight gradient's memory traffic. Otherwise the product is formed in
  // input i's own layout (row-major, or column-major for a transposed 2-D view) and added.
  void add_matmul(std::size_t i, const Tensor& a, const Tensor& b) const;

 private:
  void check(std::size_t i, const Tensor& g) const;  // anomaly mode
  const VarImpl& node_;
  const std::vector<std::shared_ptr<VarImpl>>& inputs_;
};

// dy is the gradient of the loss with respect to this node's output.
using BackwardFn = std::function<void(const Tensor& dy, const GradSink& sink)>;

// A tensor hook: called during backward with a value's whole gradient (for a leaf, the part
// this pass computed); returns the gradient to use instead, or an undefined Tensor to keep it.
using GradHook = std::function<Tensor(const Tensor& grad)>;

struct VarImpl {
  Tensor data;  // undefined once released (below)
  Tensor grad;  // undefined until a backward pass reaches this value
  bool requires_grad = false;
  bool retain_grad = false;  // keep .grad on a non-leaf after backward
  std::string name;          // optional label for graph dumps
  // Set on op outputs only.
  Op op = Op::leaf;
  std::vector<std::shared_ptr<VarImpl>> inputs;
  BackwardFn backward;
  std::vector<GradHook> hooks;   // register_hook; a removed one is left empty
  std::uint64_t visit_mark = 0;  // the engine's "seen in this sweep" stamp
  // The Variables pointing here (the tape's links are not counted), and what stays of a value
  // whose data was released when the last of them went.
  std::atomic<std::int64_t> handles{0};
  bool released = false;
  Shape released_shape;
  DType released_dtype = DType::f32;
  bool released_column_major = false;

  bool is_leaf() const { return op == Op::leaf; }
  const Shape& value_shape() const { return released ? released_shape : data.shape(); }
  DType value_dtype() const { return released ? released_dtype : data.dtype(); }
  bool value_column_major() const;     // a transposed 2-D layout (tensor/matmul.h column_major)
  std::string describe_value() const;  // "float32[2,3]"
  // Drops data, keeping its shape, dtype and layout; leaves that require grad keep theirs.
  void release_data();
  // Adds g into grad (first time: takes it, copying for leaves so the buffer is their own).
  void accumulate(const Tensor& g);
  // Adds g into one slab of grad along axis (zeros elsewhere); see GradSink::add_slab.
  void accumulate_slab(std::int64_t axis, std::int64_t start, const Tensor& g);
  // grad += a @ b in place when grad exists and is only this value's; false, changing nothing,
  // otherwise. See GradSink::add_matmul.
  bool accumulate_matmul(const Tensor& a, const Tensor& b);
};

struct BackwardOptions {
  // Keep every intermediate's .grad after the pass (for inspection and DOT dumps); by default
  // only leaves and values marked retain_grad() keep theirs.
  bool keep_all_grads = false;
};

class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor data, bool requires_grad = false);
  Variable(const Variable& other) : impl_(other.impl_) { hold(); }
  Variable(Variable&& other) noexcept : impl_(std::move(other.impl_)) {}
  Variable& operator=(const Variable& other) {
    if (impl_ != other.impl_) {
      Variable copy(other);
      std::swap(impl_, copy.impl_);
    }
    return *this;
  }
  Variable& operator=(Variable&& other) noexcept {
    if (this != &other) {
      let_go();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  ~Variable() { let_go(); }

  bool defined() const { return impl_ != nullptr; }
  const Tensor& data() const;
  Tensor& data();
  const Tensor& grad() const;
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Variable& set_requires_grad(bool on);
  Variable& set_name(std::string name);
  const std::string& name() const;
  // Keep this non-leaf's gradient after backward.
  Variable& retain_grad();
  // Runs `hook` on this value's gradient during every later backward, as PyTorch's
  // Tensor.register_hook: on an intermediate before its gradient flows on to its inputs (what
  // the hook returns is what flows on, and what retain_grad keeps); on a leaf before this pass's
  // gradient is added into .grad. Hooks run in the order registered. Returns a handle for
  // remove_hook.
  std::size_t register_hook(GradHook hook);
  void remove_hook(std::size_t handle);

  const Shape& shape() const { return data().shape(); }
  DType dtype() const { return data().dtype(); }
  std::int64_t dim() const { return data().dim(); }
  std::int64_t numel() const { return data().numel(); }
  std::int64_t size(std::int64_t axis) const { return data().size(axis); }
  double item() const { return data().item(); }

  Op op() const { return impl_ ? impl_->op : Op::leaf; }
  bool is_leaf() const { return !impl_ || impl_->is_leaf(); }

  // Reverse sweep from this value. Without an upstream gradient the value must hold one element
  // (its gradient is then 1).
  void backward(const BackwardOptions& options = {}) const;
  void backward(const Tensor& dy, const BackwardOptions& options = {}) const;
  void zero_grad();  // drops the gradient (the next backward starts from nothing)
  // The same data, cut from the tape: a leaf that does not require grad.
  Variable detach() const;

  const std::shared_ptr<VarImpl>& impl() const { return impl_; }
  explicit Variable(std::shared_ptr<VarImpl> impl) : impl_(std::move(impl)) { hold(); }

 private:
  void hold() const {
    if (impl_) impl_->handles.fetch_add(1, std::memory_order_relaxed);
  }
  // The last handle of a value the tape still links to releases its data.
  void let_go() noexcept {
    if (impl_ && impl_->handles.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        impl_.use_count() > 1) {
      impl_->release_data();
    }
  }
  std::shared_ptr<VarImpl> impl_;
};

// Gradient recording is on by default; NoGradGuard turns it off for its scope (evaluation,
// optimizer updates). Thread-local.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Builds an op's output: records inputs and backward only when recording is on and some input
// requires grad, so inference pays for none of it. In anomaly mode it checks the output first.
template <class F>
Variable make_result(Tensor y, Op op, std::initializer_list<const Variable*> inputs, F&& backward);
Variable make_result(Tensor y, Op op, const std::vector<Variable>& inputs, BackwardFn backward);

}  // namespace seqgrad

#include "autograd/variable_impl.h"
