// Side-by-side benchmark of one seq2seq training step (forward + backward + Adam update) and of
// greedy decoding, seqgrad against PyTorch on the identical model: the same architecture
// (benchmarks/seq2seq_torch.py rebuilds it in PyTorch), the same weights (seqgrad's, handed over
// in a safetensors file), the same batch and the same thread count. Before timing, the two sides
// must agree on the parameter count, the initial loss and gradient norm; the greedy tokens are
// compared too. The two sides are timed in alternating rounds (seqgrad, torch, seqgrad, ...) of
// one run, the torch process answering commands on a pipe, so a slow phase of a shared machine
// hits both; figures are medians and the ratio is the one to quote.
//
//   bench_seq2seq                  both configurations (small, large), alternating rounds
//   bench_seq2seq --quick          smoke run: a tiny model, two short rounds
//   bench_seq2seq --seqgrad-only   no torch: our training steps only (for a profiler)
//   options: --config small|large|all  --threads N  --rounds R  --steps N  --script PATH
//
// Exit code: 0 after a run (speed is reported, not judged); 1 when the two sides disagree on the
// model (parameter count, initial loss, gradient norm) or the torch process fails; 2 on a bad
// argument.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#include <cblas.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "benchmarks/timing.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "seq2seq/model.h"
#include "seq2seq/search.h"
#include "tensor/matmul.h"
#include "tensor/safetensors.h"

extern char** environ;

namespace {

using seqgrad::Generator;
using seqgrad::ModelConfig;
using seqgrad::Seq2Seq;
using seqgrad::Tensor;
using seqgrad::bench::now_seconds;

// The logit bias given to </s> in the decoding copy of the model (both sides), so no hypothesis
// ends early and every greedy decode runs max_len = T decoder steps.
constexpr double kEosBias = -30.0;

struct BenchConfig {
  std::string name;
  std::int64_t vocab, embed, hidden, layers, batch, src_len, tgt_len;
  int rounds;  // alternating rounds per figure
  int steps;   // timed training steps (and decodes) per side per round, after one warm-up
};

struct Options {
  bool quick = false;
  bool seqgrad_only = false;
  std::string config = "all";
  int threads = 0;  // 0: OpenBLAS's own default
  int rounds = 0;   // 0: the configuration's
  int steps = 0;
  std::string script;
};

struct Batch {
  Tensor src, tgt_in, tgt_out;  // [B,S], [B,T], [B,T] int64, pad 0
  std::vector<std::int64_t> lengths;
};

// Source lengths in [S/2, S] (row 0 has S, so the batch is really S wide); targets of content
// length in [(T-1)/2, T-1], then <s> y for tgt_in and y </s> for tgt_out; tokens from 4.
Batch make_batch(const BenchConfig& c, Generator& gen) {
  const std::int64_t B = c.batch, S = c.src_len, T = c.tgt_len;
  auto draw = [&](std::int64_t lo, std::int64_t hi) {  // in [lo, hi]
    return lo + static_cast<std::int64_t>(gen.next_u64() % static_cast<std::uint64_t>(hi - lo + 1));
  };
  Batch b;
  b.src = Tensor::zeros({B, S}, seqgrad::DType::i64);
  b.tgt_in = Tensor::zeros({B, T}, seqgrad::DType::i64);
  b.tgt_out = Tensor::zeros({B, T}, seqgrad::DType::i64);
  auto* ps = b.src.data<std::int64_t>();
  auto* pi = b.tgt_in.data<std::int64_t>();
  auto* po = b.tgt_out.data<std::int64_t>();
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int64_t len = r == 0 ? S : draw(std::max<std::int64_t>(1, S / 2), S);
    b.lengths.push_back(len);
    for (std::int64_t i = 0; i < len; ++i) ps[r * S + i] = draw(4, c.vocab - 1);
    const std::int64_t n = draw(std::max<std::int64_t>(1, (T - 1) / 2), T - 1);
    pi[r * T] = seqgrad::kBosId;
    for (std::int64_t i = 0; i < n; ++i) po[r * T + i] = pi[r * T + i + 1] = draw(4, c.vocab - 1);
    po[r * T + n] = seqgrad::kEosId;
  }
  return b;
}

ModelConfig model_config(const BenchConfig& c) {
  return {.src_vocab = c.vocab,
          .tgt_vocab = c.vocab,
          .embed = c.embed,
          .hidden = c.hidden,
          .layers = c.layers,
          .cell = "lstm",
          .bidirectional = true,
          .dropout = 0.0,
          .attention = "concat",
          .style = "luong"};
}

// The tape behind a loss: its op nodes, and the memory their outputs hold (distinct storages,
// so views are not counted twice).
struct TapeCensus {
  std::int64_t nodes = 0;
  double mib = 0;
};

TapeCensus tape_census(const seqgrad::Variable& root) {
  std::unordered_set<const seqgrad::VarImpl*> seen;
  std::unordered_set<const seqgrad::Storage*> storages;
  std::vector<const seqgrad::VarImpl*> todo{root.impl().get()};
  TapeCensus c;
  while (!todo.empty()) {
    const seqgrad::VarImpl* v = todo.back();
    todo.pop_back();
    if (!seen.insert(v).second || v->is_leaf()) continue;
    ++c.nodes;
    if (storages.insert(v->data.storage().get()).second) {
      c.mib += static_cast<double>(v->data.storage()->nbytes()) / (1024.0 * 1024.0);
    }
    for (const auto& in : v->inputs) todo.push_back(in.get());
  }
  return c;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

// The torch side: seq2seq_torch.py --serve, fed commands on its stdin, answering one JSON line
// each on its stdout (its stderr is ours).
class TorchProcess {
 public:
  TorchProcess(const std::string& script, const std::string& weights, int threads) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      fail("pipe2 failed");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    const std::string thr = std::to_string(threads);
    std::vector<std::string> args = {"/usr/bin/python3", script, "--serve", "--weights", weights,
                                     "--threads",        thr};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(to_child[0]);
    ::close(from_child[1]);
    if (rc != 0) fail(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
    to_ = ::fdopen(to_child[1], "w");
    from_ = ::fdopen(from_child[0], "r");
  }
  TorchProcess(const TorchProcess&) = delete;
  TorchProcess& operator=(const TorchProcess&) = delete;
  ~TorchProcess() {
    std::fputs("quit\n", to_);
    std::fclose(to_);
    std::fclose(from_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  nlohmann::json read() {
    std::string line;
    for (int ch; (ch = std::fgetc(from_)) != EOF && ch != '\n';)
      line.push_back(static_cast<char>(ch));
    if (line.empty()) {
      fail(
          "the torch process ended without an answer (see its message above; HINT: it needs "
          "Debian's /usr/bin/python3 with python3-torch)");
    }
    return nlohmann::json::parse(line);
  }
  nlohmann::json request(const std::string& command) {
    if (std::fputs((command + "\n").c_str(), to_) < 0 || std::fflush(to_) != 0) {
      fail("cannot write to the torch process (it has exited)");
    }
    return read();
  }

 private:
  pid_t pid_ = 0;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

struct Samples {
  std::vector<double> ms;            // every timed call, in ms
  std::vector<double> round_median;  // one per round
};

double median(std::vector<double> v) {
  return seqgrad::bench::summarize(std::move(v)).median;
}

struct Row {
  std::string config, figure;
  Samples ours, theirs;
  int threads;
  std::string our_core, their_core;
};

void print_table(const std::vector<Row>& rows) {
  fmt::print(
      "\n== seqgrad vs PyTorch, identical model, weights and batch (medians of alternating "
      "rounds) ==\n"
      "ratio = seqgrad ms / torch ms = torch speed / seqgrad speed (above 1: seqgrad is "
      "slower);\n"
      "per-round = the same ratio within each round (min..max over rounds).\n");
  fmt::print("  {:<8} {:<14} {:>11} {:>11} {:>6} {:>13} {:>5} {:<18} {}\n", "config", "figure",
             "seqgrad ms", "torch ms", "ratio", "per-round", "thr", "core (ours/torch)", "n");
  for (const Row& r : rows) {
    std::vector<double> per_round;
    for (std::size_t i = 0; i < r.ours.round_median.size(); ++i) {
      per_round.push_back(r.ours.round_median[i] / r.theirs.round_median[i]);
    }
    const auto [lo, hi] = std::minmax_element(per_round.begin(), per_round.end());
    const double a = median(r.ours.ms), b = median(r.theirs.ms);
    fmt::print("  {:<8} {:<14} {:>11.2f} {:>11.2f} {:>6.2f} {:>13} {:>5} {:<18} {}\n", r.config,
               r.figure, a, b, a / b, fmt::format("{:.2f}..{:.2f}", *lo, *hi), r.threads,
               r.our_core + "/" + r.their_core, r.ours.ms.size());
  }
}

// Relative difference, with an absolute floor for values near 0.
double rel_diff(double a, double b) {
  return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), 1e-12});
}

void run_config(const BenchConfig& c, const Options& opt, int threads, std::vector<Row>& rows) {
  fmt::print(
      "\n== {}: vocab {}, embed {}, hidden {} (encoder {} per direction), layers {}, "
      "batch {}, source {}, target {} ==\n",
      c.name, c.vocab, c.embed, c.hidden, c.hidden / 2, c.layers, c.batch, c.src_len, c.tgt_len);
  Generator gen(1234);
  const ModelConfig mc = model_config(c);
  Seq2Seq model(mc, gen), decode_model(mc, gen);
  model.train();
  decode_model.eval();
  {  // the decoding copy: the same weights, and </s> never wins
    seqgrad::NoGradGuard no_grad;
    const auto src = model.named_parameters(), dst = decode_model.named_parameters();
    for (std::size_t i = 0; i < src.size(); ++i) {
      Tensor d = dst[i].second.data();
      d.copy_from(src[i].second.data());
    }
    Tensor bias = decode_model.parameter("decoder.project.bias").data();
    bias.select(0, seqgrad::kEosId).fill_(kEosBias);
  }
  const Batch batch = make_batch(c, gen);
  const seqgrad::SearchOptions search{.beam = 1, .max_len = c.tgt_len};

  // Our parity figures at the initial weights.
  seqgrad::LossResult r0 =
      model.loss(batch.src, batch.lengths, batch.tgt_in, batch.tgt_out, {}, gen);
  const TapeCensus tape = tape_census(r0.loss);
  r0.loss.backward();
  const double loss0 = r0.loss.item();
  const std::int64_t tokens0 = r0.tokens;
  const double norm0 = seqgrad::grad_norm(model.parameters());
  model.zero_grad();
  r0 = {};  // frees the tape
  const std::vector<seqgrad::Hypothesis> hyp0 =
      seqgrad::beam_search(decode_model, batch.src, batch.lengths, search);
  fmt::print("seqgrad: {} parameters, initial loss {:.6f} over {} tokens, gradient norm {:.6f}\n",
             model.num_parameters(), loss0, tokens0, norm0);

  std::unique_ptr<TorchProcess> torch;
  std::string torch_core = "-";
  const std::filesystem::path weights =
      std::filesystem::temp_directory_path() /
      fmt::format("bench_seq2seq-{}-{}.safetensors", ::getpid(), c.name);
  if (!opt.seqgrad_only) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& [name, p] : model.named_parameters())
      tensors.emplace_back("param." + name, p.data());
    tensors.emplace_back("batch.src", batch.src);
    tensors.emplace_back("batch.src_lengths", Tensor::from_vector(batch.lengths, {c.batch}));
    tensors.emplace_back("batch.tgt_in", batch.tgt_in);
    tensors.emplace_back("batch.tgt_out", batch.tgt_out);
    seqgrad::save_safetensors(weights.string(), tensors,
                              {{"config", mc.to_json().dump()},
                               {"decode_max_len", std::to_string(c.tgt_len)},
                               {"eos_bias", fmt::format("{}", kEosBias)}});
    struct RemoveFile {  // however the torch process fares
      std::filesystem::path path;
      ~RemoveFile() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
      }
    } remove_weights{weights};
    torch = std::make_unique<TorchProcess>(opt.script, weights.string(), threads);
    const nlohmann::json info = torch->read();  // sent once the file is read
    torch_core = info.at("corename").get<std::string>();
    const nlohmann::json& p = info.at("parity");
    fmt::print(
        "torch {}: {} parameters, initial loss {:.6f} over {} tokens, gradient norm {:.6f}\n",
        info.at("torch_version").get<std::string>(), info.at("params").get<std::int64_t>(),
        p.at("loss").get<double>(), p.at("tokens").get<std::int64_t>(),
        p.at("grad_norm").get<double>());
    fmt::print("threads: seqgrad OpenBLAS {}; torch {} (intra-op) + OpenBLAS {}\n", threads,
               info.at("torch_threads").get<int>(), info.at("openblas_threads").dump());
    if (info.at("params").get<std::int64_t>() != model.num_parameters()) {
      fail(fmt::format("parameter counts differ: seqgrad {}, torch {}", model.num_parameters(),
                       info.at("params").get<std::int64_t>()));
    }
    const double dl = rel_diff(loss0, p.at("loss").get<double>());
    const double dn = rel_diff(norm0, p.at("grad_norm").get<double>());
    fmt::print("parity: loss rel. diff {:.1e}, gradient norm rel. diff {:.1e}", dl, dn);
    if (dl > 1e-4 || dn > 1e-3) {
      fmt::print("\n");
      fail("the two models disagree (loss within 1e-4 and gradient norm within 1e-3 expected)");
    }
    // Greedy tokens: ours exclude </s>, torch's rows run to the step count.
    const auto& decoded = p.at("decoded");
    std::int64_t same = 0;
    for (std::size_t b = 0; b < hyp0.size(); ++b) {
      std::vector<std::int64_t> row = decoded.at(b).get<std::vector<std::int64_t>>();
      const auto eos = std::find(row.begin(), row.end(), seqgrad::kEosId);
      row.erase(eos, row.end());
      same += row == hyp0[b].tokens;
    }
    fmt::print(", greedy tokens identical in {}/{} rows ({} steps)\n", same, hyp0.size(),
               p.at("decode_steps").get<int>());
  }

  seqgrad::Adam adam(model.parameters(), {.lr = 1e-3});
  double our_loss = 0;
  // Where our step's time goes, recorded on every call (the clock reads cost nanoseconds).
  std::vector<double> forward_ms, backward_ms, adam_ms, teardown_ms;
  auto train_step = [&] {
    const double t0 = now_seconds();
    adam.zero_grad();
    seqgrad::LossResult r =
        model.loss(batch.src, batch.lengths, batch.tgt_in, batch.tgt_out, {}, gen);
    const double t1 = now_seconds();
    r.loss.backward();
    const double t2 = now_seconds();
    adam.step();
    const double t3 = now_seconds();
    our_loss = r.loss.item();
    r = {};  // the last reference to the tape: frees every node
    const double t4 = now_seconds();
    forward_ms.push_back((t1 - t0) * 1e3);
    backward_ms.push_back((t2 - t1) * 1e3);
    adam_ms.push_back((t3 - t2) * 1e3);
    teardown_ms.push_back((t4 - t3) * 1e3);
  };
  std::size_t decode_steps = 0;
  auto decode = [&] {
    const auto h = seqgrad::beam_search(decode_model, batch.src, batch.lengths, search);
    decode_steps = h.front().tokens.size();
  };
  const int rounds = opt.rounds > 0 ? opt.rounds : c.rounds;
  const int steps = opt.steps > 0 ? opt.steps : c.steps;
  // Each side's worker threads (OpenBLAS, OpenMP) may spin for a while after its round; the
  // pause lets them go idle before the other side is timed.
  const auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); };

  for (const char* figure : {"train step", "greedy decode"}) {
    const bool train = std::string_view(figure) == "train step";
    const std::function<void()> call = train ? std::function<void()>(train_step) : decode;
    Row row{c.name, figure, {}, {}, threads, seqgrad::blas_core_name(), torch_core};
    double their_last = 0;
    for (int round = 0; round < rounds; ++round) {
      call();  // warm-up
      std::vector<double> ms;
      for (int s = 0; s < steps; ++s) {
        const double t0 = now_seconds();
        call();
        ms.push_back((now_seconds() - t0) * 1e3);
      }
      row.ours.round_median.push_back(median(ms));
      row.ours.ms.insert(row.ours.ms.end(), ms.begin(), ms.end());
      if (!torch) continue;
      settle();
      const nlohmann::json a =
          torch->request(fmt::format("{} 1 {}", train ? "train" : "decode", steps));
      const auto tms = a.at("ms").get<std::vector<double>>();
      row.theirs.round_median.push_back(median(tms));
      row.theirs.ms.insert(row.theirs.ms.end(), tms.begin(), tms.end());
      their_last = train ? a.at("loss").get<double>() : a.at("steps").get<double>();
      settle();
    }
    fmt::print("{} ({} rounds x {} after 1 warm-up): seqgrad median {:.2f} ms", figure, rounds,
               steps, median(row.ours.ms));
    if (torch) fmt::print(", torch median {:.2f} ms", median(row.theirs.ms));
    if (train) {
      fmt::print("; loss after {} steps: seqgrad {:.5f}", rounds * (steps + 1), our_loss);
      if (torch) fmt::print(", torch {:.5f}", their_last);
      fmt::print(
          "\n  seqgrad step phases (medians): forward {:.2f} ms, backward {:.2f} ms, Adam {:.2f} "
          "ms, tape teardown {:.2f} ms",
          median(forward_ms), median(backward_ms), median(adam_ms), median(teardown_ms));
      fmt::print("\n  seqgrad tape: {} op nodes per step, their outputs hold {:.1f} MiB",
                 tape.nodes, tape.mib);
    } else {
      fmt::print("; decoder steps per decode: seqgrad {}", decode_steps);
      if (torch) fmt::print(", torch {}", their_last);
    }
    fmt::print("\n");
    if (torch) rows.push_back(std::move(row));
  }
}

int run(const Options& opt) {
  if (opt.threads > 0) openblas_set_num_threads(opt.threads);
  const int threads = openblas_get_num_threads();
  double load = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = 0;
    std::fclose(f);
  }
  const unsigned cores = std::thread::hardware_concurrency();
  fmt::print(
      "bench_seq2seq ({} run): OpenBLAS core {}, {} thread(s); load average {:.1f} on {} "
      "cores\n",
      opt.quick ? "--quick" : "full", seqgrad::blas_core_name(), threads, load, cores);
  if (threads > 1 && load + threads > cores) {
    fmt::print(
        "NOTE: the cores are oversubscribed; threads that spin while they wait (OpenMP in torch, "
        "OpenBLAS on both sides) then measure the contention more than the code. --threads 1 "
        "gives the fairer comparison on a busy machine.\n");
  }
  std::vector<BenchConfig> configs;
  if (opt.quick) {
    configs.push_back({"quick", 12, 8, 16, 1, 4, 5, 4, 2, 2});
  } else {
    if (opt.config == "small" || opt.config == "all")
      configs.push_back({"small", 40, 64, 256, 1, 64, 12, 10, 7, 10});
    if (opt.config == "large" || opt.config == "all")
      configs.push_back({"large", 40, 128, 512, 1, 128, 25, 25, 5, 4});
  }
  std::vector<Row> rows;
  for (const auto& c : configs) run_config(c, opt, threads, rows);
  if (!rows.empty()) print_table(rows);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);                // a dead torch process is reported, not fatal
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows in a log file as it happens
  Options opt;
  opt.script = (std::filesystem::path(__FILE__).parent_path() / "seq2seq_torch.py").string();
  auto usage = [&](std::string_view why) {
    fmt::print(stderr,
               "usage: {} [--quick] [--seqgrad-only] [--config small|large|all] [--threads N]\n"
               "       [--rounds R] [--steps N] [--script seq2seq_torch.py]\n  {}\n",
               argv[0], why);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    try {
      if (arg == "--quick") {
        opt.quick = true;
      } else if (arg == "--seqgrad-only") {
        opt.seqgrad_only = true;
      } else if (arg == "--config" && has_value) {
        opt.config = argv[++i];
        if (opt.config != "small" && opt.config != "large" && opt.config != "all") {
          return usage(fmt::format("unknown config: {}", opt.config));
        }
      } else if (arg == "--threads" && has_value) {
        opt.threads = std::stoi(argv[++i]);
      } else if (arg == "--rounds" && has_value) {
        opt.rounds = std::stoi(argv[++i]);
      } else if (arg == "--steps" && has_value) {
        opt.steps = std::stoi(argv[++i]);
      } else if (arg == "--script" && has_value) {
        opt.script = argv[++i];
      } else {
        return usage(fmt::format("unknown argument or missing value: {}", arg));
      }
    } catch (const std::exception&) {
      return usage(fmt::format("not a number after {}", arg));
    }
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_seq2seq: {}\n", e.what());
    return 1;
  }
}
