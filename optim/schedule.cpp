// Learning-rate schedules (pure functions of the step count) and reduce-on-plateau (stateful).
#include "optim/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace seqgrad {

namespace {

void check_lr(double lr, std::string_view who, std::string_view what) {
  if (!(std::isfinite(lr) && lr >= 0.0)) {
    throw ValueError(fmt::format("{}: {} must be finite and >= 0, got {}", who, what, lr));
  }
}

// The schedules are called with Optimizer::step_count(), which is never negative; a negative
// step is a caller's arithmetic slip that would otherwise give a plausible-looking lr.
void check_step(std::int64_t step, std::string_view who) {
  if (step < 0) throw ValueError(fmt::format("{}: step {} is negative", who, step));
}

}  // namespace

LrSchedule constant_lr(double lr) {
  check_lr(lr, __func__, "lr");
  return [lr](std::int64_t step) {
    check_step(step, "constant_lr");
    return lr;
  };
}

LrSchedule step_decay(double lr, std::int64_t every, double gamma) {
  check_lr(lr, __func__, "lr");
  if (every < 1) throw ValueError(fmt::format("{}: every must be >= 1, got {}", __func__, every));
  if (!(std::isfinite(gamma) && gamma > 0.0)) {
    throw ValueError(fmt::format("{}: gamma must be finite and > 0, got {}", __func__, gamma));
  }
  return [lr, every, gamma](std::int64_t step) {
    check_step(step, "step_decay");
    return lr * std::pow(gamma, static_cast<double>(step / every));
  };
}

LrSchedule warmup_inverse_sqrt(double peak_lr, std::int64_t warmup_steps) {
  check_lr(peak_lr, __func__, "peak_lr");
  // The decay is scaled by sqrt(warmup), so a warm-up of 0 steps has no meaning here.
  if (warmup_steps < 1) {
    throw ValueError(fmt::format("{}: warmup_steps must be >= 1, got {}", __func__, warmup_steps));
  }
  return [peak_lr, warmup_steps](std::int64_t step) {
    check_step(step, "warmup_inverse_sqrt");
    const double s = static_cast<double>(step + 1);
    const double w = static_cast<double>(warmup_steps);
    return s <= w ? peak_lr * s / w : peak_lr * std::sqrt(w / s);
  };
}

LrSchedule warmup_cosine(double peak_lr, std::int64_t warmup_steps, std::int64_t total_steps,
                         double min_lr) {
  check_lr(peak_lr, __func__, "peak_lr");
  check_lr(min_lr, __func__, "min_lr");
  if (min_lr > peak_lr) {
    throw ValueError(fmt::format("{}: min_lr {} exceeds peak_lr {}", __func__, min_lr, peak_lr));
  }
  if (warmup_steps < 0 || total_steps <= warmup_steps) {
    throw ValueError(fmt::format("{}: needs 0 <= warmup_steps < total_steps, got {} and {}",
                                 __func__, warmup_steps, total_steps));
  }
  return [peak_lr, warmup_steps, total_steps, min_lr](std::int64_t step) {
    check_step(step, "warmup_cosine");
    const std::int64_t s = step + 1;
    if (s <= warmup_steps) {
      return peak_lr * static_cast<double>(s) / static_cast<double>(warmup_steps);
    }
    if (s >= total_steps) return min_lr;
    const double progress =
        static_cast<double>(s - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  };
}

double apply_schedule(const LrSchedule& schedule, Optimizer& optimizer) {
  if (!schedule) throw ValueError(fmt::format("{}: the schedule is empty", __func__));
  const double lr = schedule(optimizer.step_count());
  optimizer.set_lr(lr);
  return lr;
}

// --- reduce on plateau ---

ReduceLROnPlateau::ReduceLROnPlateau(const PlateauOptions& options) : options_(options) {
  const PlateauOptions& o = options_;
  // factor 1 would never reduce and factor >= 1 would raise the lr: both mean a typo.
  if (!(o.factor > 0.0 && o.factor < 1.0)) {
    throw ValueError(fmt::format("ReduceLROnPlateau: factor must lie in (0, 1), got {}", o.factor));
  }
  if (o.patience < 0 || o.cooldown < 0) {
    throw ValueError(fmt::format("ReduceLROnPlateau: patience {} and cooldown {} must be >= 0",
                                 o.patience, o.cooldown));
  }
  if (!(std::isfinite(o.threshold) && o.threshold >= 0.0)) {
    throw ValueError(
        fmt::format("ReduceLROnPlateau: threshold must be finite and >= 0, got {}", o.threshold));
  }
  check_lr(o.min_lr, "ReduceLROnPlateau", "min_lr");
  if (!(std::isfinite(o.eps) && o.eps >= 0.0)) {
    throw ValueError(fmt::format("ReduceLROnPlateau: eps must be finite and >= 0, got {}", o.eps));
  }
  best_ = o.mode == PlateauMode::min ? std::numeric_limits<double>::infinity()
                                     : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double metric) const {
  const double t = options_.threshold;
  const bool rel = options_.threshold_mode == ThresholdMode::rel;
  // A NaN metric compares false everywhere, so it counts as a bad evaluation (as in PyTorch).
  if (options_.mode == PlateauMode::min) return metric < (rel ? best_ * (1.0 - t) : best_ - t);
  return metric > (rel ? best_ * (1.0 + t) : best_ + t);
}

double ReduceLROnPlateau::step(double metric, double current_lr) {
  check_lr(current_lr, "ReduceLROnPlateau::step", "current_lr");
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // evaluations right after a reduction do not count against it
  }
  if (num_bad_epochs_ <= options_.patience) return current_lr;
  cooldown_counter_ = options_.cooldown;
  num_bad_epochs_ = 0;
  const double reduced = std::max(current_lr * options_.factor, options_.min_lr);
  return current_lr - reduced > options_.eps ? reduced : current_lr;
}

bool ReduceLROnPlateau::step(double metric, Optimizer& optimizer) {
  const double before = optimizer.lr();
  const double after = step(metric, before);
  optimizer.set_lr(after);
  return after != before;
}

ScheduleState ReduceLROnPlateau::state() const {
  return {{"best", best_},
          {"num_bad_epochs", static_cast<double>(num_bad_epochs_)},
          {"cooldown_counter", static_cast<double>(cooldown_counter_)},
          {"last_epoch", static_cast<double>(last_epoch_)}};
}

void ReduceLROnPlateau::load_state(const ScheduleState& state) {
  constexpr std::string_view kWho = "ReduceLROnPlateau::load_state";
  auto get = [&](const std::string& key) {
    const auto it = state.find(key);
    if (it == state.end()) throw ValueError(fmt::format("{}: missing '{}'", kWho, key));
    return it->second;
  };
  auto count = [&](const std::string& key) {
    const double v = get(key);
    if (!(v >= 0.0 && v <= 9.0e15 && v == std::floor(v))) {
      throw ValueError(fmt::format("{}: '{}' = {} is not a non-negative integer", kWho, key, v));
    }
    return static_cast<std::int64_t>(v);
  };
  if (state.size() != 4) {
    throw ValueError(
        fmt::format("{}: expected the 4 keys best, num_bad_epochs, cooldown_counter, "
                    "last_epoch; got {}",
                    kWho, state.size()));
  }
  const double best = get("best");
  if (std::isnan(best)) throw ValueError(fmt::format("{}: 'best' is NaN", kWho));
  const std::int64_t bad = count("num_bad_epochs");
  const std::int64_t cooldown = count("cooldown_counter");
  const std::int64_t epoch = count("last_epoch");
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  last_epoch_ = epoch;
}

}  // namespace seqgrad
