// Batched beam search. All B*K live hypotheses step together as one decoder batch (per model of
// an ensemble); after each step the candidates of each source are ranked on the host, and each
// model's decoder state is reordered with index_select so row b*K + i holds source b's i-th
// beam.
// Shape legend: B batch, S source length, H hidden, V vocabulary, K beam width, M models.
#include "seq2seq/search.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "tensor/index.h"
#include "tensor/softmax.h"

namespace seqgrad {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Beam {
  std::vector<std::int64_t> tokens;
  double score = 0;
  std::vector<std::vector<float>> attention;
};

double ranked(const Beam& b, std::size_t length, double alpha) {
  return alpha == 0
             ? b.score
             : b.score / std::pow(static_cast<double>(std::max<std::size_t>(length, 1)), alpha);
}

Variable pick_rows(const Variable& v, std::int64_t axis, const Tensor& index) {
  return v.defined() ? index_select(v, axis, index) : v;
}

DecoderState reorder(const DecoderState& s, const Tensor& index) {
  return {{pick_rows(s.rnn.h, 1, index), pick_rows(s.rnn.c, 1, index)},
          pick_rows(s.feed, 0, index)};
}

}  // namespace

std::vector<Hypothesis> beam_search(const Seq2Seq& model, const Tensor& src,
                                    const std::vector<std::int64_t>& lengths,
                                    const SearchOptions& options) {
  return beam_search(std::vector<const Seq2Seq*>{&model}, src, lengths, options);
}

std::vector<Hypothesis> beam_search(const std::vector<const Seq2Seq*>& models, const Tensor& src,
                                    const std::vector<std::int64_t>& lengths,
                                    const SearchOptions& options) {
  if (options.beam < 1 || options.max_len < 1) {
    throw ValueError(fmt::format("beam_search: beam {} and max_len {} must be positive",
                                 options.beam, options.max_len));
  }
  if (models.empty() || std::find(models.begin(), models.end(), nullptr) != models.end()) {
    throw ValueError("beam_search: needs at least one model, and no null ones");
  }
  const std::int64_t V = models.front()->config().tgt_vocab;
  for (const Seq2Seq* m : models) {
    if (m->config().tgt_vocab != V) {
      throw ValueError(
          fmt::format("beam_search: an ensemble needs one target vocabulary, got sizes {} and {}",
                      V, m->config().tgt_vocab));
    }
  }
  NoGradGuard no_grad;
  const std::int64_t B = src.size(0), K = options.beam;
  const std::size_t M = models.size();
  // Every source repeated K times: row b*K + i.
  std::vector<std::int64_t> rep;
  std::vector<std::int64_t> rep_lengths;
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t i = 0; i < K; ++i) {
      rep.push_back(b);
      rep_lengths.push_back(lengths.at(static_cast<std::size_t>(b)));
    }
  }
  const Tensor rep_index = Tensor::from_vector(rep, {B * K});
  std::vector<DecoderMemory> memory;
  std::vector<DecoderState> state;
  for (const Seq2Seq* m : models) {
    EncoderOutput enc = m->encode(src, lengths);
    enc.states = index_select(enc.states, 0, rep_index);
    enc.mask = index_select(enc.mask, 0, rep_index);
    enc.lengths = rep_lengths;
    enc.final = {pick_rows(enc.final.h, 1, rep_index), pick_rows(enc.final.c, 1, rep_index)};
    auto [mem, st] = m->start(enc);
    memory.push_back(std::move(mem));
    state.push_back(std::move(st));
  }

  std::vector<std::vector<Beam>> alive(B, std::vector<Beam>(K));
  std::vector<std::vector<Beam>> finished(B);
  std::vector<bool> done(B, false);
  for (auto& beams : alive) {
    for (std::int64_t i = 1; i < K; ++i) beams[i].score = kNegInf;  // start from one beam
  }
  std::vector<std::int64_t> last(B * K, kBosId);
  for (std::int64_t t = 0; t < options.max_len; ++t) {
    const Tensor tokens = Tensor::from_vector(last, {B * K});
    std::vector<DecoderStep> steps;
    std::vector<double> logp;  // [B*K, V], the models' mean
    for (std::size_t m = 0; m < M; ++m) {
      const Seq2Seq& model = *models[m];
      steps.push_back(model.decoder().step(tokens, state[m], memory[m]));
      auto lp =
          log_softmax(model.decoder().logits(steps.back().output).data(), 1).to_vector<double>();
      if (m == 0) {
        logp = std::move(lp);  // one model: no copy
      } else {
        for (std::size_t j = 0; j < lp.size(); ++j) logp[j] += lp[j];
      }
    }
    if (M > 1) {
      for (double& x : logp) x /= static_cast<double>(M);
    }
    const DecoderStep& s = steps.front();
    std::vector<float> weights;
    if (s.weights.defined()) weights = s.weights.data().to_vector<float>();
    const std::int64_t S = s.weights.defined() ? s.weights.size(1) : 0;
    std::vector<std::int64_t> source_row(B * K, 0);
    for (std::int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      // Top candidates (beam i, token v) by total score; 2K are enough to find K live ones.
      std::vector<std::pair<double, std::int64_t>> cand;
      for (std::int64_t i = 0; i < K; ++i) {
        const double base = alive[b][i].score;
        if (base == kNegInf) continue;
        const double* row = logp.data() + (b * K + i) * V;
        for (std::int64_t v = 0; v < V; ++v) cand.emplace_back(base + row[v], i * V + v);
      }
      const auto top = std::min<std::size_t>(cand.size(), static_cast<std::size_t>(2 * K));
      std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(top), cand.end(),
                        [](const auto& x, const auto& y) { return x.first > y.first; });
      std::vector<Beam> next;
      std::vector<std::int64_t> from;
      for (std::size_t c = 0; c < top && static_cast<std::int64_t>(next.size()) < K; ++c) {
        const std::int64_t i = cand[c].second / V, v = cand[c].second % V;
        Beam beam = alive[b][i];
        beam.score = cand[c].first;
        if (S > 0) {
          const float* w = weights.data() + (b * K + i) * S;
          beam.attention.emplace_back(w, w + lengths[b]);
        }
        if (v == kEosId || t + 1 == options.max_len) {
          if (v != kEosId) beam.tokens.push_back(v);
          finished[b].push_back(std::move(beam));
          continue;
        }
        beam.tokens.push_back(v);
        next.push_back(std::move(beam));
        from.push_back(b * K + i);
      }
      // Stop when K hypotheses are finished and no live beam can still beat the best of them
      // (log-probabilities only fall, so a live beam's raw score bounds its future).
      auto best_finished = [&] {
        double best = kNegInf;
        for (const auto& f : finished[b]) {
          best = std::max(best, ranked(f, f.tokens.size() + 1, options.length_penalty));
        }
        return best;
      };
      if (static_cast<std::int64_t>(finished[b].size()) >= K || next.empty() ||
          (options.length_penalty == 0 && !finished[b].empty() &&
           next.front().score <= best_finished())) {
        done[b] = true;
      }
      while (static_cast<std::int64_t>(next.size()) < K) {  // pad with dead beams
        next.emplace_back();
        next.back().score = kNegInf;
        from.push_back(b * K);
      }
      for (std::int64_t i = 0; i < K; ++i) {
        source_row[b * K + i] = from[i];
        last[b * K + i] = next[i].tokens.empty() ? kEosId : next[i].tokens.back();
      }
      alive[b] = std::move(next);
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    for (std::int64_t r = 0; r < B * K; ++r) {
      if (done[r / K]) source_row[r] = r;
    }
    const Tensor order = Tensor::from_vector(source_row, {B * K});
    for (std::size_t m = 0; m < M; ++m) state[m] = reorder(steps[m].state, order);
  }

  std::vector<Hypothesis> out(B);
  for (std::int64_t b = 0; b < B; ++b) {
    auto& pool = finished[b].empty() ? alive[b] : finished[b];
    const Beam* best = nullptr;
    double best_rank = kNegInf;
    for (const auto& beam : pool) {
      const double r = ranked(beam, beam.tokens.size() + 1, options.length_penalty);
      if (best == nullptr || r > best_rank) {
        best = &beam;
        best_rank = r;
      }
    }
    out[b] = {best->tokens, best->score, best->attention};
  }
  return out;
}

}  // namespace seqgrad
