// Gradient-norm clipping over dense leaf gradients, in place and without temporaries.
#include "optim/clip.h"

#include <fmt/format.h>

#include <array>
#include <cmath>

#include "optim/fused.h"
#include "tensor/parallel_for.h"

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

// The eight partial sums of g^2 (in double: float32 sums over millions of elements lose digits),
// kept apart so the adds pipeline without reassociation licences.
using Partials = std::array<double, 8>;

Partials squares(const Tensor& g) {
  Partials part{};
  dispatch_floating(g.dtype(), "grad_norm", [&]<class T>() {
    const T* pg = g.data<T>();
    const std::int64_t n = g.numel();
    std::int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
      for (std::size_t j = 0; j < 8; ++j) {
        const double x = static_cast<double>(pg[k + static_cast<std::int64_t>(j)]);
        part[j] += x * x;
      }
    }
    for (; k < n; ++k) {
      const double x = static_cast<double>(pg[k]);
      part[0] += x * x;
    }
  });
  return part;
}

// Elements of each defined grad (0 for the others), for the threads' split; checks as it goes.
std::vector<std::int64_t> grad_sizes(const std::vector<Variable>& params, std::string_view who) {
  std::vector<std::int64_t> sizes(params.size(), 0);
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!params[i].defined())
      throw ValueError(fmt::format("{}: parameter {} is undefined", who, i));
    const Tensor& g = params[i].grad();
    if (!g.defined()) continue;
    check_grad(g, i, who);
    sizes[i] = g.numel();
  }
  return sizes;
}

// The norm over the grads grad_sizes found.
double norm_of(const std::vector<Variable>& params, const std::vector<std::int64_t>& sizes,
               int threads) {
  std::vector<Partials> parts(params.size());
  parallel_ranges(sizes, threads, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      if (sizes[i] > 0) parts[i] = squares(params[i].grad());
    }
  });
  double total = 0.0;  // summed in parameter order, so every thread count gives the same norm
  for (const Partials& part : parts) {
    for (const double s : part) total += s;
  }
  return std::sqrt(total);
}

}  // namespace

double grad_norm(const std::vector<Variable>& params, int threads) {
  return norm_of(params, grad_sizes(params, __func__), threads);
}

double clip_grad_norm(const std::vector<Variable>& params, double max_norm, bool error_if_nonfinite,
                      int threads) {
  if (!(std::isfinite(max_norm) && max_norm > 0.0)) {
    throw ValueError(
        fmt::format("{}: max_norm must be finite and > 0, got {}", __func__, max_norm));
  }
  const std::vector<std::int64_t> sizes = grad_sizes(params, __func__);
  const double norm = norm_of(params, sizes, threads);
  if (!std::isfinite(norm) && error_if_nonfinite) {
    throw RuntimeError(
        fmt::format("{}: the total gradient norm is {}, so it cannot be clipped", __func__, norm));
  }
  const double coef = max_norm / (norm + 1e-6);
  // NOTE: a NaN norm gives a NaN coef, which fails `< 1`; PyTorch's clamp(max=1) would spread
  // the NaN into every grad. We apply it too, so a diverged step is as visible as in PyTorch.
  if (!(coef < 1.0 || std::isnan(coef))) return norm;
  parallel_ranges(sizes, threads, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      if (sizes[i] == 0) continue;
      const Tensor& g = params[i].grad();
      dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() {
        T* pg = g.data<T>();
        const T c = static_cast<T>(coef);
        optim_detail::fused_loop<T>(g.numel(), [&]<class V>(std::int64_t k) {
          optim_detail::store(pg + k, optim_detail::load<V>(pg + k) * V(c));
        });
      });
    }
  });
  return norm;
}

}  // namespace seqgrad
