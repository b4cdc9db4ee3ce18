// Trains a tiny attention model to reverse strings, with the library API only (no CLI): a
// built-in task, Seq2Seq with scaled dot-product attention, Adam, then greedy decoding.
// The loop is the whole of training: forward, loss, backward, clip, update.
// Exit status 1 unless the loss falls below kMaxLoss and most held-out strings come back exact.
#include <fmt/format.h>

#include "optim/adam.h"
#include "optim/clip.h"
#include "seq2seq/tasks.h"
#include "seq2seq/trainer.h"

using namespace seqgrad;

constexpr int kSteps = 1500;
constexpr int kPrintEvery = 100;
constexpr double kMaxLoss = 0.05;        // mean cross-entropy per token, last kPrintEvery steps
constexpr double kMinExactMatch = 0.85;  // held-out strings reversed exactly

// Greedy decoding of one string (beam_search takes a batch: here a batch of one).
std::string reverse_with(const Seq2Seq& model, const Vocab& src, const Vocab& tgt,
                         const std::string& text) {
  const std::vector<std::int64_t> ids = src.encode(tokenize(text, Tokenization::chars));
  const auto S = static_cast<std::int64_t>(ids.size());
  const auto hyps = beam_search(model, Tensor::from_vector(ids, {1, S}), {S});
  return detokenize(tgt.decode(hyps[0].tokens), Tokenization::chars);
}

int main() {
  // Strings of 3 to 8 letters from an 8-letter alphabet; test sources never appear in train.
  const DataSplits data =
      make_task_splits("reverse", {.train = 4000, .test = 200}, 1, 3, 8, "abcdefgh");
  const Vocab src_vocab = build_source_vocab(data.train, Tokenization::chars);
  const Vocab tgt_vocab = build_target_vocab(data.train, Tokenization::chars);
  const Batcher train(data.train, src_vocab, tgt_vocab, {.batch_size = 32, .seed = 1});
  const Batcher test(data.test, src_vocab, tgt_vocab, {.batch_size = 50});

  Generator gen(1);
  Seq2Seq model({.src_vocab = src_vocab.size(),
                 .tgt_vocab = tgt_vocab.size(),
                 .embed = 16,
                 .hidden = 32,
                 .dropout = 0.0,
                 .attention = "scaled_dot"},
                gen);
  Adam opt(model.parameters(), {.lr = 1e-2});

  double loss = 0, sum = 0;  // loss: the mean of the last kPrintEvery steps' losses
  for (int step = 1, epoch = 0; step <= kSteps; ++epoch) {
    for (const Batch& b : train.train_batches(epoch)) {
      if (step > kSteps) break;
      const LossResult r = model.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, gen);
      opt.zero_grad();
      r.loss.backward();
      clip_grad_norm(model.parameters(), 5.0);
      opt.step();
      sum += r.loss.item();
      if (step++ % kPrintEvery == 0) {
        loss = sum / kPrintEvery, sum = 0;
        fmt::print("step {:4d}  loss {:.4f}\n", step - 1, loss);
      }
    }
  }

  model.eval();  // (no dropout here, but decoding is done in eval mode)
  const EvalResult eval = evaluate(model, test, tgt_vocab, {});
  const std::string source = data.test[0].source;
  fmt::print("'{}' -> '{}'; held-out exact match {:.2f}, loss {:.4f}\n", source,
             reverse_with(model, src_vocab, tgt_vocab, source), eval.scores.exact_match, loss);
  if (loss > kMaxLoss || eval.scores.exact_match < kMinExactMatch) {
    fmt::print(stderr, "FAILED: wanted loss below {} and exact match at least {}\n", kMaxLoss,
               kMinExactMatch);
    return 1;
  }
  return 0;
}
