// Reads gradients during backward with tensor hooks (Variable::register_hook), on values inside
// the model: the attention weights a[b,j] of one decoder step and the encoder states h_j they
// weigh. A hook sees the gradient as it flows and may replace it: zeroing dL/da cuts the
// scorer off from the loss, so its parameters get no gradient at all.
// Exit status 1 unless the hooks see what the maths says they must.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "nn/loss.h"
#include "seq2seq/batch.h"
#include "seq2seq/model.h"
#include "seq2seq/tasks.h"

using namespace seqgrad;

struct Seen {
  Tensor dweights;  // dL/da [B,S]
  Tensor dstates;   // dL/dh [B,S,H]
  double scorer_grad_norm = 0;
};

// Loss of the first decoder step on one batch, with hooks on a and h; zero_da replaces dL/da.
Seen first_step_gradients(Seq2Seq& model, const Batch& b, bool zero_da) {
  Seen seen;
  model.zero_grad();
  const EncoderOutput enc = model.encode(b.src, b.src_lengths);
  Variable states = enc.states;  // a handle: hooking it hooks the value attention reads
  states.register_hook([&](const Tensor& g) {
    seen.dstates = g.clone();
    return Tensor();  // undefined: keep the gradient as it is
  });
  const auto [memory, state] = model.start(enc);
  const Tensor bos = Tensor::full({b.size()}, static_cast<double>(kBosId), DType::i64);
  DecoderStep step = model.decoder().step(bos, state, memory);
  step.weights.register_hook([&](const Tensor& g) {
    seen.dweights = g.clone();
    return zero_da ? Tensor::zeros(g.shape(), g.dtype()) : Tensor();
  });
  cross_entropy(model.decoder().logits(step.output), b.tgt_out.select(1, 0).contiguous())
      .backward();
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.find("scorer") != std::string::npos && p.grad().defined()) {
      for (double g : p.grad().to_vector<double>()) seen.scorer_grad_norm += g * g;
    }
  }
  seen.scorer_grad_norm = std::sqrt(seen.scorer_grad_norm);
  return seen;
}

int main() {
  const DataSplits data = make_task_splits("reverse", {.train = 3}, 5, 3, 6, "abcdefgh");
  const Vocab src = build_source_vocab(data.train, Tokenization::chars);
  const Vocab tgt = build_target_vocab(data.train, Tokenization::chars);
  const Batch b = Batcher(data.train, src, tgt, {.batch_size = 3}).eval_batches().front();
  Generator gen(5);
  Seq2Seq model({.src_vocab = src.size(),
                 .tgt_vocab = tgt.size(),
                 .embed = 8,
                 .hidden = 16,
                 .dropout = 0.0,
                 .attention = "general"},
                gen);

  const Seen seen = first_step_gradients(model, b, false);
  bool ok = seen.dweights.shape() == Shape{b.size(), b.src.size(1)} && seen.scorer_grad_norm > 0;
  for (std::int64_t i = 0; i < b.size(); ++i) {
    fmt::print("'{}'\n  dL/da_j  {::+.4f}\n  |dL/dh_j| ", data.train[b.example_index[i]].source,
               seen.dweights.select(0, i).to_vector<double>());
    for (std::int64_t j = 0; j < b.src.size(1); ++j) {
      const Tensor h = seen.dstates.select(0, i).select(0, j).contiguous();
      double n = 0;
      for (double g : h.to_vector<double>()) n += g * g;
      fmt::print("{:.4f} ", std::sqrt(n));
      // Past a source's end h_j = 0 and a_j = 0: no gradient in either direction.
      if (j >= b.src_lengths[i]) ok = ok && n == 0 && seen.dweights.at({i, j}) == 0;
    }
    fmt::print("\n");
  }
  const Seen cut = first_step_gradients(model, b, true);
  fmt::print("|dL/d scorer params| {:.3e}; with dL/da zeroed by the hook {:.3e}\n",
             seen.scorer_grad_norm, cut.scorer_grad_norm);
  ok = ok && cut.scorer_grad_norm == 0;
  if (!ok) fmt::print(stderr, "FAILED: the hooks did not see the expected gradients\n");
  return ok ? 0 : 1;
}
