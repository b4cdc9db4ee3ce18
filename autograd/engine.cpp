// The reverse sweep: order the tape topologically from the output, then run each node's
// backward closure once, after every consumer of its output has added its share of the gradient.
#include <fmt/format.h>

#include <atomic>

#include "autograd/variable.h"

namespace seqgrad {

namespace {

// Post-order DFS over nodes that require grad: inputs before the values computed from them.
// A node is marked seen by stamping it with this sweep's number, which costs no hashing.
std::vector<VarImpl*> topological_order(VarImpl* root) {
  static std::atomic<std::uint64_t> sweeps{0};
  const std::uint64_t sweep = ++sweeps;
  std::vector<VarImpl*> order;
  std::vector<std::pair<VarImpl*, std::size_t>> stack;  // node, next input to visit
  stack.emplace_back(root, 0);
  root->visit_mark = sweep;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      VarImpl* in = node->inputs[next++].get();
      if (in->requires_grad && in->visit_mark != sweep) {
        in->visit_mark = sweep;
        stack.emplace_back(in, 0);
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return order;
}

// Runs node's hooks on its gradient g in order; each sees what the one before returned.
Tensor run_hooks(const VarImpl& node, Tensor g) {
  for (const GradHook& hook : node.hooks) {
    if (!hook) continue;  // removed
    Tensor replaced = hook(g);
    if (!replaced.defined()) continue;
    if (replaced.shape() != g.shape() || replaced.dtype() != g.dtype()) {
      throw ShapeError(fmt::format(
          "backward: a hook on the {} output {} returned a gradient {}; it must keep {}",
          op_name(node.op), node.describe_value(), describe(replaced), describe(g)));
    }
    g = std::move(replaced);
  }
  return g;
}

// A leaf's hooks see only this pass's gradient, so the sweep collects it apart from what .grad
// already held and adds it after the hooks.
struct HookedLeaf {
  VarImpl* leaf;
  Tensor before;  // .grad before this pass
};

std::vector<HookedLeaf> set_aside_hooked_leaves(const std::vector<VarImpl*>& order) {
  std::vector<HookedLeaf> leaves;
  for (VarImpl* node : order) {
    if (node->is_leaf() && !node->hooks.empty()) {
      leaves.push_back({node, std::move(node->grad)});
      node->grad = Tensor();
    }
  }
  return leaves;
}

void finish_hooked_leaves(std::vector<HookedLeaf>& leaves) {
  for (HookedLeaf& h : leaves) {
    Tensor pass = std::move(h.leaf->grad);
    h.leaf->grad = std::move(h.before);
    if (pass.defined()) h.leaf->accumulate(run_hooks(*h.leaf, std::move(pass)));
  }
}

}  // namespace

void Variable::backward(const BackwardOptions& options) const {
  if (!defined()) throw ValueError("backward: the variable is undefined");
  if (numel() != 1) {
    throw ValueError(fmt::format(
        "backward: the output {} is not a scalar; pass an upstream gradient of that shape "
        "(HINT: reduce it with sum() or mean() first, or call backward(dy))",
        shape_str(shape())));
  }
  backward(Tensor::ones(shape(), dtype()), options);
}

void Variable::backward(const Tensor& dy, const BackwardOptions& options) const {
  if (!defined()) throw ValueError("backward: the variable is undefined");
  if (!requires_grad()) {
    throw ValueError(
        "backward: this value does not require grad (no input required grad, or it was "
        "computed under NoGradGuard)");
  }
  if (!dy.defined() || dy.shape() != shape() || dy.dtype() != dtype()) {
    throw ShapeError(fmt::format("backward: upstream gradient {}{} does not match the output {}{}",
                                 dy.defined() ? dtype_name(dy.dtype()) : "undefined",
                                 dy.defined() ? shape_str(dy.shape()) : "", dtype_name(dtype()),
                                 shape_str(shape())));
  }
  const std::vector<VarImpl*> order = topological_order(impl().get());
  std::vector<HookedLeaf> hooked = set_aside_hooked_leaves(order);
  try {
    impl()->accumulate(dy);
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      VarImpl* node = *it;
      if (node->is_leaf() || !node->grad.defined()) continue;
      if (!node->hooks.empty()) node->grad = run_hooks(*node, std::move(node->grad));
      node->backward(node->grad, GradSink(*node));
      if (!options.keep_all_grads && !node->retain_grad) node->grad = Tensor();
    }
  } catch (...) {  // a failed pass (anomaly mode, a hook) leaves the leaves' gradients as they were
    for (HookedLeaf& h : hooked) h.leaf->grad = std::move(h.before);
    throw;
  }
  finish_hooked_leaves(hooked);
}

Variable make_result(Tensor y, Op op, const std::vector<Variable>& inputs, BackwardFn backward) {
  auto impl = std::make_shared<VarImpl>();
  impl->data = std::move(y);
  if (grad_enabled()) {
    bool any = false;
    for (const auto& v : inputs) any = any || v.requires_grad();
    if (any) {
      impl->requires_grad = true;
      impl->op = op;
      for (const auto& v : inputs) impl->inputs.push_back(v.impl());
      impl->backward = std::move(backward);
    }
  }
  return Variable(std::move(impl));
}

}  // namespace seqgrad
