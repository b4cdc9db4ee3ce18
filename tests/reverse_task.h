// The reverse task the model tests train on: batches of random symbols and their reversal, one
// training loop (Adam, clipping) and the count of test sources decoded exactly.
#pragma once

#include <vector>

#include "optim/adam.h"
#include "optim/clip.h"
#include "seq2seq/model.h"
#include "seq2seq/search.h"

namespace seqgrad::testing {

// Reverse task over ids 4..(4+symbols): src [B,S], tgt_in [B,S+1], tgt_out [B,S+1].
struct ReverseBatch {
  Tensor src, tgt_in, tgt_out;
  std::vector<std::int64_t> lengths;
};

inline ReverseBatch reverse_batch(Generator& gen, std::int64_t B, std::int64_t min_len,
                                  std::int64_t max_len, std::int64_t symbols) {
  ReverseBatch r;
  const std::int64_t S = max_len, T = max_len + 1;
  r.src = Tensor::zeros({B, S}, DType::i64);
  r.tgt_in = Tensor::zeros({B, T}, DType::i64);
  r.tgt_out = Tensor::zeros({B, T}, DType::i64);
  auto* ps = r.src.data<std::int64_t>();
  auto* pi = r.tgt_in.data<std::int64_t>();
  auto* po = r.tgt_out.data<std::int64_t>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto len = min_len + static_cast<std::int64_t>(gen.next_u64() % (max_len - min_len + 1));
    r.lengths.push_back(len);
    for (std::int64_t i = 0; i < len; ++i) {
      ps[b * S + i] = 4 + static_cast<std::int64_t>(gen.next_u64() % symbols);
    }
    pi[b * T] = kBosId;
    for (std::int64_t i = 0; i < len; ++i) {
      po[b * T + i] = pi[b * T + i + 1] = ps[b * S + len - 1 - i];
    }
    po[b * T + len] = kEosId;
  }
  return r;
}

// `steps` Adam steps on fresh batches of 32 sources of 2-6 of 8 symbols; the first and the last
// loss.
inline std::pair<double, double> train_reverse(Seq2Seq& model, Generator& gen, int steps, double lr,
                                               double clip) {
  Adam opt(model.parameters(), {.lr = lr});
  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    const ReverseBatch b = reverse_batch(gen, 32, 2, 6, 8);
    const LossResult r = model.loss(b.src, b.lengths, b.tgt_in, b.tgt_out, {}, gen);
    opt.zero_grad();
    r.loss.backward();
    clip_grad_norm(model.parameters(), clip);
    opt.step();
    (step == 0 ? first : last) = r.loss.item();
  }
  return {first, last};
}

// How many of the test sources the hypotheses reproduce exactly (their reversal, without </s>).
inline int exact_reversals(const ReverseBatch& test, const std::vector<Hypothesis>& hyps) {
  int exact = 0;
  for (std::size_t b = 0; b < hyps.size(); ++b) {
    std::vector<std::int64_t> want;
    for (std::int64_t i = 0; i < test.lengths[b]; ++i) {
      want.push_back(static_cast<std::int64_t>(test.tgt_out.at({static_cast<std::int64_t>(b), i})));
    }
    exact += hyps[b].tokens == want;
  }
  return exact;
}

}  // namespace seqgrad::testing
