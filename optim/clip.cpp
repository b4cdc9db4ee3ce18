// Gradient-norm clipping over dense leaf gradients, in place and without temporaries.
#include "optim/clip.h"

#include <fmt/format.h>

#include <cmath>

#include "optim/fused.h"

namespace seqgrad {

namespace {

// Leaves' grads are dense buffers of their own (autograd/variable.h), so a flat walk is safe;
// anything else means someone replaced a grad by hand.
void check_grad(const Tensor& g, std::size_t index, std::string_view who) {
  if (!g.is_contiguous()) {
    throw ValueError(
        fmt::format("{}: the grad of parameter {} {} is a strided view, expected a "
                    "dense buffer",
                    who, index, shape_str(g.shape())));
  }
}

}  // namespace

double grad_norm(const std::vector<Variable>& params) {
  double total = 0.0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!params[i].defined())
      throw ValueError(fmt::format("{}: parameter {} is undefined", __func__, i));
    const Tensor& g = params[i].grad();
    if (!g.defined()) continue;
    check_grad(g, i, __func__);
    dispatch_floating(g.dtype(), __func__, [&]<class T>() {
      // Squares summed in double (float32 sums over millions of elements lose digits), in eight
      // independent partial sums so the adds pipeline without reassociation licences.
      const T* pg = g.data<T>();
      const std::int64_t n = g.numel();
      double part[8] = {};
      std::int64_t k = 0;
      for (; k + 8 <= n; k += 8) {
        for (int j = 0; j < 8; ++j) {
          const double x = static_cast<double>(pg[k + j]);
          part[j] += x * x;
        }
      }
      for (; k < n; ++k) {
        const double x = static_cast<double>(pg[k]);
        part[0] += x * x;
      }
      for (const double s : part) total += s;
    });
  }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Variable>& params, double max_norm,
                      bool error_if_nonfinite) {
  if (!(std::isfinite(max_norm) && max_norm > 0.0)) {
    throw ValueError(
        fmt::format("{}: max_norm must be finite and > 0, got {}", __func__, max_norm));
  }
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) && error_if_nonfinite) {
    throw RuntimeError(
        fmt::format("{}: the total gradient norm is {}, so it cannot be clipped", __func__, norm));
  }
  const double coef = max_norm / (norm + 1e-6);
  // NOTE: a NaN norm gives a NaN coef, which fails `< 1`; PyTorch's clamp(max=1) would spread
  // the NaN into every grad. We apply it too, so a diverged step is as visible as in PyTorch.
  if (coef < 1.0 || std::isnan(coef)) {
    NoGradGuard no_grad;
    for (const Variable& p : params) {
      const Tensor& g = p.grad();
      if (!g.defined()) continue;
      dispatch_floating(g.dtype(), __func__, [&]<class T>() {
        T* pg = g.data<T>();
        const T c = static_cast<T>(coef);
        optim_detail::fused_loop<T>(g.numel(), [&]<class V>(std::int64_t k) {
          optim_detail::store(pg + k, optim_detail::load<V>(pg + k) * V(c));
        });
      });
    }
  }
  return norm;
}

}  // namespace seqgrad
