// Adam/AdamW's update as one fused pass over parameter, gradient and both moments.
#include "optim/adam.h"

#include <fmt/format.h>

#include <cmath>

#include "optim/fused.h"

namespace seqgrad {

namespace {

AdamOptions checked(const AdamOptions& o, std::string_view kind) {
  if (!(o.beta1 >= 0.0 && o.beta1 < 1.0) || !(o.beta2 >= 0.0 && o.beta2 < 1.0)) {
    throw ValueError(
        fmt::format("{}: betas must lie in [0, 1), got ({}, {})", kind, o.beta1, o.beta2));
  }
  if (!(std::isfinite(o.eps) && o.eps >= 0.0)) {
    throw ValueError(fmt::format("{}: eps must be finite and >= 0, got {}", kind, o.eps));
  }
  if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0)) {
    throw ValueError(
        fmt::format("{}: weight_decay must be finite and >= 0, got {}", kind, o.weight_decay));
  }
  return o;
}

AdamOptions as_adam(const AdamWOptions& o) {
  return {
      .lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay};
}

}  // namespace

Adam::Adam(std::vector<Variable> params, const AdamOptions& options)
    : Adam(std::move(params), options, false) {}

Adam::Adam(std::vector<Variable> params, const AdamOptions& options, bool decoupled)
    : Optimizer(std::move(params), options.lr, decoupled ? "AdamW" : "Adam"),
      options_(checked(options, decoupled ? "AdamW" : "Adam")),
      decoupled_(decoupled) {}

AdamW::AdamW(std::vector<Variable> params, const AdamWOptions& options)
    : Adam(std::move(params), as_adam(options), true) {}

std::vector<std::string> Adam::buffer_names() const {
  return {"exp_avg", "exp_avg_sq"};
}

void Adam::update(Tensor& p, const Tensor& g, ParamState& state) {
  const AdamOptions& o = options_;
  // The scalar factors are computed in double whatever the dtype, as PyTorch does in Python.
  const double t = static_cast<double>(state.steps);
  const double step_size = lr() / (1.0 - std::pow(o.beta1, t));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(o.beta2, t));
  dispatch_floating(p.dtype(), "Adam::update", [&]<class T>() {
    using optim_detail::load;
    using optim_detail::store;
    using optim_detail::vsqrt;
    T* pp = p.data<T>();
    const T* pg = g.data<T>();
    T* pm = state.buffers[0].data<T>();
    T* pv = state.buffers[1].data<T>();
    const T b1 = static_cast<T>(o.beta1), one_b1 = static_cast<T>(1.0 - o.beta1);
    const T b2 = static_cast<T>(o.beta2), one_b2 = static_cast<T>(1.0 - o.beta2);
    const T eps = static_cast<T>(o.eps);
    const T neg_step = static_cast<T>(-step_size);
    const T bc2 = static_cast<T>(bias2_sqrt);
    const bool l2 = !decoupled_ && o.weight_decay != 0.0;
    const T wd = static_cast<T>(o.weight_decay);
    const bool shrink = decoupled_ && o.weight_decay != 0.0;
    const T shrink_by = static_cast<T>(1.0 - lr() * o.weight_decay);
    optim_detail::fused_loop<T>(p.numel(), [&]<class V>(std::int64_t i) {
      V w = load<V>(pp + i);
      V d = load<V>(pg + i);
      if (l2) d = d + V(wd) * w;
      if (shrink) w = w * V(shrink_by);
      const V m = V(b1) * load<V>(pm + i) + V(one_b1) * d;
      const V v = V(b2) * load<V>(pv + i) + V(one_b2) * d * d;
      store(pm + i, m);
      store(pv + i, v);
      // NOTE: eps after the bias correction (PyTorch), not sqrt(v_hat + eps) nor sqrt(v) + eps.
      const V denom = vsqrt(v) / V(bc2) + V(eps);
      store(pp + i, w + V(neg_step) * (m / denom));
    });
  });
}

}  // namespace seqgrad
