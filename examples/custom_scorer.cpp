// A custom attention scorer, defined here and trained with. A scorer only maps query [B,Hq] and
// keys [B,S,Hk] to scores [B,S]; masking, softmax and the context sum are the library's. This
// one is written from existing ops, so it needs no backward of its own; gradcheck confirms it.
// Exit status 1 unless the gradient check passes and the model learns to reverse strings.
#include <fmt/format.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/linear.h"
#include "optim/adam.h"
#include "seq2seq/batch.h"
#include "seq2seq/model.h"
#include "seq2seq/scorers/scorers.h"
#include "seq2seq/tasks.h"

using namespace seqgrad;

constexpr int kEpochs = 4;  // of 125 batches
constexpr double kMaxLoss = 0.05;

// score(q, k) = -|P q - k|^2 / sqrt(Hk): keys near the projected query win.
class DistanceScorer : public Scorer {
 public:
  explicit DistanceScorer(const ScorerConfig& c)
      : p_(c.query_size, c.key_size, false, scorer_generator(c), c.dtype),
        scale_(1.0 / std::sqrt(static_cast<double>(c.key_size))) {
    register_module("P", p_);
  }
  Variable score(const Variable& query, const Variable& keys) const override {
    const Variable d = unsqueeze(p_(query), 1) - keys;  // [B,1,Hk] - [B,S,Hk]
    return sum(d * d, {2}) * -scale_;                   // [B,S]
  }

 private:
  Linear p_;
  double scale_;
};

// The attention step (scorer, mask, softmax, context) in float64 against finite differences.
bool gradient_is_right() {
  Generator gen(7);
  Attention attention(
      make_scorer("distance", {.query_size = 4, .key_size = 3, .dtype = DType::f64, .gen = &gen}));
  const Tensor mask = length_mask({3, 2}, 3);
  const auto r = gradcheck(
      [&](const std::vector<Variable>& x) {
        return attention.attend(x[0], attention.memory(x[1], mask)).context;
      },
      {normal({2, 4}, 0, 1, DType::f64, gen), normal({2, 3, 3}, 0, 1, DType::f64, gen)}, {},
      attention.parameters());
  fmt::print("gradcheck: max error {:.2e} ({})\n", r.max_error, r.passed ? "passed" : r.worst);
  return r.passed;
}

int main() {
  // Explicit registration from main: make_scorer and ModelConfig::attention now know the name.
  register_scorer({"distance", "negative squared distance to the projected query",
                   [](const ScorerConfig& c) { return std::make_unique<DistanceScorer>(c); }});
  if (!gradient_is_right()) return 1;

  const DataSplits data = make_task_splits("reverse", {.train = 4000}, 2, 3, 8, "abcdefgh");
  const Vocab src = build_source_vocab(data.train, Tokenization::chars);
  const Vocab tgt = build_target_vocab(data.train, Tokenization::chars);
  const Batcher train(data.train, src, tgt, {.batch_size = 32, .seed = 2});
  Generator gen(2);
  Seq2Seq model({.src_vocab = src.size(),
                 .tgt_vocab = tgt.size(),
                 .embed = 16,
                 .hidden = 32,
                 .dropout = 0.0,
                 .attention = "distance"},
                gen);
  Adam opt(model.parameters(), {.lr = 1e-2});
  double loss = 0;  // the mean over the last epoch's batches
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    const std::vector<Batch> batches = train.train_batches(epoch);
    loss = 0;
    for (const Batch& b : batches) {
      const LossResult r = model.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, gen);
      opt.zero_grad();
      r.loss.backward();
      opt.step();
      loss += r.loss.item() / static_cast<double>(batches.size());
    }
    fmt::print("epoch {}  mean loss {:.4f}\n", epoch, loss);
  }
  if (loss > kMaxLoss) {
    fmt::print(stderr, "FAILED: last epoch's mean loss {:.4f}, wanted below {}\n", loss, kMaxLoss);
    return 1;
  }
  return 0;
}
