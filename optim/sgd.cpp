// SGD's update as one fused pass over parameter, gradient and (with momentum) its buffer.
#include "optim/sgd.h"

#include <fmt/format.h>

#include <cmath>

#include "optim/fused.h"

namespace seqgrad {

namespace {

SGDOptions checked(SGDOptions o) {
  auto bad = [](double v) { return !(std::isfinite(v) && v >= 0.0); };
  if (bad(o.momentum) || bad(o.dampening) || bad(o.weight_decay)) {
    throw ValueError(
        fmt::format("SGD: momentum {}, dampening {} and weight_decay {} must be finite, >= 0",
                    o.momentum, o.dampening, o.weight_decay));
  }
  // Without momentum Nesterov is plain SGD, and with dampening it is no longer Nesterov's rule;
  // PyTorch refuses both, so we do too rather than silently training something else.
  if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0)) {
    throw ValueError(fmt::format("SGD: nesterov needs momentum > 0 and dampening 0, got {} and {}",
                                 o.momentum, o.dampening));
  }
  return o;
}

}  // namespace

SGD::SGD(std::vector<Variable> params, const SGDOptions& options)
    : Optimizer(std::move(params), options.lr, "SGD"), options_(checked(options)) {}

std::vector<std::string> SGD::buffer_names() const {
  if (options_.momentum == 0.0) return {};
  return {"momentum_buffer"};
}

void SGD::update(Tensor& p, const Tensor& g, ParamState& state) {
  const bool first = state.steps == 1;
  dispatch_floating(p.dtype(), "SGD::update", [&]<class T>() {
    using optim_detail::load;
    using optim_detail::store;
    T* pp = p.data<T>();
    const T* pg = g.data<T>();
    T* pbuf = options_.momentum != 0.0 ? state.buffers[0].data<T>() : nullptr;
    const T neg_lr = static_cast<T>(-lr());
    const T wd = static_cast<T>(options_.weight_decay);
    const T mom = static_cast<T>(options_.momentum);
    const T keep = static_cast<T>(1.0 - options_.dampening);
    const bool decay = options_.weight_decay != 0.0;
    const bool nesterov = options_.nesterov;
    optim_detail::fused_loop<T>(p.numel(), [&]<class V>(std::int64_t i) {
      const V w = load<V>(pp + i);
      V d = load<V>(pg + i);
      if (decay) d = d + V(wd) * w;
      if (pbuf != nullptr) {
        // PyTorch starts the buffer at d itself, undamped, rather than at zero.
        const V buf = first ? d : V(mom) * load<V>(pbuf + i) + V(keep) * d;
        store(pbuf + i, buf);
        d = nesterov ? d + V(mom) * buf : buf;
      }
      store(pp + i, w + V(neg_lr) * d);
    });
  });
}

}  // namespace seqgrad
