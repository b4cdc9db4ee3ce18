// Anomaly mode: the switch and the two checks (see anomaly.h).
#include "autograd/anomaly.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>

#include "tensor/reduce.h"

namespace seqgrad {

namespace {

std::atomic<bool> g_detect_anomaly{false};

std::string counts(const NonFinite& n) {
  std::vector<std::string> parts;
  if (n.nan > 0) parts.push_back(fmt::format("{} NaN", n.nan));
  if (n.pos_inf > 0) parts.push_back(fmt::format("{} +inf", n.pos_inf));
  if (n.neg_inf > 0) parts.push_back(fmt::format("{} -inf", n.neg_inf));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

void set_detect_anomaly(bool on) {
  g_detect_anomaly.store(on, std::memory_order_relaxed);
}
bool detect_anomaly() {
  return g_detect_anomaly.load(std::memory_order_relaxed);
}

DetectAnomalyGuard::DetectAnomalyGuard(bool on) : previous_(detect_anomaly()) {
  set_detect_anomaly(on);
}
DetectAnomalyGuard::~DetectAnomalyGuard() {
  set_detect_anomaly(previous_);
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return fmt::format("{}{}", dtype_name(t.dtype()), shape_str(t.shape()));
}

void check_forward(Op op, const Tensor& y, const std::vector<std::string>& inputs) {
  NonFinite n = count_nonfinite(y);
  n.neg_inf = 0;  // masks
  if (!n.any()) return;
  throw AnomalyError(
      fmt::format("anomaly: the forward of {} gave {} in its output {} (inputs: {})\n"
                  "HINT: a log or division of a non-positive value, or an exp that overflowed",
                  op_name(op), counts(n), describe(y), fmt::join(inputs, ", ")));
}

void check_backward(Op op, std::size_t index, const Tensor& g,
                    const std::vector<std::string>& inputs) {
  const NonFinite n = count_nonfinite(g);
  if (!n.any()) return;
  throw AnomalyError(fmt::format(
      "anomaly: the backward of {} gave {} in the gradient of its input {} {} (inputs: {})",
      op_name(op), counts(n), index, describe(g), fmt::join(inputs, ", ")));
}

}  // namespace seqgrad
