// The training loop. Shape legend: B batch, S source length, T target length, V vocabulary.
#include "seq2seq/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "autograd/ops.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/schedule.h"
#include "seq2seq/parallel.h"

namespace seqgrad {

nlohmann::json TrainOptions::to_json() const {
  return {{"epochs", epochs},
          {"steps", steps},
          {"lr", lr},
          {"clip", clip},
          {"teacher_forcing", teacher_forcing},
          {"teacher_forcing_end", teacher_forcing_end},
          {"label_smoothing", label_smoothing},
          {"ema", ema},
          {"schedule", schedule},
          {"warmup", warmup},
          {"valid_every", valid_every},
          {"valid_examples", valid_examples},
          {"beam", beam},
          {"max_decode_len", max_decode_len},
          {"select_on", select_on},
          {"threads", threads}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  TrainOptions o;
  try {
    o.epochs = j.at("epochs");
    o.steps = j.at("steps");
    o.lr = j.at("lr");
    o.clip = j.at("clip");
    o.teacher_forcing = j.at("teacher_forcing");
    o.teacher_forcing_end = j.at("teacher_forcing_end");
    o.label_smoothing = j.at("label_smoothing");
    o.ema = j.value("ema", 0.0);  // absent in run directories written before it existed
    o.schedule = j.at("schedule");
    o.warmup = j.at("warmup");
    o.valid_every = j.at("valid_every");
    o.valid_examples = j.at("valid_examples");
    o.beam = j.at("beam");
    o.max_decode_len = j.at("max_decode_len");
    o.select_on = j.at("select_on");
    o.threads = j.value("threads", 1);  // absent in run directories written before it existed
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(fmt::format("training options: {}", e.what()));
  }
  return o;
}

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = scores.to_json();
  j["loss"] = loss;
  j["perplexity"] = perplexity;
  return j;
}

EvalResult evaluate(const Seq2Seq& model, const Batcher& data, const Vocab& target_vocab,
                    const SearchOptions& search, std::int64_t max_examples, int workers) {
  return evaluate(std::vector<const Seq2Seq*>{&model}, data, target_vocab, search, max_examples,
                  workers);
}

EvalResult evaluate(const std::vector<const Seq2Seq*>& models, const Batcher& data,
                    const Vocab& target_vocab, const SearchOptions& search,
                    std::int64_t max_examples, int workers) {
  if (models.empty()) throw ValueError("evaluate: needs at least one model");
  NoGradGuard no_grad;
  Generator unused(0);
  EvalResult r;
  double total = 0;
  std::int64_t tokens = 0;
  std::vector<std::string> predictions(data.size());
  std::vector<bool> decoded(data.size(), false);
  for (const Batch& b : data.eval_batches()) {
    for (const Seq2Seq* model : models) {
      const LossResult l = model->loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, unused);
      total += l.loss.item() * static_cast<double>(l.tokens);
      tokens += l.tokens;
    }
    if (max_examples > 0 && static_cast<std::int64_t>(b.example_index.front()) >= max_examples) {
      continue;
    }
    SearchOptions s = search;
    if (s.max_len <= 0) {
      s.max_len = 2 * *std::max_element(b.src_lengths.begin(), b.src_lengths.end()) + 10;
    }
    const std::vector<Hypothesis> hyps =
        parallel_beam_search(models, b.src, b.src_lengths, s, workers);
    const Tokenization mode = data.options().target_tokenization;
    for (std::size_t i = 0; i < hyps.size(); ++i) {
      predictions[b.example_index[i]] = detokenize(target_vocab.decode(hyps[i].tokens), mode);
      decoded[b.example_index[i]] = true;
    }
  }
  r.loss = tokens > 0 ? total / static_cast<double>(tokens) : 0.0;
  r.perplexity = perplexity(r.loss);
  std::vector<Example> scored;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (!decoded[i]) continue;
    r.predictions.push_back(predictions[i]);
    scored.push_back(data.examples()[i]);
  }
  r.scores = score(r.predictions, scored, data.options().target_tokenization);
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string duration_text(double s) {
  const auto total = static_cast<long>(s);
  return total >= 3600 ? fmt::format("{}h{:02d}m", total / 3600, (total / 60) % 60)
                       : fmt::format("{}m{:02d}s", total / 60, total % 60);
}

// Keeps only the metrics lines up to `step` (a resumed run rewrites what came after).
void truncate_metrics(const std::string& path, std::int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (!line.empty() && nlohmann::json::parse(line, nullptr, false).value("step", 0) <= step) {
      kept += line + "\n";
    }
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

}  // namespace

void train(Seq2Seq& model, Generator& gen, const Batcher& train_data, const Batcher& valid,
           const Vocab& target_vocab, const TrainOptions& options, const RunFiles& files,
           const std::string& config_text, bool resume, const ValidationHook& on_validation) {
  const bool select_min = options.select_on == "loss" || options.select_on == "wer" ||
                          options.select_on == "per" || options.select_on == "perplexity";
  Adam opt(model.parameters(), {.lr = options.lr});
  DataParallel parallel(model, options.threads);
  ReduceLROnPlateau plateau({.factor = 0.5, .patience = 1, .min_lr = options.lr / 64});
  const auto batches_per_epoch = static_cast<std::int64_t>(train_data.epoch_plan(0).size());
  const std::int64_t total = options.steps > 0 ? options.steps : options.epochs * batches_per_epoch;
  LrSchedule schedule;
  if (options.schedule == "cosine") {
    schedule = warmup_cosine(options.lr, options.warmup, total, options.lr / 50);
  } else if (options.schedule == "inverse_sqrt") {
    schedule = warmup_inverse_sqrt(options.lr, std::max<std::int64_t>(options.warmup, 1));
  } else if (options.schedule != "plateau" && options.schedule != "constant") {
    throw ValueError(
        fmt::format("unknown schedule '{}' (known: plateau, constant, cosine, "
                    "inverse_sqrt)",
                    options.schedule));
  }

  // With a moving average, the last checkpoint also holds the averages, as "ema.<name>".
  std::unique_ptr<ExponentialMovingAverage> ema;
  NamedVariables last_tensors = model.named_parameters();
  if (options.ema > 0) {
    ema = std::make_unique<ExponentialMovingAverage>(model.parameters(), options.ema);
    const NamedVariables named = model.named_parameters();
    for (std::size_t k = 0; k < named.size(); ++k) {
      last_tensors.emplace_back("ema." + named[k].first, Variable(ema->averages()[k]));
    }
  }

  std::int64_t step = 0, epoch = 0, next_batch = 0;
  double best = select_min ? INFINITY : -INFINITY;
  if (resume) {
    const TrainingState st = load_checkpoint(files.last(), last_tensors, &opt);
    if (ema) ema->set_updates(std::stoll(st.extra.at("ema_updates")));
    step = st.step;
    epoch = st.epoch;
    gen.set_state(st.rng);
    next_batch = std::stoll(st.extra.at("next_batch"));
    best = std::stod(st.extra.at("best"));
    ScheduleState ps;
    for (const auto& [k, v] : st.extra) {
      if (k.rfind("plateau.", 0) == 0) ps[k.substr(8)] = std::stod(v);
    }
    plateau.load_state(ps);
    truncate_metrics(files.metrics(), step);
  } else {
    std::ofstream(files.metrics(), std::ios::trunc);
  }

  const bool tty = isatty(fileno(stdout)) != 0;
  const Clock::time_point start = Clock::now();
  Clock::time_point window = Clock::now();
  double window_loss = 0;
  std::int64_t window_tokens = 0, last_valid = -1;
  std::int64_t report_tokens = 0;  // since the last progress line, for tokens/s
  const std::int64_t start_step = step;

  auto checkpoint_state = [&] {
    TrainingState st{
        .step = step, .epoch = epoch, .rng = gen.state(), .config = config_text, .extra = {}};
    st.extra["next_batch"] = std::to_string(next_batch);
    st.extra["best"] = fmt::format("{:.17g}", best);
    if (ema) st.extra["ema_updates"] = std::to_string(ema->updates());
    for (const auto& [k, v] : plateau.state()) st.extra["plateau." + k] = fmt::format("{:.17g}", v);
    return st;
  };

  auto validate = [&] {
    last_valid = step;
    if (ema) ema->swap();  // validate (and keep as best) the averaged weights
    model.eval();
    const EvalResult er = evaluate(model, valid, target_vocab,
                                   {.beam = options.beam, .max_len = options.max_decode_len},
                                   options.valid_examples, options.threads);
    model.train();
    const double elapsed = seconds_since(start);
    nlohmann::json line = {{"step", step},
                           {"epoch", epoch},
                           {"lr", opt.lr()},
                           {"train_loss", window_tokens > 0 ? window_loss / window_tokens : 0.0},
                           {"elapsed_s", elapsed},
                           {"valid", er.to_json()}};
    window_loss = 0;
    window_tokens = 0;
    std::ofstream(files.metrics(), std::ios::app) << line.dump() << "\n";
    const double value = line.at("valid").at(options.select_on).get<double>();
    const bool better = select_min ? value < best : value > best;
    if (better) best = value;
    if (options.schedule == "plateau") plateau.step(er.loss, opt);
    if (better)
      save_checkpoint(files.best(), model.named_parameters(), nullptr, checkpoint_state());
    if (ema) ema->swap();
    save_checkpoint(files.last(), last_tensors, &opt, checkpoint_state());
    if (tty) std::fputs("\r\033[K", stdout);
    if (on_validation) on_validation(line);
  };

  model.train();
  while (step < total) {
    const auto plan = train_data.epoch_plan(static_cast<std::uint64_t>(epoch));
    for (; next_batch < static_cast<std::int64_t>(plan.size()) && step < total;) {
      const Batch b = train_data.make_batch(plan[static_cast<std::size_t>(next_batch)]);
      ++next_batch;
      if (schedule) apply_schedule(schedule, opt);
      double tf = options.teacher_forcing;
      if (options.teacher_forcing_end >= 0) {
        tf += (options.teacher_forcing_end - tf) * static_cast<double>(step) /
              static_cast<double>(total);
      }
      opt.zero_grad();
      const StepLoss r = parallel.loss_backward(
          b, {.teacher_forcing = tf, .label_smoothing = options.label_smoothing}, gen);
      if (options.clip > 0) clip_grad_norm(model.parameters(), options.clip);
      opt.step();
      if (ema) ema->update();
      ++step;
      window_loss += r.loss * static_cast<double>(r.tokens);
      window_tokens += r.tokens;
      report_tokens += r.tokens;
      const bool report = tty ? seconds_since(window) > 0.25 : step % 100 == 0;
      if (report || step == total) {
        const double elapsed = seconds_since(start);
        const double rate = static_cast<double>(step - start_step) / std::max(elapsed, 1e-9);
        const double eta = static_cast<double>(total - step) / std::max(rate, 1e-9);
        const double tok_s =
            static_cast<double>(report_tokens) / std::max(seconds_since(window), 1e-9);
        const std::string stats =
            fmt::format("step {}/{} epoch {} loss {:.4f} lr {:.2e} {:.0f} tok/s ETA {}", step,
                        total, epoch + 1, window_tokens > 0 ? window_loss / window_tokens : 0.0,
                        opt.lr(), tok_s, duration_text(eta));
        if (tty) {
          const int width = 24;
          const int filled = static_cast<int>(width * step / total);
          fmt::print("\r\033[K[{}{}] {}", std::string(filled, '#'),
                     std::string(width - filled, '.'), stats);
          std::fflush(stdout);
        } else {
          fmt::print("{}\n", stats);
          std::fflush(stdout);  // a log file should show progress as it happens
        }
        window = Clock::now();
        report_tokens = 0;
      }
      if (options.valid_every > 0 && step % options.valid_every == 0) validate();
    }
    if (next_batch >= static_cast<std::int64_t>(plan.size())) {
      ++epoch;
      next_batch = 0;
      if (options.valid_every <= 0) validate();
    }
  }
  if (last_valid != step) validate();
  if (tty) fmt::print("\n");
}

}  // namespace seqgrad
