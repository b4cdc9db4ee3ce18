// System tests of nn + optim + checkpoints together: an MLP learns XOR, an LSTM learns to echo
// a sequence, and training resumed from a checkpoint repeats the uninterrupted run's losses
// step for step. Checkpoint files that do not fit the model are refused with the file's name.
// Then the seq2seq trainer: train_step itself, the options' names and ranges, and the best
// checkpoint's tie-break.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "python_runner.h"
#include "seq2seq/parallel.h"
#include "seq2seq/recipes.h"
#include "seq2seq/tasks.h"
#include "seq2seq/trainer.h"
#include "tensor/safetensors.h"

namespace seqgrad {
namespace {

struct Mlp : Module {
  Linear l1, l2;
  explicit Mlp(Generator& gen) : l1(2, 8, true, gen), l2(8, 1, true, gen) {
    register_module("l1", l1);
    register_module("l2", l2);
  }
  Variable operator()(const Variable& x) const { return l2(tanh(l1(x))); }
};

TEST_CASE("training: a small MLP learns XOR") {
  Generator gen(3);
  Mlp net(gen);
  SGD opt(net.parameters(), {.lr = 0.1, .momentum = 0.9});
  const Variable x(Tensor::from_list({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}));
  const Variable y(Tensor::from_list({0, 1, 1, 0}, {4, 1}));
  double loss = 1;
  for (int step = 0; step < 500; ++step) {
    const Variable diff = net(x) - y;
    const Variable l = mean(diff * diff);
    opt.zero_grad();
    l.backward();
    opt.step();
    loss = l.item();
  }
  CHECK(loss < 1e-3);
  const auto out = net(x).data().to_vector<float>();
  CHECK(out[0] < 0.2f);
  CHECK(out[1] > 0.8f);
  CHECK(out[2] > 0.8f);
  CHECK(out[3] < 0.2f);
}

// An LSTM reads a sequence of symbols and, at every step, outputs the symbol it read two steps
// earlier (an echo with a delay, so it must remember).
struct Echo : Module {
  static constexpr std::int64_t kSymbols = 6, kDelay = 2;
  Embedding embed;
  RNN lstm;
  Linear out;
  explicit Echo(Generator& gen)
      : embed(kSymbols, 8, -1, gen),
        lstm(RNNOptions{.cell = CellType::lstm, .input_size = 8, .hidden_size = 32}, gen),
        out(32, kSymbols, true, gen) {
    register_module("embed", embed);
    register_module("lstm", lstm);
    register_module("out", out);
  }
  // ids [B,T] -> loss over the steps t >= kDelay
  Variable loss(const Tensor& ids) const {
    const std::int64_t B = ids.size(0), T = ids.size(1);
    const Variable h = lstm.forward(embed(ids)).output;  // [B,T,H]
    const Variable logits = out(narrow(h, 1, kDelay, T - kDelay));
    const Tensor targets = ids.narrow(1, 0, T - kDelay).reshape({-1});
    return cross_entropy(reshape(logits, {B * (T - kDelay), kSymbols}), targets);
  }
};

Tensor random_ids(Generator& gen, std::int64_t B, std::int64_t T) {
  Tensor ids = Tensor::empty({B, T}, DType::i64);
  auto* p = ids.data<std::int64_t>();
  for (std::int64_t i = 0; i < B * T; ++i) {
    p[i] = static_cast<std::int64_t>(gen.next_u64() % Echo::kSymbols);
  }
  return ids;
}

TEST_CASE("training: an LSTM learns to echo a sequence") {
  Generator gen(5);
  Echo net(gen);
  Adam opt(net.parameters(), {.lr = 1e-2});
  double loss = 10;
  for (int step = 0; step < 300; ++step) {
    const Variable l = net.loss(random_ids(gen, 32, 12));
    opt.zero_grad();
    l.backward();
    clip_grad_norm(net.parameters(), 5.0);
    opt.step();
    loss = l.item();
  }
  CHECK(loss < 0.05);
  // held-out sequences
  Generator test_gen(99);
  NoGradGuard no_grad;
  CHECK(net.loss(random_ids(test_gen, 64, 20)).item() < 0.1);
}

// Runs `steps` training steps of the echo task from the generator's current state.
std::vector<double> train_echo(Echo& net, Adam& opt, Generator& gen, int steps) {
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    const Variable l = net.loss(random_ids(gen, 8, 10));
    opt.zero_grad();
    l.backward();
    opt.step();
    losses.push_back(l.item());
  }
  return losses;
}

TEST_CASE("checkpoint: resuming repeats the uninterrupted run's losses step for step") {
  testing::TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  // The uninterrupted run: 12 steps.
  Generator init_a(7), data_a(8);
  Echo a(init_a);
  Adam opt_a(a.parameters(), {.lr = 5e-3});
  const std::vector<double> straight = train_echo(a, opt_a, data_a, 12);

  // The interrupted run: 6 steps, save, then a fresh model (other weights) resumes.
  Generator init_b(7), data_b(8);
  Echo b(init_b);
  Adam opt_b(b.parameters(), {.lr = 5e-3});
  std::vector<double> resumed = train_echo(b, opt_b, data_b, 6);
  save_checkpoint(
      path, b.named_parameters(), &opt_b,
      {.step = 6, .epoch = 0, .rng = data_b.state(), .config = R"({"task":"echo"})", .extra = {}});

  Generator init_c(1234), data_c(0);
  Echo c(init_c);
  Adam opt_c(c.parameters(), {.lr = 1.0});
  const TrainingState st = load_checkpoint(path, c.named_parameters(), &opt_c);
  CHECK(st.step == 6);
  CHECK(st.config == R"({"task":"echo"})");
  CHECK(opt_c.lr() == doctest::Approx(5e-3));
  data_c.set_state(st.rng);
  const std::vector<double> rest = train_echo(c, opt_c, data_c, 6);
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  REQUIRE(resumed.size() == straight.size());
  for (std::size_t i = 0; i < straight.size(); ++i) {
    CAPTURE(i);
    CHECK(resumed[i] == straight[i]);  // bit for bit: same data, same arithmetic
  }
}

TEST_CASE("checkpoint: files that do not fit are refused with the file's name") {
  testing::TempDir dir;
  Generator gen(1);
  Mlp net(gen);
  Adam opt(net.parameters());
  const std::string path = dir.file("mlp.safetensors");
  save_checkpoint(path, net.named_parameters(), &opt,
                  {.step = 0, .epoch = 0, .rng = {}, .config = "{}", .extra = {}});

  // A model with another shape.
  struct Wider : Module {
    Linear l1, l2;
    explicit Wider(Generator& g) : l1(2, 9, true, g), l2(9, 1, true, g) {
      register_module("l1", l1);
      register_module("l2", l2);
    }
  } wider(gen);
  const std::string shape_message =
      path + ": parameter 'l1.weight' is float32[8,2] in the file but float32[9,2] in the model";
  CHECK_THROWS_WITH_AS(load_checkpoint(path, wider.named_parameters(), nullptr),
                       doctest::Contains(shape_message.c_str()), CheckpointError);
  // A model missing a parameter the file has.
  NamedVariables fewer = net.named_parameters();
  fewer.pop_back();
  CHECK_THROWS_WITH_AS(
      load_checkpoint(path, fewer, nullptr),
      doctest::Contains("holds parameter 'l2.bias', which the model does not have"),
      CheckpointError);
  // Another optimizer kind.
  SGD sgd(net.parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH_AS(load_checkpoint(path, net.named_parameters(), &sgd),
                       doctest::Contains("optimizer state does not fit"), CheckpointError);
  // A plain safetensors file that is not a checkpoint.
  save_safetensors(dir.file("plain.safetensors"), {{"l1.weight", Tensor::zeros({8, 2})}});
  CHECK_THROWS_WITH_AS(read_checkpoint_state(dir.file("plain.safetensors")),
                       doctest::Contains("metadata 'format' is missing"), CheckpointError);
  // A truncated file: refused by the safetensors loader, naming the file; the model is untouched.
  const auto before = net.l1.weight.data().to_vector<float>();
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 5);
  CHECK_THROWS_WITH_AS(load_checkpoint(path, net.named_parameters(), &opt),
                       doctest::Contains(path.c_str()), RuntimeError);
  CHECK(net.l1.weight.data().to_vector<float>() == before);
}

// A tiny reverse task and model for the trainer's tests.
struct TinyTask {
  DataSplits splits = make_task_splits("reverse", {200, 20, 0}, 3, 3, 5);
  Vocab source_vocab = build_source_vocab(splits.train, Tokenization::chars);
  Vocab target_vocab = build_target_vocab(splits.train, Tokenization::chars);
  Batcher train{splits.train, source_vocab, target_vocab, {.batch_size = 16, .seed = 3}};
  Batcher valid{splits.valid, source_vocab, target_vocab, {.batch_size = 16, .seed = 3}};
  ModelConfig config() const {
    return {.src_vocab = source_vocab.size(),
            .tgt_vocab = target_vocab.size(),
            .embed = 8,
            .hidden = 16,
            .dropout = 0.0};
  }
};

// What train_step takes, for the tiny task: a model in training mode, one worker, Adam, and the
// first batch.
struct StepSetup {
  TinyTask task;
  Generator gen{1};
  Seq2Seq model{task.config(), gen};
  DataParallel parallel{model, 1};
  Adam opt{model.parameters(), {.lr = 1e-2}};
  Batch b = task.train.make_batch(task.train.epoch_plan(0).front());
  StepSetup() { model.train(); }
};

TEST_CASE("train_step: one update lowers the batch's loss, moves every parameter, clips") {
  StepSetup s;
  auto& [task, gen, model, parallel, opt, b] = s;
  const auto before = model.parameters().front().data().clone().to_vector<float>();
  std::vector<double> losses;
  for (int i = 0; i < 20; ++i) {
    const StepLoss r = train_step(parallel, opt, b, {}, 0.5, gen);
    CHECK(r.tokens == b.target_tokens());
    // The step clipped the gradient it applied to norm 0.5 (it is still on the parameters).
    CHECK(grad_norm(opt.params()) <= doctest::Approx(0.5));
    losses.push_back(r.loss);
  }
  CHECK(opt.step_count() == 20);
  CHECK(losses.back() < 0.8 * losses.front());  // the same batch, 20 updates
  for (std::size_t i = 1; i < losses.size(); ++i) CHECK(losses[i] < losses[i - 1]);
  CHECK(model.parameters().front().data().to_vector<float>() != before);
}

TEST_CASE("train_step: a NaN stops the step before the update, anomaly mode names the op") {
  StepSetup s;
  auto& [task, gen, model, parallel, opt, b] = s;
  // A NaN made on purpose: one output-layer bias.
  Variable bias;
  for (const auto& [name, p] : model.named_parameters()) {
    if (name == "decoder.project.bias") bias = p;
  }
  REQUIRE(bias.defined());
  bias.data().data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  const auto weights = model.parameters().front().data().clone().to_vector<float>();
  CHECK_THROWS_WITH_AS(train_step(parallel, opt, b, {}, 5.0, gen),
                       doctest::Contains("the training loss is NaN"), NonFiniteLoss);
  CHECK(opt.step_count() == 0);
  CHECK(model.parameters().front().data().to_vector<float>() == weights);
  {
    DetectAnomalyGuard on;
    // The bias is added right after the output projection: that add is the first NaN.
    CHECK_THROWS_WITH_AS(train_step(parallel, opt, b, {}, 5.0, gen),
                         doctest::Contains("anomaly: the forward of add gave"), AnomalyError);
  }
  CHECK(opt.step_count() == 0);
}

TEST_CASE("train options: names parse both ways, unknown ones list the known") {
  for (const std::string& name : schedule_names()) {
    CHECK(schedule_name(parse_schedule(name)) == name);
  }
  for (const std::string& name : metric_names()) CHECK(metric_name(parse_metric(name)) == name);
  CHECK_THROWS_WITH_AS(parse_metric("bogus"),
                       "--select-on 'bogus': unknown (known: exact_match, token_accuracy, wer, "
                       "per, loss, perplexity)",
                       ValueError);
  CHECK_THROWS_WITH_AS(parse_schedule("cosin", "schedule"),
                       doctest::Contains("schedule 'cosin': unknown (known: plateau, constant"),
                       ValueError);
  CHECK(lower_is_better(Metric::wer));
  CHECK_FALSE(lower_is_better(Metric::exact_match));
  // config.json round trip, and its names checked as the command line's are.
  TrainOptions o;
  o.schedule = Schedule::inverse_sqrt;
  o.select_on = Metric::per;
  o.adam_beta2 = 0.98;
  o.weight_decay = 0.05;
  const TrainOptions back = TrainOptions::from_json(o.to_json());
  CHECK(back.adam_beta2 == 0.98);
  CHECK(back.weight_decay == 0.05);
  CHECK(back.schedule == Schedule::inverse_sqrt);
  CHECK(back.select_on == Metric::per);
  nlohmann::json j = o.to_json();
  j["select_on"] = "bogus";
  CHECK_THROWS_WITH_AS(TrainOptions::from_json(j), doctest::Contains("select_on 'bogus'"),
                       ValueError);
}

TEST_CASE("train options: every range is checked, naming the option") {
  auto message = [](auto edit) {
    TrainOptions o;
    edit(o);
    try {
      o.check();
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(message([](TrainOptions&) {}) == "(accepted)");
  CHECK(message([](TrainOptions& o) { o.epochs = 0; }) == "--epochs 0: must be at least 1");
  CHECK(message([](TrainOptions& o) { o.teacher_forcing = 2; }) ==
        "--teacher-forcing 2: must be in [0, 1]");
  CHECK(message([](TrainOptions& o) { o.teacher_forcing = NAN; }) ==
        "--teacher-forcing nan: must be in [0, 1]");
  CHECK(message([](TrainOptions& o) { o.lr = 0; }) == "--lr 0: must be a number above 0");
  CHECK(message([](TrainOptions& o) { o.adam_beta2 = 1; }) == "--adam-beta2 1: must be in [0, 1)");
  CHECK(message([](TrainOptions& o) { o.weight_decay = -0.1; }) ==
        "--weight-decay -0.1: must be at least 0 (0: off)");
  CHECK(message([](TrainOptions& o) { o.clip = -1; }) == "--clip -1: must be at least 0 (0: off)");
  CHECK(message([](TrainOptions& o) { o.label_smoothing = 1; }) ==
        "--label-smoothing 1: must be in [0, 1)");
  CHECK(message([](TrainOptions& o) { o.ema = 1; }) == "--ema 1: must be in [0, 1) (0: off)");
  CHECK(message([](TrainOptions& o) { o.beam = 0; }) == "--beam 0: must be at least 1");
  CHECK(message([](TrainOptions& o) { o.threads = 0; }) == "--threads 0: must be at least 1");
  CHECK(message([](TrainOptions& o) { o.teacher_forcing_end = 1.5; }) ==
        "--teacher-forcing-end 1.5: must be in [0, 1] (or -1: off)");
  CHECK(message([](TrainOptions& o) { o.steps = -1; }) ==
        "--steps -1: must be at least 0 (0: use --epochs)");
}

TEST_CASE("apply_recipe: G2P's settings for each arch, and what the user chose is kept") {
  struct Settings {
    ModelConfig model;
    TrainOptions train;
    std::string target_tokens = "chars";
    std::int64_t max_len = 12;
  };
  auto apply = [](const std::string& arch, const std::vector<std::string>& chosen) {
    Settings s;
    s.model.arch = arch;
    s.model.dropout = 0.5;  // stands for a value the user gave, when "dropout" is chosen
    const Chosen was_chosen = [&](std::string_view key) {
      return std::find(chosen.begin(), chosen.end(), key) != chosen.end();
    };
    apply_recipe("g2p", was_chosen, {s.model, s.train, s.target_tokens, s.max_len});
    return s;
  };
  const Settings rnn = apply("rnn", {});
  CHECK(rnn.target_tokens == "words");
  CHECK(rnn.model.layers == 2);
  CHECK(rnn.model.dropout == 0.2);
  CHECK(rnn.train.epochs == 20);
  CHECK(rnn.train.lr == 2e-3);
  CHECK(rnn.train.time_limit == 3600);
  CHECK(rnn.train.select_on == Metric::wer);
  CHECK(rnn.train.ema == 0.999);
  for (const std::string arch : {"transformer", "decoder-only"}) {
    CAPTURE(arch);
    const Settings t = apply(arch, {});
    CHECK(t.model.layers == 3);
    CHECK(t.model.ff == 512);
    CHECK(t.model.norm_first);
    CHECK(t.model.dropout == 0.0);
    CHECK(t.train.epochs == 20);
    CHECK(t.train.lr == 7e-4);
    CHECK(t.train.warmup == 1000);
    CHECK(t.train.time_limit == 3600);
    CHECK(t.train.ema == 0.9998);
  }
  const Settings mine = apply("transformer", {"dropout", "epochs", "ema"});
  CHECK(mine.model.dropout == 0.5);
  CHECK(mine.train.ema == TrainOptions{}.ema);
  CHECK(mine.train.epochs == TrainOptions{}.epochs);
  CHECK(mine.model.layers == 3);
  const Settings other = [] {  // a task without a recipe is left alone
    Settings s;
    apply_recipe("reverse", [](std::string_view) { return false; },
                 {s.model, s.train, s.target_tokens, s.max_len});
    return s;
  }();
  CHECK(other.train.epochs == TrainOptions{}.epochs);
  CHECK(other.model.layers == ModelConfig{}.layers);
}

TEST_CASE("train: a tie on the selection metric goes to the lower validation loss") {
  // A tiny model's first validations all decode nothing right (exact match 0) while the loss
  // falls: the best checkpoint must be the last of them, not the first.
  TinyTask task;
  testing::TempDir dir;
  Generator gen(2);
  Seq2Seq model(task.config(), gen);
  const TrainOptions o{.steps = 6, .lr = 1e-3, .schedule = Schedule::constant, .valid_every = 2};
  const RunSetup run{.files = {dir.path.string()}, .config_text = "{}", .resume = false};
  const TrainOutcome out =
      train(model, gen,
            {.train = task.train, .valid = task.valid, .target_vocab = task.target_vocab}, o, run);
  CHECK(out.steps == 6);
  std::vector<nlohmann::json> lines;
  std::ifstream in(run.files.metrics());
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 3);
  for (const auto& l : lines) REQUIRE(l.at("valid").at("exact_match") == 0.0);  // all tie
  REQUIRE(lines[2].at("valid").at("loss") < lines[0].at("valid").at("loss"));
  CHECK(read_checkpoint_state(run.files.best()).step == 6);
}

TEST_CASE("train options: a time limit is read as seconds, minutes or hours") {
  CHECK(parse_duration("90s") == 90);
  CHECK(parse_duration("45m") == 2700);
  CHECK(parse_duration("1.5h") == 5400);
  CHECK(parse_duration("2") == 120);  // a bare number: minutes
  for (const char* bad : {"", "0", "-1m", "m", "5x", "1h30m", "nan", "inf"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(parse_duration(bad), doctest::Contains("--time-limit"), ValueError);
  }
  CHECK_THROWS_WITH_AS(parse_duration("5x"),
                       "--time-limit \"5x\": must be a duration above 0, as 90s, 45m or 1.5h (a "
                       "bare number: minutes)",
                       ValueError);
  TrainOptions o;
  o.time_limit = -1;
  CHECK_THROWS_WITH_AS(o.check(), "--time-limit -1: must be at least 0 seconds (0: none)",
                       ValueError);
}

TEST_CASE("train: a time limit stops the run with a last validation, and a resume keeps it") {
  TinyTask task;
  testing::TempDir dir;
  const RunSetup fresh{.files = {dir.path.string()}, .config_text = "{}", .resume = false};
  const TrainData data{.train = task.train, .valid = task.valid, .target_vocab = task.target_vocab};
  TrainOptions o{.steps = 100'000'000, .lr = 1e-3, .schedule = Schedule::constant};
  o.valid_every = 50;
  o.time_limit = 0.3;
  Generator gen(2);
  Seq2Seq model(task.config(), gen);
  const TrainOutcome out = train(model, gen, data, o, fresh);
  CHECK(out.time_up);
  REQUIRE(out.steps > 0);
  REQUIRE(out.steps < o.steps);
  std::string last_line;
  std::ifstream in(fresh.files.metrics());
  for (std::string line; std::getline(in, line);) last_line = line;
  CHECK(nlohmann::json::parse(last_line).at("step") == out.steps);  // the last validation
  const TrainingState st = read_checkpoint_state(fresh.files.last());
  CHECK(st.step == out.steps);
  const double elapsed = std::stod(st.extra.at("elapsed"));  // kept for a resume
  CHECK(elapsed > 0);
  CHECK(elapsed < 30);
  CHECK(st.extra.at("stopped_at_limit") == "0.29999999999999999");

  RunSetup again = fresh;
  again.resume = true;
  Generator gen2(2);
  Seq2Seq resumed(task.config(), gen2);
  const TrainOutcome same = train(resumed, gen2, data, o, again);
  CHECK(same.already_complete);  // the same limit: nothing to do
  CHECK(same.steps == out.steps);

  o.time_limit = 0.6;  // more time, as config.json would give it
  const TrainOutcome more = train(resumed, gen2, data, o, again);
  CHECK_FALSE(more.already_complete);
  CHECK(more.time_up);
  CHECK(more.steps > out.steps);
  CHECK(std::stod(read_checkpoint_state(fresh.files.last()).extra.at("elapsed")) > elapsed);
}

TEST_CASE("train: --weight-decay trains with AdamW, shrinking the weights") {
  TinyTask task;
  const TrainData data{.train = task.train, .valid = task.valid, .target_vocab = task.target_vocab};
  auto weight_norm = [&](double decay) {
    testing::TempDir dir;
    Generator gen(2);
    Seq2Seq model(task.config(), gen);
    TrainOptions o{.steps = 4, .lr = 1e-3, .schedule = Schedule::constant};
    o.weight_decay = decay;
    const RunSetup run{.files = {dir.path.string()}, .config_text = "{}", .resume = false};
    train(model, gen, data, o, run);
    double sum = 0;
    for (const Variable& p : model.parameters()) {
      for (const double w : p.data().to_vector<double>()) sum += w * w;
    }
    return std::sqrt(sum);
  };
  const double plain = weight_norm(0.0);
  // lr * decay = 0.05: each of the 4 steps shrinks every weight by 5% before Adam's update of
  // about lr, so the norm ends near 0.95^4 = 0.81 of the plain run's.
  const double decayed = weight_norm(50.0);
  CHECK(decayed / plain == doctest::Approx(0.81).epsilon(0.05));
}

TEST_CASE("train: without a time limit the checkpoints hold no clock") {
  TinyTask task;
  testing::TempDir dir;
  Generator gen(2);
  Seq2Seq model(task.config(), gen);
  const TrainOptions o{.steps = 2, .lr = 1e-3, .schedule = Schedule::constant};
  const RunSetup run{.files = {dir.path.string()}, .config_text = "{}", .resume = false};
  const TrainOutcome out =
      train(model, gen,
            {.train = task.train, .valid = task.valid, .target_vocab = task.target_vocab}, o, run);
  CHECK_FALSE(out.time_up);
  CHECK(read_checkpoint_state(run.files.last()).extra.count("elapsed") == 0);
}

}  // namespace
}  // namespace seqgrad
