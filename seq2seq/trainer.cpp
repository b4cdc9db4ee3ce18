// Training options and the training loop (see trainer.h for the reading order; evaluation is in
// evaluate.cpp).
// Shape legend: B batch, S source length, T target length, V vocabulary.
#include "seq2seq/trainer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>

#include "autograd/ops.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/schedule.h"
#include "seq2seq/json_fields.h"
#include "seq2seq/parallel.h"

namespace seqgrad {

// ---------------------------------------------------------------------------------------------
// Options: names, parsing, ranges

namespace {

// clang-format off
constexpr std::array<std::pair<Schedule, std::string_view>, 4> kSchedules{{
    {Schedule::plateau,      "plateau"},
    {Schedule::constant,     "constant"},
    {Schedule::cosine,       "cosine"},
    {Schedule::inverse_sqrt, "inverse_sqrt"},
}};
constexpr std::array<std::pair<Metric, std::string_view>, 6> kMetrics{{
    {Metric::exact_match,    "exact_match"},
    {Metric::token_accuracy, "token_accuracy"},
    {Metric::wer,            "wer"},
    {Metric::per,            "per"},
    {Metric::loss,           "loss"},
    {Metric::perplexity,     "perplexity"},
}};
// clang-format on

template <class Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& table, Enum e) {
  for (const auto& [value, name] : table) {
    if (value == e) return name;
  }
  assert(false && "every enumerator is in its table");
  return "?";
}

template <class Enum, std::size_t N>
std::vector<std::string> names_of(const std::array<std::pair<Enum, std::string_view>, N>& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.emplace_back(entry.second);
  return names;
}

template <class Enum, std::size_t N>
Enum parse_name(const std::array<std::pair<Enum, std::string_view>, N>& table,
                std::string_view name, std::string_view option) {
  for (const auto& [value, known] : table) {
    if (known == name) return value;
  }
  throw ValueError(
      fmt::format("{} '{}': unknown (known: {})", option, name, fmt::join(names_of(table), ", ")));
}

// ValueError "OPTION VALUE: must be RULE" unless `ok`.
template <class T>
void require(bool ok, std::string_view option, T value, std::string_view rule) {
  if (!ok) throw ValueError(fmt::format("{} {}: must be {}", option, value, rule));
}

// Written so that NaN is out of every range.
bool within(double x, double lo, double hi) {
  return x >= lo && x <= hi;
}
bool within_open_top(double x, double lo, double hi) {
  return x >= lo && x < hi;
}

}  // namespace

std::string_view schedule_name(Schedule s) {
  return name_of(kSchedules, s);
}
Schedule parse_schedule(std::string_view name, std::string_view option) {
  return parse_name(kSchedules, name, option);
}
std::vector<std::string> schedule_names() {
  return names_of(kSchedules);
}
std::string_view metric_name(Metric m) {
  return name_of(kMetrics, m);
}
Metric parse_metric(std::string_view name, std::string_view option) {
  return parse_name(kMetrics, name, option);
}
std::vector<std::string> metric_names() {
  return names_of(kMetrics);
}

double parse_duration(std::string_view text, std::string_view option) {
  const auto bad = [&] {
    return ValueError(fmt::format(
        "{} {:?}: must be a duration above 0, as 90s, 45m or 1.5h (a bare number: minutes)", option,
        text));
  };
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [rest, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || !std::isfinite(value) || value <= 0) throw bad();
  const std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  if (unit == "s") return value;
  if (unit.empty() || unit == "m") return value * 60;
  if (unit == "h") return value * 3600;
  throw bad();
}

bool lower_is_better(Metric m) {
  return m == Metric::wer || m == Metric::per || m == Metric::loss || m == Metric::perplexity;
}

void TrainOptions::check() const {
  const double big = std::numeric_limits<double>::max();
  // clang-format off
  require(epochs >= 1,                          "--epochs",          epochs,          "at least 1");
  require(steps >= 0,                           "--steps",           steps,           "at least 0 (0: use --epochs)");
  require(within(lr, 0, big) && lr > 0,         "--lr",              lr,              "a number above 0");
  require(within_open_top(adam_beta2, 0, 1),    "--adam-beta2",      adam_beta2,      "in [0, 1)");
  require(within(weight_decay, 0, big),         "--weight-decay",    weight_decay,    "at least 0 (0: off)");
  require(within(clip, 0, big),                 "--clip",            clip,            "at least 0 (0: off)");
  require(within(teacher_forcing, 0, 1),        "--teacher-forcing", teacher_forcing, "in [0, 1]");
  require(within(teacher_forcing_end, 0, 1) || teacher_forcing_end == -1,
                                                "--teacher-forcing-end", teacher_forcing_end, "in [0, 1] (or -1: off)");
  require(within_open_top(label_smoothing, 0, 1), "--label-smoothing", label_smoothing, "in [0, 1)");
  require(within_open_top(ema, 0, 1),           "--ema",             ema,             "in [0, 1) (0: off)");
  require(warmup >= 0,                          "--warmup",          warmup,          "at least 0");
  require(valid_every >= 0,                     "--valid-every",     valid_every,     "at least 0 (0: each epoch)");
  require(valid_examples >= 0,                  "--valid-examples",  valid_examples,  "at least 0 (0: all)");
  require(beam >= 1,                            "--beam",            beam,            "at least 1");
  require(max_decode_len >= 0,                  "max_decode_len",    max_decode_len,  "at least 0 (0: from the source)");
  require(threads >= 1,                         "--threads",         threads,         "at least 1");
  require(within(time_limit, 0, big),           "--time-limit",      time_limit,      "at least 0 seconds (0: none)");
  // clang-format on
}

nlohmann::json TrainOptions::to_json() const {
  return {{"epochs", epochs},
          {"steps", steps},
          {"lr", lr},
          {"adam_beta2", adam_beta2},
          {"weight_decay", weight_decay},
          {"clip", clip},
          {"teacher_forcing", teacher_forcing},
          {"teacher_forcing_end", teacher_forcing_end},
          {"label_smoothing", label_smoothing},
          {"ema", ema},
          {"schedule", schedule_name(schedule)},
          {"warmup", warmup},
          {"valid_every", valid_every},
          {"valid_examples", valid_examples},
          {"beam", beam},
          {"max_decode_len", max_decode_len},
          {"select_on", metric_name(select_on)},
          {"threads", threads},
          {"time_limit", time_limit}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  TrainOptions o;
  try {
    o.epochs = json_integer(j.at("epochs"), "epochs");
    o.steps = json_integer(j.at("steps"), "steps");
    o.lr = j.at("lr");
    o.adam_beta2 = j.value("adam_beta2", 0.999);    // absent in run directories written before it
    o.weight_decay = j.value("weight_decay", 0.0);  // likewise
    o.clip = j.at("clip");
    o.teacher_forcing = j.at("teacher_forcing");
    o.teacher_forcing_end = j.at("teacher_forcing_end");
    o.label_smoothing = j.at("label_smoothing");
    o.ema = j.value("ema", 0.0);  // absent in run directories written before it existed
    o.schedule = parse_schedule(j.at("schedule").get<std::string>(), "schedule");
    o.warmup = json_integer(j.at("warmup"), "warmup");
    o.valid_every = json_integer(j.at("valid_every"), "valid_every");
    o.valid_examples = json_integer(j.at("valid_examples"), "valid_examples");
    o.beam = json_integer(j.at("beam"), "beam");
    o.max_decode_len = json_integer(j.at("max_decode_len"), "max_decode_len");
    o.select_on = parse_metric(j.at("select_on").get<std::string>(), "select_on");
    o.threads = j.contains("threads")
                    ? static_cast<int>(json_integer(j.at("threads"), "threads", 0, 1024))
                    : 1;  // absent in run directories written before it existed
    o.time_limit = j.value("time_limit", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(fmt::format("training options: {}", e.what()));
  }
  o.check();
  return o;
}

// ---------------------------------------------------------------------------------------------
// Training

namespace {

// The batch's loss and gradients over the group: this process's shares of the batch, then the
// sums over the group; gen continues from rank 0's state, the one that drew share 0's choices.
StepLoss group_loss_backward(DataParallel& parallel, const Batch& batch, const LossOptions& loss,
                             Generator& gen, Collective& group) {
  const int workers = parallel.workers();
  const StepLoss mine = parallel.loss_backward(
      batch, loss, gen, {.first = group.rank() * workers, .of = group.size() * workers});
  parallel.sum_gradients(group);
  double mean = mine.loss;
  group.sum(std::span<double>(&mean, 1));
  std::array<std::uint64_t, 5> state = gen.state();
  group.broadcast(state);
  gen.set_state(state);
  return {.loss = mean, .tokens = batch.target_tokens()};
}

}  // namespace

StepLoss train_step(DataParallel& parallel, Optimizer& opt, const Batch& batch,
                    const LossOptions& loss, double clip, Generator& gen, Collective& group) {
  opt.zero_grad();
  // forward, loss, backward
  const StepLoss r = group.size() == 1 ? parallel.loss_backward(batch, loss, gen)
                                       : group_loss_backward(parallel, batch, loss, gen, group);
  // Checked before the update, so a NaN never reaches the weights.
  if (!std::isfinite(r.loss)) {
    throw NonFiniteLoss(
        fmt::format("the training loss is {}", std::isnan(r.loss) ? "NaN" : "infinite"));
  }
  if (clip > 0) {
    clip_grad_norm(opt.params(), clip, /*error_if_nonfinite=*/true, parallel.workers());
  }
  opt.step();
  return r;
}

namespace {

// Where a run is, besides its weights, optimizer and random state.
struct Position {
  std::int64_t step = 0, epoch = 0;
  std::int64_t next_batch = 0;  // in the epoch's plan
};

// Seconds of training, summed over the sessions of a resumed run.
class TrainingClock {
 public:
  void start(double before) {
    before_ = before;
    start_ = std::chrono::steady_clock::now();
  }
  double elapsed() const {
    return before_ +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  double before_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The best validation so far: its selection metric, and its loss (which breaks ties).
struct Best {
  double metric = 0;
  double loss = INFINITY;
};

// Target-token-weighted training loss since the last validation.
struct LossWindow {
  double sum = 0;
  std::int64_t tokens = 0;
  void add(const StepLoss& r) {
    sum += r.loss * static_cast<double>(r.tokens);
    tokens += r.tokens;
  }
  double mean() const { return tokens > 0 ? sum / static_cast<double>(tokens) : 0.0; }
};

// The lines of a metrics log up to `step` (a resumed run writes again what came after).
std::string metrics_up_to(const std::string& path, std::int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("step", std::int64_t{0}) <= step) kept += line + "\n";
  }
  return kept;
}

const std::string& extra_of(const TrainingState& st, const std::string& key,
                            const std::string& path) {
  const auto it = st.extra.find(key);
  if (it == st.extra.end()) {
    throw CheckpointError(fmt::format("checkpoint {}: metadata 'extra.{}' is missing", path, key));
  }
  return it->second;
}

// Adam, or AdamW (decoupled weight decay) when --weight-decay is above 0.
std::unique_ptr<Adam> make_optimizer(std::vector<Variable> params, const TrainOptions& o) {
  if (o.weight_decay > 0) {
    return std::make_unique<AdamW>(
        std::move(params),
        AdamWOptions{.lr = o.lr, .beta2 = o.adam_beta2, .weight_decay = o.weight_decay});
  }
  return std::make_unique<Adam>(std::move(params), AdamOptions{.lr = o.lr, .beta2 = o.adam_beta2});
}

// One run of train(): the loop and the named pieces around it, over the state they share.
class Training {
 public:
  Training(Seq2Seq& model, Generator& gen, const TrainData& data, const TrainOptions& options,
           const RunSetup& run, const TrainHooks& hooks);
  TrainOutcome run();

 private:
  void start_fresh();
  void resume();
  // A failure's message: the step, what went wrong, and the checkpoint to resume from.
  std::string stopped(std::int64_t step, const std::string& what) const;
  StepLoss checked_step(const Batch& b, const LossOptions& loss);
  void step(const Batch& b);
  void check_group() const;
  void check_replicas();
  bool out_of_time() const;
  double time_left() const;
  void stop_for_time();
  void validate();
  bool improves(const EvalResult& er) const;
  void save_best();
  void save_last();
  TrainingState state() const;
  double teacher_forcing() const;
  LrSchedule make_schedule() const;

  Seq2Seq& model_;
  Generator& gen_;
  const TrainData& data_;
  const TrainOptions& o_;
  const RunSetup& run_;
  const TrainHooks& hooks_;
  Collective& group_;
  bool writes_;  // rank 0: the run's files and the hooks are its alone
  std::unique_ptr<Adam> opt_;
  DataParallel parallel_;
  std::int64_t total_;  // steps
  LrSchedule schedule_;
  ReduceLROnPlateau plateau_;
  std::unique_ptr<ExponentialMovingAverage> ema_;
  NamedVariables last_tensors_;  // with a moving average, also "ema.<name>" for each average
  Position pos_;
  Best best_;
  LossWindow window_;
  std::int64_t last_valid_ = -1;  // step of the last validation
  std::int64_t last_saved_ = 0;   // step of last.safetensors
  std::string metrics_;           // metrics.jsonl's text
  TrainingClock clock_;
  double validation_seconds_ = 0;  // the last validation's, kept in hand under a time limit
  bool time_up_ = false;
  std::int64_t replica_checks_ = 0;
};

std::int64_t total_steps(const TrainData& data, const TrainOptions& o) {
  const auto batches = static_cast<std::int64_t>(data.train.epoch_plan(0).size());
  if (batches == 0) throw ValueError("train: the training data has no examples");
  if (data.valid.size() == 0) throw ValueError("train: the validation data has no examples");
  return o.steps > 0 ? o.steps : o.epochs * batches;
}

Training::Training(Seq2Seq& model, Generator& gen, const TrainData& data,
                   const TrainOptions& options, const RunSetup& run, const TrainHooks& hooks)
    : model_(model),
      gen_(gen),
      data_(data),
      o_(options),
      run_(run),
      hooks_(hooks),
      group_(run.group != nullptr ? *run.group : single_process()),
      writes_(group_.rank() == 0),
      opt_(make_optimizer(model.parameters(), options)),
      parallel_(model, options.threads),
      total_(total_steps(data, options)),
      schedule_(make_schedule()),
      plateau_({.factor = 0.5, .patience = 1, .min_lr = options.lr / 64}),
      last_tensors_(model.named_parameters()) {
  best_.metric = lower_is_better(o_.select_on) ? INFINITY : -INFINITY;
  opt_->set_threads(o_.threads);  // the update, clipping and averaging use the workers' cores too
  if (o_.ema > 0) {
    ema_ = std::make_unique<ExponentialMovingAverage>(model.parameters(), o_.ema);
    ema_->set_threads(o_.threads);
    const NamedVariables named = model.named_parameters();
    for (std::size_t k = 0; k < named.size(); ++k) {
      last_tensors_.emplace_back("ema." + named[k].first, Variable(ema_->averages()[k]));
    }
  }
}

LrSchedule Training::make_schedule() const {
  switch (o_.schedule) {
    case Schedule::cosine:
      return warmup_cosine(o_.lr, o_.warmup, total_, o_.lr / 50);
    case Schedule::inverse_sqrt:
      return warmup_inverse_sqrt(o_.lr, std::max<std::int64_t>(o_.warmup, 1));
    case Schedule::plateau:  // steps after each validation instead
    case Schedule::constant:
      return {};
  }
  return {};
}

TrainOutcome Training::run() {
  check_group();
  for (const std::string& f : {run_.files.best(), run_.files.last(), run_.files.metrics()}) {
    if (writes_) remove_stale_temporaries(f);  // left by a killed run
  }
  if (run_.resume) {
    resume();
    if (pos_.step >= total_ || time_up_) return {.steps = pos_.step, .already_complete = true};
  } else {
    start_fresh();
  }
  model_.train();
  while (pos_.step < total_ && !time_up_) {
    const auto plan = data_.train.epoch_plan(static_cast<std::uint64_t>(pos_.epoch));
    const auto batches = static_cast<std::int64_t>(plan.size());
    while (pos_.next_batch < batches && pos_.step < total_) {
      if ((time_up_ = out_of_time())) break;
      step(data_.train.make_batch(plan[static_cast<std::size_t>(pos_.next_batch++)]));
      if (o_.valid_every > 0 && pos_.step % o_.valid_every == 0) validate();
    }
    if (pos_.next_batch >= batches) {
      ++pos_.epoch;
      pos_.next_batch = 0;
      if (o_.valid_every <= 0) validate();
    }
  }
  if (time_up_) {
    stop_for_time();
  } else if (last_valid_ != pos_.step) {
    validate();
  }
  return {.steps = pos_.step,
          .already_complete = false,
          .time_up = time_up_,
          .replica_checks = replica_checks_};
}

// Every process of a group must split each batch alike: the same worker count everywhere.
void Training::check_group() const {
  if (group_.size() == 1) return;
  std::array<double, 2> threads{static_cast<double>(o_.threads), -static_cast<double>(o_.threads)};
  group_.max(threads);
  if (threads[0] != -threads[1]) {
    throw ValueError(
        fmt::format("--threads: the processes of the run differ ({} to {}); each "
                    "must have the same count",
                    -threads[1], threads[0]));
  }
}

// The weights' bytes hashed (FNV-1a) on every process; RuntimeError unless all agree.
void Training::check_replicas() {
  std::uint64_t h = 1469598103934665603ull;
  for (const Variable& p : opt_->params()) {
    const Tensor t = p.data().contiguous();
    const auto* bytes = reinterpret_cast<const unsigned char*>(t.data<float>());
    for (std::size_t i = 0; i < static_cast<std::size_t>(t.numel()) * sizeof(float); ++i) {
      h = (h ^ bytes[i]) * 1099511628211ull;
    }
  }
  // Each half is exact in a double; the maximum of x and of -x give the range over the group.
  const auto hi = static_cast<double>(h >> 32), lo = static_cast<double>(h & 0xffffffffu);
  std::array<double, 4> range{hi, lo, -hi, -lo};
  group_.max(range);
  if (range[0] != -range[2] || range[1] != -range[3]) {
    throw RuntimeError(
        fmt::format("step {}: the weights differ between the {} processes of the "
                    "run (rank {} hashes them to {:016x})",
                    pos_.step, group_.size(), group_.rank(), h));
  }
  ++replica_checks_;
}

// With a time limit, stepping stops while the last validation's duration is still in hand, so
// that one more validation ends within the limit. Over a group, the slowest clock decides for
// all, so that every process stops at the same step.
bool Training::out_of_time() const {
  if (o_.time_limit <= 0) return false;
  double used = clock_.elapsed() + validation_seconds_;
  group_.max(std::span<double>(&used, 1));
  return used >= o_.time_limit;
}

double Training::time_left() const {
  if (o_.time_limit <= 0) return -1;
  return std::max(0.0, o_.time_limit - clock_.elapsed() - validation_seconds_);
}

// The run's last validation, and checkpoints that say the time ran out (a resume with the same
// limit has nothing to do).
void Training::stop_for_time() {
  if (last_valid_ != pos_.step) {
    validate();
  } else {
    save_last();
  }
}

// A new run's directory holds an empty log and step-0 checkpoints from the start, so that a run
// killed before its first validation can be resumed too.
void Training::start_fresh() {
  if (writes_) save_text_file(run_.files.metrics(), metrics_);
  save_best();
  save_last();
}

void Training::resume() {
  const std::string& path = run_.files.last();
  const TrainingState st = load_checkpoint(path, last_tensors_, opt_.get());
  pos_ = {.step = st.step,
          .epoch = st.epoch,
          .next_batch = std::stoll(extra_of(st, "next_batch", path))};
  gen_.set_state(st.rng);
  best_.metric = std::stod(extra_of(st, "best", path));
  // Runs written before ties were broken by the loss did not keep it.
  if (st.extra.count("best_loss")) best_.loss = std::stod(st.extra.at("best_loss"));
  if (ema_) ema_->set_updates(std::stoll(extra_of(st, "ema_updates", path)));
  ScheduleState ps;
  for (const auto& [k, v] : st.extra) {
    if (k.rfind("plateau.", 0) == 0) ps[k.substr(8)] = std::stod(v);
  }
  plateau_.load_state(ps);
  if (st.extra.count("elapsed")) clock_.start(std::stod(st.extra.at("elapsed")));
  // A run the limit stopped is finished, unless config.json now gives it more time.
  time_up_ = st.extra.count("stopped_at_limit") && o_.time_limit > 0 &&
             std::stod(st.extra.at("stopped_at_limit")) >= o_.time_limit;
  last_valid_ = last_saved_ = pos_.step;        // checkpoints are written by validations
  if (pos_.step >= total_ || time_up_) return;  // a finished run: its files stay as they are
  metrics_ = metrics_up_to(run_.files.metrics(), pos_.step);
  if (writes_) save_text_file(run_.files.metrics(), metrics_);
}

double Training::teacher_forcing() const {
  if (o_.teacher_forcing_end < 0) return o_.teacher_forcing;
  return o_.teacher_forcing + (o_.teacher_forcing_end - o_.teacher_forcing) *
                                  static_cast<double>(pos_.step) / static_cast<double>(total_);
}

// train_step, with what a user needs when it fails: the step, and that the last checkpoint (the
// last validation's) is intact.
std::string Training::stopped(std::int64_t step, const std::string& what) const {
  return fmt::format(
      "step {} (epoch {}): {}\nthe last good checkpoint, {} (step {}), is intact; --resume "
      "continues from it (HINT: a lower --lr or --clip; --detect-anomaly names the first op "
      "that made a NaN or an infinity)",
      step, pos_.epoch, what, run_.files.last(), last_saved_);
}

StepLoss Training::checked_step(const Batch& b, const LossOptions& loss) {
  auto context = [&](const std::exception& e) { return stopped(pos_.step + 1, e.what()); };
  try {
    return train_step(parallel_, *opt_, b, loss, o_.clip, gen_, group_);
  } catch (const AnomalyError& e) {
    throw AnomalyError(context(e));
  } catch (const NonFiniteLoss& e) {
    throw NonFiniteLoss(context(e));
  } catch (const RuntimeError& e) {  // clip_grad_norm: a non-finite gradient norm
    throw NonFiniteLoss(context(e));
  }
}

void Training::step(const Batch& b) {
  if (schedule_) apply_schedule(schedule_, *opt_);
  const LossOptions loss{.teacher_forcing = teacher_forcing(),
                         .label_smoothing = o_.label_smoothing};
  const StepLoss r = checked_step(b, loss);
  if (ema_) ema_->update();
  ++pos_.step;
  if (run_.check_replicas) check_replicas();
  window_.add(r);
  if (writes_ && hooks_.on_step) {
    hooks_.on_step({.step = pos_.step,
                    .total = total_,
                    .epoch = pos_.epoch,
                    .lr = opt_->lr(),
                    .train_loss = window_.mean(),
                    .tokens = r.tokens,
                    .time_left = time_left()});
  }
}

// Decodes the validation split, logs a metrics line, keeps the best weights and steps the
// plateau schedule; then checkpoints.
void Training::validate() {
  const double started = clock_.elapsed();
  if (ema_) ema_->swap();  // validate (and keep as best) the averaged weights
  model_.eval();
  const EvalResult er = evaluate(model_, data_.valid, data_.target_vocab,
                                 {.beam = o_.beam, .max_len = o_.max_decode_len}, o_.valid_examples,
                                 o_.threads, group_);
  model_.train();
  if (!std::isfinite(er.loss)) {  // weights gone bad: keep them out of the checkpoints
    throw NonFiniteLoss(stopped(pos_.step, fmt::format("the validation loss is {}",
                                                       std::isnan(er.loss) ? "NaN" : "infinite")));
  }
  last_valid_ = pos_.step;
  const nlohmann::json line = {{"step", pos_.step},
                               {"epoch", pos_.epoch},
                               {"lr", opt_->lr()},
                               {"train_loss", window_.mean()},
                               {"valid", er.to_json()}};
  window_ = {};
  metrics_ += line.dump() + "\n";
  if (writes_) save_text_file(run_.files.metrics(), metrics_);
  const bool better = improves(er);
  if (better) best_ = {.metric = er.metric(o_.select_on), .loss = er.loss};
  if (o_.schedule == Schedule::plateau) plateau_.step(er.loss, *opt_);
  // The log line is written first: a run killed before last.safetensors is replaced resumes
  // from the older checkpoint and writes the line again.
  if (better) save_best();
  if (ema_) ema_->swap();  // back to the raw weights
  validation_seconds_ = clock_.elapsed() - started;
  save_last();
  if (writes_ && hooks_.on_validation) hooks_.on_validation(line);
}

// Better on the selection metric, or equal to the best and lower in loss.
bool Training::improves(const EvalResult& er) const {
  const double m = er.metric(o_.select_on);
  const bool better = lower_is_better(o_.select_on) ? m < best_.metric : m > best_.metric;
  return better || (m == best_.metric && er.loss < best_.loss);
}

// The model's weights as they are (the averages, while validation has them swapped in).
void Training::save_best() {
  if (writes_) save_checkpoint(run_.files.best(), model_.named_parameters(), nullptr, state());
}

// Everything a resume needs: raw weights, averages, optimizer, position, random state, best.
void Training::save_last() {
  if (writes_) save_checkpoint(run_.files.last(), last_tensors_, opt_.get(), state());
  last_saved_ = pos_.step;
}

TrainingState Training::state() const {
  TrainingState st{.step = pos_.step,
                   .epoch = pos_.epoch,
                   .rng = gen_.state(),
                   .config = run_.config_text,
                   .extra = {}};
  st.extra["next_batch"] = std::to_string(pos_.next_batch);
  st.extra["best"] = fmt::format("{:.17g}", best_.metric);
  st.extra["best_loss"] = fmt::format("{:.17g}", best_.loss);
  if (ema_) st.extra["ema_updates"] = std::to_string(ema_->updates());
  for (const auto& [k, v] : plateau_.state()) st.extra["plateau." + k] = fmt::format("{:.17g}", v);
  // Only under a time limit, so that other runs' checkpoints stay the same byte for byte.
  if (o_.time_limit > 0) st.extra["elapsed"] = fmt::format("{:.17g}", clock_.elapsed());
  if (time_up_) st.extra["stopped_at_limit"] = fmt::format("{:.17g}", o_.time_limit);
  return st;
}

}  // namespace

TrainOutcome train(Seq2Seq& model, Generator& gen, const TrainData& data,
                   const TrainOptions& options, const RunSetup& run, const TrainHooks& hooks) {
  options.check();
  return Training(model, gen, data, options, run, hooks).run();
}

}  // namespace seqgrad
