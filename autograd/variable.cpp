// Variable accessors, gradient accumulation and grad mode.
#include "autograd/variable.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "tensor/elementwise.h"
#include "tensor/matmul.h"

namespace seqgrad {

namespace {
thread_local bool g_grad_enabled = true;

VarImpl& checked(const std::shared_ptr<VarImpl>& impl, std::string_view what) {
  if (!impl) throw ValueError(fmt::format("{}: the variable is undefined", what));
  return *impl;
}

// A non-leaf's gradient that receives a second share (a value used by several ops, an RNN's
// weight view used at every step) is summed in place rather than into a fresh tensor, when that
// is invisible: nothing but `grad` holds its storage, and its elements are dense in some order
// of the axes (row-major, or the transposed layout matmul's backward gives a transposed
// operand). Returns false, changing nothing, otherwise.
// NOTE: backwards share tensors freely (add hands the same dy to both inputs, views of dy go to
// several inputs, closures capture outputs), so writing is safe only with a use count of 1.
bool add_in_place(Tensor& grad, const Tensor& g) {
  if (grad.storage().use_count() != 1) return false;
  std::vector<std::int64_t> order(static_cast<std::size_t>(grad.dim()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return grad.strides()[a] > grad.strides()[b];
  });
  Tensor dense = grad.permute(order);  // a view of grad's memory in increasing-address order
  if (!dense.is_contiguous()) return false;
  add_(dense, g.permute(order));
  return true;
}
// The last two axes swapped: a free view.
Tensor mT(const Tensor& t) {
  return t.transpose(-2, -1);
}

// A 2-D view whose columns are dense (strides [1, ld]): the transpose of a dense matrix.
bool column_major(const Tensor& t) {
  return t.dim() == 2 && t.strides()[0] == 1 && t.strides()[1] != 1 && t.size(0) > 1;
}
}  // namespace

bool grad_enabled() {
  return g_grad_enabled;
}
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = previous_;
}

GradSink::GradSink(const VarImpl& node) : node_(node), inputs_(node.inputs) {}

bool GradSink::needs(std::size_t i) const {
  return inputs_[i]->requires_grad;
}

void GradSink::check(std::size_t i, const Tensor& g) const {
  std::vector<std::string> described;
  for (const auto& in : inputs_) described.push_back(in->describe_value());
  check_backward(node_.op, i, g, described);
}

void GradSink::add(std::size_t i, const Tensor& g) const {
  if (!inputs_[i]->requires_grad) return;
  if (detect_anomaly()) check(i, g);
  inputs_[i]->accumulate(g);
}

void GradSink::add_matmul(std::size_t i, const Tensor& a, const Tensor& b) const {
  if (!inputs_[i]->requires_grad) return;
  if (!detect_anomaly() && inputs_[i]->accumulate_matmul(a, b)) return;
  // (a @ b)^T = b^T @ a^T: a column-major operand gets a dense gradient under a transposed view
  add(i, inputs_[i]->value_column_major() ? mT(matmul(mT(b), mT(a))) : matmul(a, b));
}

void GradSink::add_slab(std::size_t i, std::int64_t axis, std::int64_t start,
                        const Tensor& g) const {
  if (!inputs_[i]->requires_grad) return;
  if (detect_anomaly()) check(i, g);
  inputs_[i]->accumulate_slab(axis, start, g);
}

namespace {
bool broadcast_view(const Tensor& t) {
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    if (t.shape()[d] > 1 && t.strides()[d] == 0) return true;
  }
  return false;
}
}  // namespace

void VarImpl::accumulate_slab(std::int64_t axis, std::int64_t start, const Tensor& g) {
  Shape want = value_shape();
  const auto rank = static_cast<std::int64_t>(want.size());
  if (axis < 0 || axis >= rank || g.dim() != rank || start < 0 ||
      start + g.size(axis) > want[static_cast<std::size_t>(axis)]) {
    throw std::logic_error(fmt::format(
        "internal error: a backward produced a slab {}{} at {} of axis {} for a value of {}{}",
        dtype_name(g.dtype()), shape_str(g.shape()), start, axis, dtype_name(value_dtype()),
        shape_str(value_shape())));
  }
  want[static_cast<std::size_t>(axis)] = g.size(axis);
  if (g.shape() != want || g.dtype() != value_dtype()) {
    throw std::logic_error(
        fmt::format("internal error: a backward produced a slab {}{} for a value of {}{} (axis {})",
                    dtype_name(g.dtype()), shape_str(g.shape()), dtype_name(value_dtype()),
                    shape_str(value_shape()), axis));
  }
  if (!grad.defined()) {
    grad = Tensor::zeros(value_shape(), value_dtype());
    grad.narrow(axis, start, g.size(axis)).copy_from(g);
    return;
  }
  // Leaves own their buffer; a non-leaf's is written in place only when nothing else holds it
  // (the NOTE at add_in_place).
  if (!(is_leaf() || grad.storage().use_count() == 1) || broadcast_view(grad)) grad = grad.clone();
  Tensor slab = grad.narrow(axis, start, g.size(axis));
  add_(slab, g);
}

bool VarImpl::accumulate_matmul(const Tensor& a, const Tensor& b) {
  if (!grad.defined() || a.dtype() != grad.dtype() || b.dtype() != grad.dtype()) return false;
  if (!is_leaf() && grad.storage().use_count() != 1) return false;  // see add_in_place
  if (matmul_shape(a.shape(), b.shape()) != grad.shape()) return false;
  if (grad.is_contiguous()) {
    matmul_into(a, b, grad, 1.0, 1.0);
    return true;
  }
  if (column_major(grad)) {
    Tensor dense = mT(grad);  // a view of grad's own memory
    matmul_into(mT(b), mT(a), dense, 1.0, 1.0);
    return true;
  }
  return false;
}

void VarImpl::accumulate(const Tensor& g) {
  // An op's backward must hand each input a gradient of exactly its shape and dtype; a mismatch
  // is a bug in that backward, caught here (a shape compare) rather than as silent corruption.
  if (g.shape() != value_shape() || g.dtype() != value_dtype()) {
    throw std::logic_error(fmt::format("internal error: a backward produced {}{} for a value of {}",
                                       dtype_name(g.dtype()), shape_str(g.shape()),
                                       describe_value()));
  }
  if (!grad.defined()) {
    // Leaves keep a dense buffer of their own: `g` may be a broadcast view, or the very tensor
    // another input received (add hands dy to both sides), and optimizers write grads in place.
    grad = is_leaf() ? g.clone() : g;
  } else if (is_leaf()) {
    add_(grad, g);
  } else if (!add_in_place(grad, g)) {
    grad = add(grad, g);
  }
}

bool VarImpl::value_column_major() const {
  return released ? released_column_major : column_major(data);
}

std::string VarImpl::describe_value() const {
  return released ? fmt::format("{}{}", dtype_name(released_dtype), shape_str(released_shape))
                  : describe(data);
}

void VarImpl::release_data() {
  if ((is_leaf() && requires_grad) || released || !data.defined()) return;
  released_shape = data.shape();
  released_dtype = data.dtype();
  released_column_major = column_major(data);
  released = true;
  data = Tensor();
}

Variable::Variable(Tensor data, bool requires_grad) : impl_(std::make_shared<VarImpl>()) {
  hold();
  if (!data.defined()) throw ValueError("Variable: the data tensor is undefined");
  impl_->data = std::move(data);
  set_requires_grad(requires_grad);
}

const Tensor& Variable::data() const {
  return checked(impl_, "data").data;
}
Tensor& Variable::data() {
  return checked(impl_, "data").data;
}
const Tensor& Variable::grad() const {
  return checked(impl_, "grad").grad;
}

Variable& Variable::set_requires_grad(bool on) {
  VarImpl& v = checked(impl_, "set_requires_grad");
  if (on && !is_floating(v.data.dtype())) {
    throw DTypeError(
        fmt::format("set_requires_grad: only float32/float64 values can require "
                    "grad, this one is {}",
                    dtype_name(v.data.dtype())));
  }
  if (!v.is_leaf() && !on) {
    throw ValueError("set_requires_grad: an op's output cannot stop requiring grad; use detach()");
  }
  v.requires_grad = on;
  return *this;
}

Variable& Variable::set_name(std::string name) {
  checked(impl_, "set_name").name = std::move(name);
  return *this;
}

const std::string& Variable::name() const {
  return checked(impl_, "name").name;
}

Variable& Variable::retain_grad() {
  checked(impl_, "retain_grad").retain_grad = true;
  return *this;
}

std::size_t Variable::register_hook(GradHook hook) {
  VarImpl& v = checked(impl_, "register_hook");
  if (!v.requires_grad) {
    throw ValueError(
        fmt::format("register_hook: this {} value does not require grad, so no gradient will "
                    "reach it",
                    describe(v.data)));
  }
  if (!hook) throw ValueError("register_hook: the hook is empty");
  v.hooks.push_back(std::move(hook));
  return v.hooks.size() - 1;
}

void Variable::remove_hook(std::size_t handle) {
  VarImpl& v = checked(impl_, "remove_hook");
  if (handle >= v.hooks.size()) {
    throw IndexError(
        fmt::format("remove_hook: no hook {} (this value has {})", handle, v.hooks.size()));
  }
  v.hooks[handle] = nullptr;
}

void Variable::zero_grad() {
  checked(impl_, "zero_grad").grad = Tensor();
}

Variable Variable::detach() const {
  return Variable(checked(impl_, "detach").data, false);
}

}  // namespace seqgrad
