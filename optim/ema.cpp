// The moving average's update and swap, one fused pass per parameter.
#include "optim/ema.h"

#include <fmt/format.h>

#include <algorithm>

#include "optim/fused.h"
#include "tensor/parallel_for.h"

namespace seqgrad {

ExponentialMovingAverage::ExponentialMovingAverage(std::vector<Variable> params, double decay)
    : params_(std::move(params)), decay_(decay) {
  if (!(decay > 0.0 && decay < 1.0)) {
    throw ValueError(
        fmt::format("ExponentialMovingAverage: decay must lie in (0, 1), got {}", decay));
  }
  averages_.reserve(params_.size());
  for (const Variable& p : params_) {
    if (!p.data().is_contiguous()) {
      throw ValueError("ExponentialMovingAverage: parameters must be contiguous");
    }
    averages_.push_back(p.data().clone());
  }
}

void ExponentialMovingAverage::update() {
  const double n = static_cast<double>(updates_);
  const double d = std::min(decay_, (1.0 + n) / (10.0 + n));
  std::vector<std::int64_t> sizes;
  for (const Variable& p : params_) sizes.push_back(p.data().numel());
  parallel_ranges(sizes, threads_, [&](std::size_t begin, std::size_t end) {
    for (std::size_t k = begin; k < end; ++k) {
      const Tensor& p = params_[k].data();
      Tensor& a = averages_[k];
      dispatch_floating(p.dtype(), "ExponentialMovingAverage::update", [&]<class T>() {
        using optim_detail::load;
        using optim_detail::store;
        const T* pp = p.data<T>();
        T* pa = a.data<T>();
        const T rate = static_cast<T>(1.0 - d);
        optim_detail::fused_loop<T>(p.numel(), [&]<class V>(std::int64_t i) {
          const V avg = load<V>(pa + i);
          store(pa + i, avg + V(rate) * (load<V>(pp + i) - avg));
        });
      });
    }
  });
  ++updates_;
}

void ExponentialMovingAverage::swap() {
  for (std::size_t k = 0; k < params_.size(); ++k) {
    Tensor& p = params_[k].data();
    Tensor& a = averages_[k];
    dispatch_floating(p.dtype(), "ExponentialMovingAverage::swap", [&]<class T>() {
      std::swap_ranges(p.data<T>(), p.data<T>() + p.numel(), a.data<T>());
    });
  }
}

}  // namespace seqgrad
