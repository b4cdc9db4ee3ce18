// Template part of make_result.
#pragma once

namespace seqgrad {

template <class F>
Variable make_result(Tensor y, Op op, std::initializer_list<const Variable*> inputs, F&& backward) {
  if (detect_anomaly()) {
    std::vector<std::string> described;
    for (const Variable* v : inputs) described.push_back(describe(v->data()));
    check_forward(op, y, described);
  }
  auto impl = std::make_shared<VarImpl>();
  impl->data = std::move(y);
  if (grad_enabled()) {
    bool any = false;
    for (const Variable* v : inputs) any = any || v->requires_grad();
    if (any) {
      impl->requires_grad = true;
      impl->op = op;
      impl->inputs.reserve(inputs.size());
      for (const Variable* v : inputs) impl->inputs.push_back(v->impl());
      impl->backward = std::forward<F>(backward);
    }
  }
  return Variable(std::move(impl));
}

}  // namespace seqgrad
