// The progress display of seqgrad train (see progress.h).
#include "apps/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace seqgrad::app {

namespace {

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string duration_text(double s) {
  const auto total = static_cast<long>(s);
  return total >= 3600 ? fmt::format("{}h{:02d}m", total / 3600, (total / 60) % 60)
                       : fmt::format("{}m{:02d}s", total / 60, total % 60);
}

}  // namespace

ProgressDisplay::ProgressDisplay()
    : tty_(isatty(fileno(stdout)) != 0), start_(Clock::now()), window_start_(start_) {}

TrainHooks ProgressDisplay::hooks() {
  return {.on_step = [this](const StepReport& r) { on_step(r); },
          .on_validation = [this](const nlohmann::json& line) { on_validation(line); }};
}

void ProgressDisplay::on_step(const StepReport& r) {
  if (first_step_ < 0) first_step_ = r.step - 1;
  const Clock::time_point now = Clock::now();
  if (step_timing_) {
    timed_seconds_ += seconds_between(last_step_at_, now);
    ++timed_steps_;
    timed_tokens_ += r.tokens;
  }
  last_step_at_ = now;
  step_timing_ = true;
  window_tokens_ += r.tokens;
  const bool due = tty_ ? seconds_between(window_start_, Clock::now()) > 0.25 : r.step % 100 == 0;
  if (due || r.step == r.total) draw(r);
}

void ProgressDisplay::draw(const StepReport& r) {
  const Clock::time_point now = Clock::now();
  const double rate =
      static_cast<double>(r.step - first_step_) / std::max(seconds_between(start_, now), 1e-9);
  double eta = static_cast<double>(r.total - r.step) / std::max(rate, 1e-9);
  if (r.time_left >= 0) eta = std::min(eta, r.time_left);  // the time limit comes first
  const double tok_s =
      static_cast<double>(window_tokens_) / std::max(seconds_between(window_start_, now), 1e-9);
  const std::string stats =
      fmt::format("step {}/{} epoch {} loss {:.4f} lr {:.2e} {:.0f} tok/s ETA {}", r.step, r.total,
                  r.epoch + 1, r.train_loss, r.lr, tok_s, duration_text(eta));
  if (tty_) {
    const int width = 24;
    const auto filled = static_cast<int>(width * r.step / std::max<std::int64_t>(r.total, 1));
    fmt::print("\r\033[K[{}{}] {}", std::string(filled, '#'), std::string(width - filled, '.'),
               stats);
    bar_shown_ = true;
  } else {
    fmt::print("{}\n", stats);
  }
  std::fflush(stdout);  // a log file should show progress as it happens
  window_start_ = now;
  window_tokens_ = 0;
}

void ProgressDisplay::on_validation(const nlohmann::json& line) {
  step_timing_ = false;  // the next step's time would include this validation
  if (bar_shown_) std::fputs("\r\033[K", stdout);
  bar_shown_ = false;
  const auto& v = line.at("valid");
  fmt::print(
      "valid @ step {}: loss {:.4f}  exact {:.2f}%  token acc {:.2f}%  WER {:.2f}%  "
      "PER {:.2f}%  ({:.0f}s)\n",
      line.at("step").get<std::int64_t>(), v.at("loss").get<double>(),
      100 * v.at("exact_match").get<double>(), 100 * v.at("token_accuracy").get<double>(),
      100 * v.at("wer").get<double>(), 100 * v.at("per").get<double>(),
      seconds_between(start_, Clock::now()));
  std::fflush(stdout);
}

void ProgressDisplay::finish() {
  if (bar_shown_) fmt::print("\n");
  bar_shown_ = false;
  if (timed_steps_ == 0 || timed_seconds_ <= 0) return;
  fmt::print(
      "training speed: {:.0f} target tokens/s, {:.1f} ms a step (over {} steps; the "
      "first and those after a validation not counted)\n",
      static_cast<double>(timed_tokens_) / timed_seconds_,
      1000 * timed_seconds_ / static_cast<double>(timed_steps_), timed_steps_);
  std::fflush(stdout);
}

}  // namespace seqgrad::app
