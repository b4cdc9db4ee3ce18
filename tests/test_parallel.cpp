// Data parallelism across threads (seq2seq/parallel.h): a batch split over two workers gives the
// whole batch's loss and gradient (float64, to rounding), the same bits on every run, and
// decoding split over workers equals one beam search. First the splitting helpers under it
// (tensor/parallel_for.h).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>
#include <vector>

#include "autograd/autograd.h"
#include "seq2seq/parallel.h"
#include "tensor/parallel_for.h"

namespace seqgrad {
namespace {

// Copy-task batch with unequal lengths: src [B,S], tgt_in/tgt_out [B,S+1], pads 0.
Batch copy_batch(Generator& gen, std::int64_t B, std::int64_t S) {
  Batch b;
  b.src = Tensor::zeros({B, S}, DType::i64);
  b.tgt_in = Tensor::zeros({B, S + 1}, DType::i64);
  b.tgt_out = Tensor::zeros({B, S + 1}, DType::i64);
  auto* ps = b.src.data<std::int64_t>();
  auto* pi = b.tgt_in.data<std::int64_t>();
  auto* po = b.tgt_out.data<std::int64_t>();
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int64_t len = 1 + static_cast<std::int64_t>(gen.next_u64() % S);
    b.src_lengths.push_back(len);
    b.example_index.push_back(static_cast<std::size_t>(r));
    pi[r * (S + 1)] = kBosId;
    for (std::int64_t i = 0; i < len; ++i) {
      ps[r * S + i] = 4 + static_cast<std::int64_t>(gen.next_u64() % 5);
      po[r * (S + 1) + i] = pi[r * (S + 1) + i + 1] = ps[r * S + i];
    }
    po[r * (S + 1) + len] = kEosId;
  }
  return b;
}

ModelConfig small_config(DType dtype, double dropout, std::int64_t hidden = 6) {
  return {.src_vocab = 9,
          .tgt_vocab = 9,
          .embed = 5,
          .hidden = hidden,
          .layers = 2,
          .cell = "lstm",
          .bidirectional = true,
          .dropout = dropout,
          .attention = "general",
          .style = "luong",
          .dtype = dtype};
}

std::vector<std::vector<double>> gradients(const Seq2Seq& m) {
  std::vector<std::vector<double>> g;
  for (const auto& [name, p] : m.named_parameters()) {
    g.push_back(p.grad().defined() ? p.grad().to_vector<double>()
                                   : std::vector<double>(static_cast<std::size_t>(p.numel()), 0));
  }
  return g;
}

}  // namespace

TEST_CASE("parallel_ranges covers every item once in balanced ranges, and run_threads rethrows") {
  struct Case {
    std::vector<std::int64_t> costs;
    int threads;
    std::int64_t min_cost;
    std::vector<std::pair<std::size_t, std::size_t>> want;
  };
  const std::int64_t usual = std::int64_t{1} << 16;  // parallel_ranges' default
  const std::vector<Case> cases{
      {{10, 10, 10, 10}, 2, 1, {{0, 2}, {2, 4}}},
      {{100000, 1, 1}, 2, usual, {{0, 1}, {1, 3}}},  // a big first item takes a range alone
      {{1, 1, 1, 1, 1, 1}, 3, 1, {{0, 2}, {2, 4}, {4, 6}}},
      {{50000, 50000}, 4, usual, {{0, 1}, {1, 2}}},  // no more ranges than items
      {{5, 5, 5}, 2, usual, {{0, 3}}},               // below min_cost: one range
      {{9, 9}, 1, 1, {{0, 2}}},
      {{100000, 0, 0}, 2, usual, {{0, 3}}},  // no range, so no thread, for items of no cost
      {{100, 0, 0}, 3, 1, {{0, 3}}},
      {{0, 0, 5, 5}, 2, 1, {{0, 3}, {3, 4}}}};
  for (const Case& c : cases) {
    CAPTURE(c.threads);
    std::vector<std::pair<std::size_t, std::size_t>> got;
    std::mutex mu;
    parallel_ranges(
        c.costs, c.threads,
        [&](std::size_t begin, std::size_t end) {
          const std::lock_guard lock(mu);
          got.emplace_back(begin, end);
        },
        c.min_cost);
    std::sort(got.begin(), got.end());
    CHECK(got == c.want);
  }
  std::array<int, 3> ran{};
  CHECK_THROWS_WITH_AS(run_threads(3,
                                   [&](int w) {
                                     ran[static_cast<std::size_t>(w)] = 1;
                                     if (w > 0) throw ValueError(fmt::format("worker {}", w));
                                   }),
                       "worker 1", ValueError);
  CHECK(ran == std::array<int, 3>{1, 1, 1});  // every worker ran to the end before the rethrow
}

TEST_CASE("slice_rows keeps rows and trims padding columns") {
  Generator gen(3);
  const Batch b = copy_batch(gen, 7, 6);
  const Batch s = slice_rows(b, 2, 5);
  CHECK(s.size() == 3);
  const std::int64_t longest = std::max({b.src_lengths[2], b.src_lengths[3], b.src_lengths[4]});
  CHECK(s.src.shape() == Shape{3, longest});
  CHECK(s.tgt_out.shape() == Shape{3, longest + 1});
  CHECK(s.target_tokens() ==
        b.src_lengths[2] + b.src_lengths[3] + b.src_lengths[4] + 3);  // y and </s>
  for (std::int64_t r = 0; r < 3; ++r) {
    for (std::int64_t c = 0; c < longest; ++c) {
      CHECK(s.src.at({r, c}) == b.src.at({r + 2, c}));
      CHECK(s.tgt_in.at({r, c}) == b.tgt_in.at({r + 2, c}));
    }
  }
  CHECK_THROWS_AS(slice_rows(b, 5, 5), ValueError);
  CHECK_THROWS_AS(slice_rows(b, 0, 8), ValueError);
}

TEST_CASE("DataParallel: two workers give the whole batch's loss and gradient") {
  // At hidden 64 the parameters pass parallel_ranges' minimum, so the two workers' threads also
  // sum the replica's gradients into the model's.
  for (const std::int64_t hidden : {6, 64}) {
    CAPTURE(hidden);
    Generator gen(11);
    Seq2Seq model(small_config(DType::f64, 0.0, hidden), gen);
    const Batch b = copy_batch(gen, 9, 6);  // odd: shares of 5 and 4 rows
    Generator g1(5);
    const LossResult whole = model.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, g1);
    whole.loss.backward();
    const auto want = gradients(model);
    model.zero_grad();

    DataParallel dp(model, 2);
    CHECK(dp.workers() == 2);
    Generator g2(5);
    const StepLoss got = dp.loss_backward(b, {}, g2);
    CHECK(got.tokens == whole.tokens);
    CHECK(got.loss == doctest::Approx(whole.loss.item()).epsilon(1e-12));
    const auto have = gradients(model);
    REQUIRE(have.size() == want.size());
    double worst = 0;
    for (std::size_t k = 0; k < want.size(); ++k) {
      for (std::size_t i = 0; i < want[k].size(); ++i) {
        worst = std::max(
            worst, std::fabs(have[k][i] - want[k][i]) / std::max(1e-6, std::fabs(want[k][i])));
      }
    }
    CHECK(worst < 1e-9);
  }
}

TEST_CASE("DataParallel: a step with dropout repeats bit for bit from the same generator") {
  // As in the trainer, the model's own dropout draws from the generator the step is given.
  Generator g(4);
  Seq2Seq model(small_config(DType::f32, 0.3), g);
  model.train();
  const Batch b = copy_batch(g, 8, 5);
  DataParallel dp(model, 2);
  std::vector<std::vector<std::vector<double>>> runs;
  std::vector<double> losses;
  for (int run = 0; run < 2; ++run) {
    model.zero_grad();
    g.manual_seed(77);
    losses.push_back(dp.loss_backward(b, {.teacher_forcing = 0.5}, g).loss);
    runs.push_back(gradients(model));
  }
  CHECK(losses[0] == losses[1]);
  CHECK(runs[0] == runs[1]);
}

std::vector<std::vector<float>> float_gradients(const Seq2Seq& m) {
  std::vector<std::vector<float>> g;
  for (const auto& [name, p] : m.named_parameters()) g.push_back(p.grad().to_vector<float>());
  return g;
}

TEST_CASE("DataParallel: shares split over 2 processes add up to 1 process of 2 workers") {
  // What two processes of one worker compute (Shares), summed as an allreduce of two does,
  // against one process of two workers: the same bits, dropout included; and the generator
  // where share 0 ran ends where one process's does.
  Generator g(4);
  Seq2Seq model(small_config(DType::f32, 0.3), g);
  model.train();
  const Batch b = copy_batch(g, 9, 5);  // odd: shares of 5 and 4 rows
  const LossOptions options{.teacher_forcing = 0.5};
  DataParallel both(model, 2);
  model.zero_grad();
  g.manual_seed(77);
  const StepLoss whole = both.loss_backward(b, options, g);
  const auto want = float_gradients(model);
  const auto after = g.state();

  DataParallel one(model, 1);
  std::vector<std::vector<std::vector<float>>> parts;
  std::vector<StepLoss> losses;
  std::array<std::uint64_t, 5> rank0_after{};
  for (int rank = 0; rank < 2; ++rank) {
    model.zero_grad();
    g.manual_seed(77);
    losses.push_back(one.loss_backward(b, options, g, {.first = rank, .of = 2}));
    parts.push_back(float_gradients(model));
    if (rank == 0) rank0_after = g.state();
  }
  CHECK(losses[0].loss + losses[1].loss == whole.loss);
  CHECK(losses[0].tokens + losses[1].tokens == whole.tokens);
  CHECK(rank0_after == after);
  REQUIRE(parts[0].size() == want.size());
  bool same = true;
  for (std::size_t k = 0; k < want.size(); ++k) {
    for (std::size_t i = 0; i < want[k].size(); ++i)
      same &= parts[0][k][i] + parts[1][k][i] == want[k][i];
  }
  CHECK(same);
}

// The tokens are the same; scores and weights agree to float rounding (gemm over fewer rows may
// sum in another order).
TEST_CASE("parallel_beam_search equals one beam search, greedy and beam") {
  Generator gen(9);
  Seq2Seq model(small_config(DType::f32, 0.0), gen);
  model.eval();
  const Batch b = copy_batch(gen, 7, 6);
  for (std::int64_t beam : {1, 3}) {
    const SearchOptions opt{.beam = beam, .max_len = 9};
    const auto one = beam_search(model, b.src, b.src_lengths, opt);
    const auto split = parallel_beam_search({&model}, b.src, b.src_lengths, opt, 2);
    REQUIRE(split.size() == one.size());
    for (std::size_t r = 0; r < one.size(); ++r) {
      CHECK(split[r].tokens == one[r].tokens);
      CHECK(split[r].score == doctest::Approx(one[r].score).epsilon(1e-5));
      REQUIRE(split[r].attention.size() == one[r].attention.size());
      for (std::size_t t = 0; t < one[r].attention.size(); ++t) {
        REQUIRE(split[r].attention[t].size() == one[r].attention[t].size());
        for (std::size_t j = 0; j < one[r].attention[t].size(); ++j) {
          CHECK(split[r].attention[t][j] == doctest::Approx(one[r].attention[t][j]).epsilon(1e-4));
        }
      }
    }
  }
}

}  // namespace seqgrad
