// What seqgrad train shows while it runs: on a terminal a progress bar redrawn four times a
// second, in a log a line every 100 steps; and one line per validation. It draws from the
// trainer's hooks (seq2seq/trainer.h), so the library itself prints nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "seq2seq/trainer.h"

namespace seqgrad::app {

class ProgressDisplay {
 public:
  ProgressDisplay();
  // Hooks that draw on this display (which must outlive them).
  TrainHooks hooks();
  void on_step(const StepReport& r);
  void on_validation(const nlohmann::json& line);
  // Ends the bar's line, then says the training speed: target tokens/s and time a step over
  // the steps after the first, each timed from the one before unless a validation came between.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void draw(const StepReport& r);

  bool tty_;
  Clock::time_point start_, window_start_;
  std::int64_t first_step_ = -1;    // the step this process started from
  std::int64_t window_tokens_ = 0;  // since the last drawing, for tokens/s
  bool bar_shown_ = false;
  Clock::time_point last_step_at_;
  bool step_timing_ = false;  // a step has been reported, and no validation since
  double timed_seconds_ = 0;
  std::int64_t timed_steps_ = 0, timed_tokens_ = 0;
};

}  // namespace seqgrad::app
