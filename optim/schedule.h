// Learning-rate schedules. A schedule is a pure function from the optimizer's step count to a
// learning rate, so it needs no state of its own and resumes from a checkpoint for free (the
// step count is in OptimizerState); apply_schedule() hands its value to an optimizer. Reduce-on-
// plateau depends on the validation history, so it is a small stateful object instead.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "optim/optimizer.h"

namespace seqgrad {

// lr for the next update, given `step` = updates already made (Optimizer::step_count()). Below,
// s = step + 1 is the 1-based number of the update the lr is for.
using LrSchedule = std::function<double(std::int64_t step)>;

// lr(s) = lr
LrSchedule constant_lr(double lr);
// lr(s) = lr * gamma^floor(step / every)   (torch StepLR with step_size = every)
LrSchedule step_decay(double lr, std::int64_t every, double gamma);
// lr(s) = peak * s / warmup for s <= warmup, then peak * sqrt(warmup / s)   (Transformer-style)
LrSchedule warmup_inverse_sqrt(double peak_lr, std::int64_t warmup_steps);
// lr(s) = peak * s / warmup for s <= warmup, then
//         min + (peak - min) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2 up to s = total,
//         and min after it.
LrSchedule warmup_cosine(double peak_lr, std::int64_t warmup_steps, std::int64_t total_steps,
                         double min_lr = 0.0);

// Sets the optimizer's lr to schedule(optimizer.step_count()) and returns it; call before step().
double apply_schedule(const LrSchedule& schedule, Optimizer& optimizer);

// Named numbers, for the small state of stateful schedules (checkpoint metadata).
using ScheduleState = std::map<std::string, double>;

enum class PlateauMode { min, max };    // whether lower or higher metrics are better
enum class ThresholdMode { rel, abs };  // improvement measured relative to best, or absolute

struct PlateauOptions {
  PlateauMode mode = PlateauMode::min;
  double factor = 0.1;         // lr = max(lr * factor, min_lr) on a plateau; in (0, 1)
  std::int64_t patience = 10;  // bad evaluations tolerated before reducing
  double threshold = 1e-4;     // how much better counts as better
  ThresholdMode threshold_mode = ThresholdMode::rel;
  std::int64_t cooldown = 0;  // evaluations ignored after a reduction
  double min_lr = 0.0;
  double eps = 1e-8;  // reductions smaller than this are skipped
};

// torch.optim.lr_scheduler.ReduceLROnPlateau: call step(metric, ...) after each validation. The lr
// drops by `factor` once the metric has failed to improve on its best for more than `patience`
// evaluations in a row; then `cooldown` evaluations pass before bad ones count again.
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(const PlateauOptions& options = {});

  // Records one metric; returns the lr to use from now on (current_lr, or the reduced value).
  double step(double metric, double current_lr);
  // The same on an optimizer's lr; returns whether it reduced the lr.
  bool step(double metric, Optimizer& optimizer);

  double best() const { return best_; }
  std::int64_t num_bad_epochs() const { return num_bad_epochs_; }
  std::int64_t cooldown_counter() const { return cooldown_counter_; }
  std::int64_t last_epoch() const { return last_epoch_; }  // calls to step so far
  const PlateauOptions& options() const { return options_; }

  // Keys: best, num_bad_epochs, cooldown_counter, last_epoch. Loading checks that exactly these
  // are present and that the counts are non-negative integers (ValueError otherwise).
  ScheduleState state() const;
  void load_state(const ScheduleState& state);

 private:
  bool is_better(double metric) const;

  PlateauOptions options_;
  double best_;
  std::int64_t num_bad_epochs_ = 0;
  std::int64_t cooldown_counter_ = 0;
  std::int64_t last_epoch_ = 0;
};

}  // namespace seqgrad
