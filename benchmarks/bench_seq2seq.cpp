// seqgrad against PyTorch on the identical seq2seq model, and against the machine's own limit.
// For each model variant (size, scorer, fixed or padded lengths, or the G2P default model on a
// real CMUdict batch) both sides get the same architecture (benchmarks/seq2seq_torch.py rebuilds
// it in PyTorch), the same weights (seqgrad's, handed over in a safetensors file) and the same
// batch; before timing they must agree on the parameter count, the initial loss and gradient norm
// (greedy and beam tokens are compared too). Then training steps (forward, backward, clip at 5,
// Adam), greedy decodes and beam-5 decodes are timed in alternating rounds of one run, seqgrad
// with 1 and 2 worker threads and PyTorch with four thread settings, so a slow phase of a shared
// machine hits every side. Figures are medians. The matmul-only time replays the gemm calls
// one seqgrad step issued (recorded by the tensor layer) as raw cblas_sgemm calls.
// The Transformer variants (--config transformer) are timed the same way against a twin built
// from torch.nn.Transformer's stacks: the training step (greedy decoding too in --quick; torch's
// decode re-runs the decoder on the prefix, far too slow for full-size rounds; no beam).
//
//   bench_seq2seq                   every variant (benchmarks/vs_pytorch runs this)
//   bench_seq2seq --quick           smoke run: a tiny model, one round, parity checked
//   bench_seq2seq --seqgrad-only    no torch (for a profiler)
//   options: --config small|medium|large|g2p|transformer|all  --rounds R  --steps N
//            --cmudict PATH  --script PATH
//
// Exit code: 0 after a run (speed is reported, not judged); 1 when the two sides disagree on the
// model or the torch process fails; 2 on a bad argument.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#include <cblas.h>
#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "benchmarks/gemm_replay.h"
#include "benchmarks/timing.h"
#include "benchmarks/torch_process.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "seq2seq/batch.h"
#include "seq2seq/g2p.h"
#include "seq2seq/model.h"
#include "seq2seq/parallel.h"
#include "seq2seq/search.h"
#include "tensor/allocator.h"
#include "tensor/safetensors.h"

namespace {

using seqgrad::Batch;
using seqgrad::Generator;
using seqgrad::ModelConfig;
using seqgrad::Seq2Seq;
using seqgrad::Tensor;
using seqgrad::bench::now_seconds;
using seqgrad::bench::TorchProcess;
using seqgrad::bench::TorchThreads;

// The logit bias given to </s> in the decoding copy of the model (both sides), so no hypothesis
// ends early and every decode runs max_len = T decoder steps.
constexpr double kEosBias = -30.0;
constexpr std::int64_t kBeam = 5;
constexpr double kClip = 5.0;
// Untimed calls before each side's timed ones in every round. Two, not one: our thread counts
// alternate in one process, and after a switch the storage cache needs a second step to hold the
// other share sizes (torch runs each setting in a process of its own, and gets the same two).
constexpr int kWarmup = 2;

struct Variant {
  std::string config;  // small, medium, large, g2p, transformer, quick
  std::string scorer;  // general, concat (the recurrent model's)
  bool padded = true;  // source and target lengths vary within the batch
  std::int64_t embed = 0, hidden = 0, layers = 1, batch = 0, len = 0;
  double dropout = 0;
  // The Transformer (arch "transformer"): d_model = hidden, `layers` each side, relu.
  bool transformer = false, norm_first = false;
  std::int64_t heads = 4, ff = 0;
  std::string label() const {
    if (transformer) {
      return fmt::format("{} {}-norm {} {}", config, norm_first ? "pre" : "post",
                         padded ? "padded" : "fixed", len);
    }
    return fmt::format("{} {} {}", config, scorer, padded ? "padded" : "fixed");
  }
};

struct Options {
  bool quick = false, seqgrad_only = false;
  std::string config = "all";
  int rounds = 3, steps = 3;
  std::string script, cmudict = "data/cmudict-en-us.dict";
};

double median(std::vector<double> v) {
  return v.empty() ? NAN : seqgrad::bench::summarize(std::move(v)).median;
}

double rel_diff(double a, double b) {
  return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), 1e-12});
}

// Synthetic batch: vocabularies 40 (source) and 45 (target); S = T = len. Padded: row 0 has the
// full length (so the batch really is len wide), the others a length in [len/2, len].
Batch synthetic_batch(const Variant& v, Generator& gen) {
  const std::int64_t B = v.batch, S = v.len, T = v.len;
  auto draw = [&](std::int64_t lo, std::int64_t hi) {
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
    const std::int64_t len = !v.padded || r == 0 ? S : draw(std::max<std::int64_t>(1, S / 2), S);
    b.src_lengths.push_back(len);
    b.example_index.push_back(static_cast<std::size_t>(r));
    for (std::int64_t i = 0; i < len; ++i) ps[r * S + i] = draw(4, 39);
    const std::int64_t n =
        !v.padded || r == 0 ? T - 1 : draw(std::max<std::int64_t>(1, (T - 1) / 2), T - 1);
    pi[r * T] = seqgrad::kBosId;
    for (std::int64_t i = 0; i < n; ++i) po[r * T + i] = pi[r * T + i + 1] = draw(4, 44);
    po[r * T + n] = seqgrad::kEosId;
  }
  return b;
}

// A real training batch of the G2P task, as `seqgrad train --task g2p` draws them (epoch 0 of
// seed 1): of the first 101 batches, the one of median source width; with the vocabulary sizes
// the training split implies.
struct RealBatch {
  Batch batch;
  std::int64_t src_vocab = 0, tgt_vocab = 0;
};
RealBatch g2p_batch(const std::string& cmudict, std::int64_t batch_size) {
  const seqgrad::DataSplits d = seqgrad::split_g2p(seqgrad::read_cmudict(cmudict));
  const auto words = seqgrad::Tokenization::words, chars = seqgrad::Tokenization::chars;
  const seqgrad::Vocab sv = seqgrad::build_source_vocab(d.train, chars);
  const seqgrad::Vocab tv = seqgrad::build_target_vocab(d.train, words);
  const seqgrad::Batcher batcher(d.train, sv, tv,
                                 {.batch_size = batch_size,
                                  .source_tokenization = chars,
                                  .target_tokenization = words,
                                  .seed = 1});
  const auto plan = batcher.epoch_plan(0);
  std::vector<std::pair<std::int64_t, std::size_t>> widths;  // (source width, batch)
  for (std::size_t i = 0; i < std::min<std::size_t>(101, plan.size()); ++i) {
    widths.emplace_back(batcher.make_batch(plan[i]).src.size(1), i);
  }
  std::sort(widths.begin(), widths.end());
  return {batcher.make_batch(plan[widths[widths.size() / 2].second]), sv.size(), tv.size()};
}

ModelConfig model_config(const Variant& v, std::int64_t src_vocab, std::int64_t tgt_vocab) {
  if (v.transformer) {
    return {.arch = "transformer",
            .src_vocab = src_vocab,
            .tgt_vocab = tgt_vocab,
            .hidden = v.hidden,
            .layers = v.layers,
            .dropout = v.dropout,
            .heads = v.heads,
            .ff = v.ff,
            .norm_first = v.norm_first,
            .activation = "relu",
            .positions = "sinusoidal"};
  }
  return {.src_vocab = src_vocab,
          .tgt_vocab = tgt_vocab,
          .embed = v.embed,
          .hidden = v.hidden,
          .layers = v.layers,
          .cell = "lstm",
          .bidirectional = true,
          .dropout = v.dropout,
          .attention = v.scorer,
          .style = "luong"};
}

// The process's peak resident memory since the last reset_peak(), MiB (Linux's VmHWM).
double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return NAN;
}
// Also hands the freed heap back to the system first, so one variant's peak is not an earlier
// one's memory still mapped.
void reset_peak() {
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
}

// One timed figure of every side: our two thread counts, then each torch setting.
struct Figure {
  std::string name;
  double matmul_ms = NAN;                   // its products replayed as raw sgemm
  std::vector<std::vector<double>> ours;    // [threads index] samples, ms
  std::vector<std::vector<double>> theirs;  // [torch setting] samples, ms
};

struct VariantResult {
  Variant v;
  std::vector<Figure> figures;
  double matmul_ms = NAN, gflop = 0, tiny_gflop = 0;
  double greedy_matmul_ms = NAN, beam_matmul_ms = NAN;  // the decodes' own products, replayed
  std::int64_t gemm_calls = 0, tiny_calls = 0;
  double our_rss = NAN, their_rss = NAN;
  double our_tensors =
      NAN;  // MiB of tensor storage in use at the variant's peak (the cache's count)
  std::string their_core = "-";
};

const std::vector<TorchThreads>& torch_settings() {
  static const std::vector<TorchThreads> s = {
      {"1", 1, 1, false}, {"2", 2, 2, false}, {"1+2blas", 1, 2, false}, {"2 passive", 2, 2, true}};
  return s;
}
constexpr std::array<int, 2> kOurThreads = {1, 2};

// Compares the torch twin's parity figures with ours; throws when the models disagree.
void check_parity(const nlohmann::json& info, std::int64_t params, double loss, double norm,
                  const std::vector<seqgrad::Hypothesis>& greedy,
                  const std::vector<seqgrad::Hypothesis>& beam) {
  const nlohmann::json& p = info.at("parity");
  if (info.at("params").get<std::int64_t>() != params) {
    throw std::runtime_error(fmt::format("parameter counts differ: seqgrad {}, torch {}", params,
                                         info.at("params").get<std::int64_t>()));
  }
  const double dl = rel_diff(loss, p.at("loss").get<double>());
  const double dn = rel_diff(norm, p.at("grad_norm").get<double>());
  std::int64_t same_greedy = 0, same_beam = 0;
  std::string greedy_line = "greedy not compared";  // torch's uncached Transformer decode is slow
  if (p.contains("decoded")) {
    const auto& decoded = p.at("decoded");
    for (std::size_t b = 0; b < greedy.size(); ++b) {
      std::vector<std::int64_t> row = decoded.at(b).get<std::vector<std::int64_t>>();
      row.erase(std::find(row.begin(), row.end(), seqgrad::kEosId), row.end());
      same_greedy += row == greedy[b].tokens;
    }
    greedy_line = fmt::format("greedy {}/{}", same_greedy, greedy.size());
  }
  std::string beam_line;  // the Transformer twin decodes greedily only
  if (info.contains("beam_parity")) {
    const auto& beamed = info.at("beam_parity").at("tokens");
    for (std::size_t b = 0; b < beam.size(); ++b)
      same_beam += beamed.at(b).get<std::vector<std::int64_t>>() == beam[b].tokens;
    beam_line = fmt::format(", beam-5 {}/{}", same_beam, beam.size());
  }
  fmt::print(
      "  parity with torch {}: loss rel. diff {:.1e}, gradient norm {:.1e}; identical tokens: "
      "{}{}\n",
      info.at("torch_version").get<std::string>(), dl, dn, greedy_line, beam_line);
  if (dl > 1e-4 || dn > 1e-3) {
    throw std::runtime_error(
        "the two models disagree (loss within 1e-4 and gradient norm within 1e-3 expected)");
  }
}

// Our side of a variant: the model being trained, a decoding copy with the </s> bias, Adam.
struct OurSide {
  Generator gen{1234};
  ModelConfig mc;
  Seq2Seq model, decode_model;
  Batch batch;
  seqgrad::Adam adam;
  std::vector<std::unique_ptr<seqgrad::DataParallel>> parallel;  // one per thread count
  double last_loss = 0;

  OurSide(const ModelConfig& config, Batch b)
      : mc(config),
        model(mc, gen),
        decode_model(mc, gen),
        batch(std::move(b)),
        adam(model.parameters(), {.lr = 1e-3}) {
    seqgrad::NoGradGuard no_grad;
    const auto src = model.named_parameters(), dst = decode_model.named_parameters();
    for (std::size_t i = 0; i < src.size(); ++i) {
      Tensor d = dst[i].second.data();
      d.copy_from(src[i].second.data());
    }
    const bool transformer = mc.arch == "transformer";
    Tensor bias =
        decode_model.parameter(transformer ? "generator.bias" : "decoder.project.bias").data();
    bias.select(0, seqgrad::kEosId).fill_(kEosBias);
    decode_model.eval();
    for (int t : kOurThreads) parallel.push_back(std::make_unique<seqgrad::DataParallel>(model, t));
  }
  std::int64_t max_len() const { return batch.tgt_out.size(1); }
  void train_step(std::size_t threads_index) {
    adam.zero_grad();
    const seqgrad::StepLoss r = parallel[threads_index]->loss_backward(batch, {}, gen);
    const int threads = kOurThreads[threads_index];  // as the trainer: the update uses them too
    seqgrad::clip_grad_norm(model.parameters(), kClip, false, threads);
    adam.set_threads(threads);
    adam.step();
    last_loss = r.loss;
  }
  void decode(std::size_t threads_index, std::int64_t beam) {
    (void)seqgrad::parallel_beam_search({&decode_model}, batch.src, batch.src_lengths,
                                        {.beam = beam, .max_len = max_len()},
                                        kOurThreads[threads_index]);
  }
};

// The variant's batch: synthetic, or a real G2P one (whose vocabulary sizes it sets).
Batch variant_batch(const Variant& v, const Options& opt, std::int64_t& sv, std::int64_t& tv) {
  if (v.config != "g2p") {
    Generator g(99);
    return synthetic_batch(v, g);
  }
  RealBatch rb = g2p_batch(opt.cmudict, v.batch);
  sv = rb.src_vocab;
  tv = rb.tgt_vocab;
  return std::move(rb.batch);
}

// Our figures at the initial weights (dropout off) to compare with torch's, and the gemm calls
// of that one forward and backward.
struct Parity {
  double loss = 0, norm = 0;
  std::vector<seqgrad::Hypothesis> greedy, beam;
  std::vector<seqgrad::GemmCall> gemms, greedy_gemms, beam_gemms;
};
Parity our_parity(OurSide& ours, bool with_beam) {
  const Batch& b = ours.batch;
  Parity p;
  ours.model.eval();
  {
    seqgrad::GemmRecording rec;
    seqgrad::LossResult r =
        ours.model.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, ours.gen);
    r.loss.backward();
    p.loss = r.loss.item();
    p.norm = seqgrad::grad_norm(ours.model.parameters());
    p.gemms = rec.calls();
  }
  ours.model.zero_grad();
  ours.model.train();
  {
    seqgrad::GemmRecording rec;
    p.greedy = seqgrad::beam_search(ours.decode_model, b.src, b.src_lengths,
                                    {.beam = 1, .max_len = ours.max_len()});
    p.greedy_gemms = rec.calls();
  }
  if (with_beam) {
    seqgrad::GemmRecording rec;
    p.beam = seqgrad::beam_search(ours.decode_model, b.src, b.src_lengths,
                                  {.beam = kBeam, .max_len = ours.max_len()});
    p.beam_gemms = rec.calls();
  }
  fmt::print("  seqgrad: {} parameters, initial loss {:.6f}, gradient norm {:.6f}\n",
             ours.model.num_parameters(), p.loss, p.norm);
  return p;
}

// One torch process per thread setting (only the first in a quick run), all reading our weights
// and batch from a temporary safetensors file.
std::vector<std::unique_ptr<TorchProcess>> start_torch(const OurSide& ours, const Variant& v,
                                                       const Options& opt) {
  const Batch& b = ours.batch;
  const std::filesystem::path weights =
      std::filesystem::temp_directory_path() /
      fmt::format("bench_seq2seq-{}-{}.safetensors", ::getpid(), v.config);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, p] : ours.model.named_parameters())
    tensors.emplace_back("param." + name, p.data());
  tensors.emplace_back("batch.src", b.src);
  tensors.emplace_back("batch.src_lengths", Tensor::from_vector(b.src_lengths, {b.size()}));
  tensors.emplace_back("batch.tgt_in", b.tgt_in);
  tensors.emplace_back("batch.tgt_out", b.tgt_out);
  seqgrad::save_safetensors(weights.string(), tensors,
                            {{"config", ours.mc.to_json().dump()},
                             {"decode_max_len", std::to_string(ours.max_len())},
                             {"eos_bias", fmt::format("{}", kEosBias)},
                             {"parity_decode", v.transformer && !opt.quick ? "0" : "1"}});
  struct RemoveFile {  // once every process has read it, however they fare
    std::filesystem::path path;
    ~RemoveFile() {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  } remove_weights{weights};
  std::vector<std::unique_ptr<TorchProcess>> torch;
  for (const TorchThreads& t : torch_settings()) {
    torch.push_back(std::make_unique<TorchProcess>(opt.script, weights.string(), t));
    if (opt.quick) break;
  }
  return torch;
}

// A gemm list replayed as raw sgemm calls: the median of 7 passes, ms.
double replay_ms(seqgrad::bench::GemmReplay& replay) {
  std::vector<double> passes;
  for (int i = 0; i < 7; ++i) passes.push_back(replay.run() * 1e3);
  return median(passes);
}

// The matmul-only times: the step's gemm list replayed into `res`, and the decodes'.
void time_matmul_only(const Parity& parity, VariantResult& res) {
  seqgrad::bench::GemmReplay greedy(parity.greedy_gemms), beam(parity.beam_gemms);
  res.greedy_matmul_ms = replay_ms(greedy);
  res.beam_matmul_ms = replay_ms(beam);
  seqgrad::bench::GemmReplay replay(parity.gemms);
  res.matmul_ms = replay_ms(replay);
  res.gflop = replay.gflop;
  res.tiny_gflop = replay.tiny_gflop;
  res.gemm_calls = static_cast<std::int64_t>(replay.calls.size());
  res.tiny_calls = replay.tiny;
  fmt::print(
      "  one step's products: {} gemm calls, {:.2f} GFLOP, raw sgemm {:.2f} ms ({:.0f} "
      "GFLOP/s); {} tiny products ({:.3f} GFLOP) on SIMD loops. Largest:\n{}",
      res.gemm_calls, res.gflop, res.matmul_ms, res.gflop / res.matmul_ms * 1e3, res.tiny_calls,
      res.tiny_gflop, replay.top_shapes(5));
  fmt::print("  decoding's products: greedy {} gemm calls, raw sgemm {:.2f} ms",
             greedy.calls.size(), res.greedy_matmul_ms);
  if (!beam.calls.empty())
    fmt::print("; beam-5 {}, {:.2f} ms", beam.calls.size(), res.beam_matmul_ms);
  fmt::print("\n");
}

// One figure in alternating rounds: our thread counts, then each torch process; `ours` runs one
// call at thread index t, `command` asks torch for a warm-up and opt.steps timed calls.
Figure time_figure(const char* name, const std::string& command,
                   const std::function<void(std::size_t)>& ours,
                   std::vector<std::unique_ptr<TorchProcess>>& torch, const Options& opt) {
  const auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(400)); };
  Figure f{name, NAN, std::vector<std::vector<double>>(kOurThreads.size()),
           std::vector<std::vector<double>>(torch.size())};
  for (int round = 0; round < opt.rounds; ++round) {
    for (std::size_t t = 0; t < kOurThreads.size(); ++t) {
      for (int i = 0; i < kWarmup; ++i) ours(t);
      for (int i = 0; i < opt.steps; ++i) {
        const double t0 = now_seconds();
        ours(t);
        f.ours[t].push_back((now_seconds() - t0) * 1e3);
      }
      settle();
    }
    for (std::size_t k = 0; k < torch.size(); ++k) {
      const nlohmann::json a = torch[k]->request(command);
      for (double ms : a.at("ms").get<std::vector<double>>()) f.theirs[k].push_back(ms);
      settle();
    }
  }
  fmt::print("  {}: seqgrad 1/2 threads {:.2f} / {:.2f} ms", name, median(f.ours[0]),
             median(f.ours[1]));
  for (std::size_t k = 0; k < torch.size(); ++k) {
    fmt::print("; torch {} {:.2f}", torch_settings()[k].name, median(f.theirs[k]));
  }
  fmt::print("\n");
  return f;
}

VariantResult run_variant(const Variant& v, const Options& opt) {
  VariantResult res;
  res.v = v;
  seqgrad::storage_cache_clear();
  reset_peak();
  std::int64_t sv = 40, tv = 45;
  Batch batch = variant_batch(v, opt, sv, tv);
  OurSide ours(model_config(v, sv, tv), std::move(batch));
  const Batch& b = ours.batch;
  if (v.transformer) {
    fmt::print(
        "\n== {}: d_model {}, {} heads, feed-forward {}, {}+{} layers, {}, relu, dropout {}, "
        "batch {}, source {} x target {}, vocab {} -> {}, {} target tokens ==\n",
        v.label(), v.hidden, v.heads, v.ff, v.layers, v.layers,
        v.norm_first ? "pre-norm" : "post-norm", v.dropout, b.size(), b.src.size(1),
        b.tgt_out.size(1), sv, tv, b.target_tokens());
  } else {
    fmt::print(
        "\n== {}: embed {}, hidden {} (encoder {} per direction), layers {}, dropout {}, batch "
        "{}, source {} x target {}, vocab {} -> {}, {} target tokens ==\n",
        v.label(), v.embed, v.hidden, v.hidden / 2, v.layers, v.dropout, b.size(), b.src.size(1),
        b.tgt_out.size(1), sv, tv, b.target_tokens());
  }

  const Parity parity = our_parity(ours, !v.transformer);
  std::vector<std::unique_ptr<TorchProcess>> torch;
  if (!opt.seqgrad_only) {
    torch = start_torch(ours, v, opt);
    const nlohmann::json& info = torch.front()->info();
    res.their_core = info.at("corename").get<std::string>();
    check_parity(info, ours.model.num_parameters(), parity.loss, parity.norm, parity.greedy,
                 parity.beam);
  }
  time_matmul_only(parity, res);

  const int steps = opt.steps;
  res.figures.push_back(time_figure(
      "train step", fmt::format("train {} {}", kWarmup, steps),
      [&](std::size_t t) { ours.train_step(t); }, torch, opt));
  res.figures[0].matmul_ms = res.matmul_ms;
  // torch's Transformer decode re-runs the decoder on the prefix (about 10 s a decode at length
  // 30 and batch 64): timed only at the quick run's sizes.
  if (!v.transformer || opt.quick) {
    res.figures.push_back(time_figure(
        "greedy decode", fmt::format("decode {} {}", kWarmup, steps),
        [&](std::size_t t) { ours.decode(t, 1); }, torch, opt));
    res.figures[1].matmul_ms = res.greedy_matmul_ms;
  }
  if (!v.transformer) {  // the Transformer twin has no beam search
    res.figures.push_back(time_figure(
        "beam-5 decode", fmt::format("beam {} {} {}", kWarmup, steps, kBeam),
        [&](std::size_t t) { ours.decode(t, kBeam); }, torch, opt));
    res.figures[2].matmul_ms = res.beam_matmul_ms;
  }
  res.our_rss = peak_rss_mib();
  res.our_tensors =
      static_cast<double>(seqgrad::storage_cache_stats().peak_in_use) / (1024.0 * 1024.0);
  if (!torch.empty())
    res.their_rss = torch.front()->request("rss").at("peak_rss_mib").get<double>();
  return res;
}

double best_of(const std::vector<std::vector<double>>& sides) {
  double best = INFINITY;
  for (const auto& s : sides) best = std::min(best, median(s));
  return best;
}

void print_tables(const std::vector<VariantResult>& results, bool with_torch) {
  fmt::print(
      "\n== seqgrad vs PyTorch: medians in ms (OpenBLAS core: seqgrad {}, torch {}) ==\n"
      "speed-up = torch ms / seqgrad ms (above 1: seqgrad is faster); best = each side's "
      "fastest thread setting; 2/1 = seqgrad's own 1-thread time over its 2-thread time; "
      "ceiling = torch 1 / the figure's matmul-only time, the 1-thread speed-up if all but the "
      "products were free. Transformer greedy decode: seqgrad steps with its key/value cache, "
      "torch re-runs nn.TransformerDecoder on the whole prefix each step (torch.nn keeps no "
      "cache).\n",
      seqgrad::blas_core_name(), results.empty() ? "-" : results.front().their_core);
  fmt::print(
      "| variant | figure | seqgrad 1 | seqgrad 2 | 2/1 | torch 1 | torch 2 | torch 1+2blas | "
      "torch 2 passive | speed-up 1 thread | speed-up best | ceiling 1 thread |\n");
  fmt::print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const VariantResult& r : results) {
    for (const Figure& f : r.figures) {
      const double o1 = median(f.ours[0]), o2 = median(f.ours[1]);
      std::string theirs;
      for (std::size_t k = 0; k < torch_settings().size(); ++k) {
        theirs += k < f.theirs.size() ? fmt::format(" {:.1f} |", median(f.theirs[k])) : " - |";
      }
      const double t1 = with_torch ? median(f.theirs[0]) : NAN;
      fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.2f} |{} {:.2f} | {:.2f} | {:.2f} |\n",
                 r.v.label(), f.name, o1, o2, o1 / o2, theirs, t1 / o1,
                 best_of(f.theirs) / best_of(f.ours), t1 / f.matmul_ms);
    }
  }
  fmt::print(
      "\n| variant | step 1 thread ms | matmul-only ms | ratio | GFLOP | tiny products | peak RSS "
      "seqgrad MiB | peak RSS torch MiB | peak tensors seqgrad MiB |\n| --- | --- | --- | --- | "
      "--- | "
      "--- | --- | --- | --- |\n");
  for (const VariantResult& r : results) {
    const double step = median(r.figures.front().ours[0]);
    fmt::print("| {} | {:.1f} | {:.1f} | {:.2f} | {:.2f} | {} | {:.0f} | {:.0f} | {:.0f} |\n",
               r.v.label(), step, r.matmul_ms, step / r.matmul_ms, r.gflop, r.tiny_calls, r.our_rss,
               r.their_rss, r.our_tensors);
  }
}

void print_script_lines(const std::vector<VariantResult>& results) {
  double transformer_worst = INFINITY;  // the lowest Transformer speed-up of the run
  for (const VariantResult& r : results) {
    if (r.v.transformer) {
      const Figure& step = r.figures.front();
      transformer_worst = std::min(transformer_worst, best_of(step.theirs) / best_of(step.ours));
    }
    if (r.v.config != "medium" || r.v.scorer != "general" || !r.v.padded) continue;
    const Figure& step = r.figures.front();
    fmt::print("medium step / matmul-only time (general, 1 thread): {:.2f}\n",
               median(step.ours[0]) / r.matmul_ms);
    fmt::print("train speedup vs pytorch (medium, general, best threads): {:.2f}\n",
               best_of(step.theirs) / best_of(step.ours));
  }
  if (std::isfinite(transformer_worst)) {
    fmt::print("transformer train speedup vs pytorch (best threads): {:.2f}\n", transformer_worst);
  }
}

std::vector<Variant> variants(const Options& opt) {
  if (opt.quick) {
    return {{"quick", "concat", true, 8, 16, 1, 4, 5, 0.0},
            {"quick", "-", true, 0, 16, 2, 4, 5, 0.0, true, true, 2, 32}};
  }
  std::vector<Variant> all;
  for (const char* scorer : {"general", "concat"}) {
    for (bool padded : {true, false}) {
      all.push_back({"small", scorer, padded, 64, 128, 1, 32, 12, 0.0});
      all.push_back({"medium", scorer, padded, 128, 256, 1, 64, 20, 0.0});
    }
    all.push_back({"large", scorer, true, 256, 512, 1, 64, 30, 0.0});
    // The G2P default model (seqgrad train --task g2p): 2 layers, dropout 0.2, batch 64.
    all.push_back({"g2p", scorer, true, 128, 256, 2, 64, 0, 0.2});
  }
  // The Transformer: d_model 256, 4 heads, feed-forward 1024, 3+3 layers, dropout 0, relu.
  for (bool norm_first : {false, true}) {
    for (std::int64_t len : {20, 30})
      all.push_back({"transformer", "-", true, 0, 256, 3, 64, len, 0.0, true, norm_first, 4, 1024});
  }
  std::vector<Variant> picked;
  for (const Variant& v : all) {
    if (opt.config == "all" || opt.config == v.config) picked.push_back(v);
  }
  std::stable_sort(picked.begin(), picked.end(), [](const Variant& a, const Variant& b) {
    const auto rank = [](const std::string& c) {
      return c == "small" ? 0 : c == "medium" ? 1 : c == "large" ? 2 : c == "g2p" ? 3 : 4;
    };
    return rank(a.config) < rank(b.config);
  });
  return picked;
}

int run(const Options& opt) {
  double load = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = 0;
    std::fclose(f);
  }
  fmt::print(
      "bench_seq2seq: OpenBLAS core {}; load average {:.1f} on {} cores; {} round(s) of {} "
      "timed call(s) per side and figure\n",
      seqgrad::blas_core_name(), load, std::thread::hardware_concurrency(), opt.rounds, opt.steps);
  std::vector<VariantResult> results;
  for (const Variant& v : variants(opt)) {
    if (v.config == "g2p" && !std::filesystem::exists(opt.cmudict)) {
      fmt::print("\n== {}: skipped, {} is missing (bash scripts/fetch-cmudict) ==\n", v.label(),
                 opt.cmudict);
      continue;
    }
    results.push_back(run_variant(v, opt));
  }
  print_tables(results, !opt.seqgrad_only);
  fmt::print("\n");
  if (!opt.seqgrad_only) print_script_lines(results);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);                // a dead torch process is reported, not fatal
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows in a log file as it happens
  openblas_set_num_threads(1);               // our two-thread figures come from worker threads
  Options opt;
  opt.script = (std::filesystem::path(__FILE__).parent_path() / "seq2seq_torch.py").string();
  auto usage = [&](std::string_view why) {
    fmt::print(
        stderr,
        "usage: {} [--quick] [--seqgrad-only] [--config small|medium|large|g2p|transformer|all]\n"
        "       [--rounds R] [--steps N] [--cmudict PATH] [--script seq2seq_torch.py]\n"
        "  {}\n",
        argv[0], why);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    try {
      if (arg == "--quick") {
        opt.quick = true;
        opt.rounds = 1;
        opt.steps = 1;
      } else if (arg == "--seqgrad-only") {
        opt.seqgrad_only = true;
      } else if (arg == "--config" && has_value) {
        opt.config = argv[++i];
        const std::vector<std::string> known = {"small", "medium",      "large",
                                                "g2p",   "transformer", "all"};
        if (std::find(known.begin(), known.end(), opt.config) == known.end()) {
          return usage(fmt::format("unknown config: {}", opt.config));
        }
      } else if (arg == "--rounds" && has_value) {
        opt.rounds = std::stoi(argv[++i]);
      } else if (arg == "--steps" && has_value) {
        opt.steps = std::stoi(argv[++i]);
      } else if (arg == "--cmudict" && has_value) {
        opt.cmudict = argv[++i];
      } else if (arg == "--script" && has_value) {
        opt.script = argv[++i];
      } else {
        return usage(fmt::format("unknown argument or missing value: {}", arg));
      }
    } catch (const std::exception&) {
      return usage(fmt::format("not a number after {}", arg));
    }
    if (opt.rounds < 1 || opt.steps < 1) return usage("--rounds and --steps must be >= 1");
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_seq2seq: {}\n", e.what());
    return 1;
  }
}
