// Batched beam search. All B*K live hypotheses step together as one decoder batch (per model of
// an ensemble); after each step the candidates of each source are ranked on the host, and each
// model's decoding session (seq2seq/decoding.h) is reordered so row b*K + i holds source b's
// i-th beam.
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
  bool capped = false;
};

// One source's search: K live beams (dead ones scored -inf) and the finished hypotheses.
struct SourceBeams {
  std::vector<Beam> alive;
  std::vector<Beam> finished;
  std::int64_t length = 0;  // source tokens
  std::int64_t cap = 0;     // tokens emitted before the search gives up on a beam
  bool done = false;
};

// What one decoder step gives every live row b*K + i: the (mean) log-probabilities [B*K,V] and
// the first model's attention weights [B*K,S] (S = 0 without attention).
struct StepScores {
  std::vector<double> logp;
  std::vector<float> weights;
  std::int64_t V = 0, S = 0, K = 0;
};

double ranked(const Beam& b, std::size_t length, double alpha) {
  return alpha == 0
             ? b.score
             : b.score / std::pow(static_cast<double>(std::max<std::size_t>(length, 1)), alpha);
}

double best_finished(const SourceBeams& s, double alpha) {
  double best = kNegInf;
  for (const auto& f : s.finished) best = std::max(best, ranked(f, f.tokens.size() + 1, alpha));
  return best;
}

// Top candidates (beam i, token v) of source b by total score; 2K are enough to find K live ones.
std::vector<std::pair<double, std::int64_t>> top_candidates(const SourceBeams& s, std::int64_t b,
                                                            const StepScores& step) {
  std::vector<std::pair<double, std::int64_t>> cand;
  for (std::int64_t i = 0; i < step.K; ++i) {
    const double base = s.alive[static_cast<std::size_t>(i)].score;
    if (base == kNegInf) continue;
    const double* row = step.logp.data() + (b * step.K + i) * step.V;
    for (std::int64_t v = 0; v < step.V; ++v) cand.emplace_back(base + row[v], i * step.V + v);
  }
  const auto top = std::min<std::size_t>(cand.size(), static_cast<std::size_t>(2 * step.K));
  std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(top), cand.end(),
                    [](const auto& x, const auto& y) { return x.first > y.first; });
  cand.resize(top);
  return cand;
}

// Extends source b's beams by token t: the K best candidates stay alive, those ending in </s>
// (or reaching the source's cap) are finished. Returns, for each new beam, the decoder row it
// continues; sets last[b*K + i] to the token it feeds back.
std::vector<std::int64_t> advance(SourceBeams& s, std::int64_t b, std::int64_t t,
                                  const StepScores& step, double alpha,
                                  std::vector<std::int64_t>& last) {
  const std::int64_t K = step.K, V = step.V;
  std::vector<Beam> next;
  std::vector<std::int64_t> from;
  for (const auto& [score, id] : top_candidates(s, b, step)) {
    if (static_cast<std::int64_t>(next.size()) == K) break;
    const std::int64_t i = id / V, v = id % V;
    Beam beam = s.alive[static_cast<std::size_t>(i)];
    beam.score = score;
    if (step.S > 0) {
      const float* w = step.weights.data() + (b * K + i) * step.S;
      beam.attention.emplace_back(w, w + s.length);
    }
    if (v == kEosId || t + 1 == s.cap) {
      if (v != kEosId) {
        beam.tokens.push_back(v);
        beam.capped = true;
      }
      s.finished.push_back(std::move(beam));
      continue;
    }
    beam.tokens.push_back(v);
    next.push_back(std::move(beam));
    from.push_back(b * K + i);
  }
  // Stop when K hypotheses are finished and no live beam can still beat the best of them
  // (log-probabilities only fall, so a live beam's raw score bounds its future).
  if (static_cast<std::int64_t>(s.finished.size()) >= K || next.empty() ||
      (alpha == 0 && !s.finished.empty() && next.front().score <= best_finished(s, alpha))) {
    s.done = true;
  }
  while (static_cast<std::int64_t>(next.size()) < K) {  // pad with dead beams
    next.emplace_back();
    next.back().score = kNegInf;
    from.push_back(b * K);
  }
  for (std::int64_t i = 0; i < K; ++i) {
    const Beam& beam = next[static_cast<std::size_t>(i)];
    last[static_cast<std::size_t>(b * K + i)] = beam.tokens.empty() ? kEosId : beam.tokens.back();
  }
  s.alive = std::move(next);
  return from;
}

Hypothesis best_hypothesis(const SourceBeams& s, double alpha) {
  // Only a search stopped before every cap leaves no finished hypothesis; its live beams are
  // then as cut short as a capped one.
  const bool none_finished = s.finished.empty();
  const auto& pool = none_finished ? s.alive : s.finished;
  const Beam* best = nullptr;
  double best_rank = kNegInf;
  for (const auto& beam : pool) {
    const double r = ranked(beam, beam.tokens.size() + 1, alpha);
    if (best == nullptr || r > best_rank) {
      best = &beam;
      best_rank = r;
    }
  }
  return {best->tokens, best->score, best->attention, best->capped || none_finished};
}

void check_search(const std::vector<const Seq2Seq*>& models, const Tensor& src,
                  const std::vector<std::int64_t>& lengths, const SearchOptions& options) {
  if (options.beam < 1 || options.max_len < 0) {
    throw ValueError(
        fmt::format("beam_search: beam {} must be positive and max_len {} >= 0 (0: per source)",
                    options.beam, options.max_len));
  }
  if (!std::isfinite(options.length_penalty) || options.length_penalty < 0) {
    throw ValueError(fmt::format("beam_search: length_penalty {} must be finite and >= 0",
                                 options.length_penalty));
  }
  if (models.empty() || std::find(models.begin(), models.end(), nullptr) != models.end()) {
    throw ValueError("beam_search: needs at least one model, and no null ones");
  }
  if (static_cast<std::int64_t>(lengths.size()) != src.size(0)) {
    throw ValueError(fmt::format("beam_search: {} lengths for a batch of {} sources",
                                 lengths.size(), src.size(0)));
  }
  const std::int64_t V = models.front()->config().tgt_vocab;
  for (const Seq2Seq* m : models) {
    if (m->config().tgt_vocab != V) {
      throw ValueError(
          fmt::format("beam_search: an ensemble needs one target vocabulary, got sizes {} and {}",
                      V, m->config().tgt_vocab));
    }
  }
}

// Each model's decoding session, every source repeated K times: row b*K + i.
std::vector<std::unique_ptr<DecodeSession>> start_models(const std::vector<const Seq2Seq*>& models,
                                                         const Tensor& src,
                                                         const std::vector<std::int64_t>& lengths,
                                                         std::int64_t K) {
  std::vector<std::unique_ptr<DecodeSession>> sessions;
  for (const Seq2Seq* m : models) sessions.push_back(m->decode(src, lengths, K));
  return sessions;
}

// One decoder step of every model on the tokens `last` [B*K]; the models' mean log-probabilities.
StepScores step_models(const std::vector<std::unique_ptr<DecodeSession>>& sessions,
                       const std::vector<std::int64_t>& last, std::int64_t K, std::int64_t V) {
  const Tensor tokens = Tensor::from_vector(last, {static_cast<std::int64_t>(last.size())});
  const std::size_t M = sessions.size();
  StepScores out;
  out.K = K;
  out.V = V;
  for (std::size_t m = 0; m < M; ++m) {
    const DecodeStepResult step = sessions[m]->step(tokens);
    auto lp = log_softmax(step.logits.data(), 1).to_vector<double>();
    if (m == 0) {
      out.logp = std::move(lp);  // one model: no copy
      if (step.weights.defined()) {
        out.weights = step.weights.data().to_vector<float>();
        out.S = step.weights.size(1);
      }
    } else {
      for (std::size_t j = 0; j < lp.size(); ++j) out.logp[j] += lp[j];
    }
  }
  if (M > 1) {
    for (double& x : out.logp) x /= static_cast<double>(M);
  }
  return out;
}

}  // namespace

std::int64_t max_len_for(std::int64_t source_length) {
  return 2 * source_length + 10;
}

std::vector<Hypothesis> beam_search(const Seq2Seq& model, const Tensor& src,
                                    const std::vector<std::int64_t>& lengths,
                                    const SearchOptions& options) {
  return beam_search(std::vector<const Seq2Seq*>{&model}, src, lengths, options);
}

std::vector<Hypothesis> beam_search(const std::vector<const Seq2Seq*>& models, const Tensor& src,
                                    const std::vector<std::int64_t>& lengths,
                                    const SearchOptions& options) {
  check_search(models, src, lengths, options);
  NoGradGuard no_grad;
  const std::int64_t B = src.size(0), K = options.beam;
  const auto sessions = start_models(models, src, lengths, K);
  const std::int64_t V = models.front()->config().tgt_vocab;

  std::vector<SourceBeams> sources(static_cast<std::size_t>(B));
  std::int64_t longest_cap = 1;
  for (std::int64_t b = 0; b < B; ++b) {
    SourceBeams& s = sources[static_cast<std::size_t>(b)];
    s.alive.resize(static_cast<std::size_t>(K));
    for (std::int64_t i = 1; i < K; ++i) s.alive[i].score = kNegInf;  // start from one beam
    s.length = lengths[static_cast<std::size_t>(b)];
    s.cap = options.max_len > 0 ? options.max_len : max_len_for(s.length);
    longest_cap = std::max(longest_cap, s.cap);
  }
  std::vector<std::int64_t> last(static_cast<std::size_t>(B * K), kBosId);
  for (std::int64_t t = 0; t < longest_cap; ++t) {
    const StepScores step = step_models(sessions, last, K, V);
    // A finished source's rows keep their state (and are ignored from now on).
    std::vector<std::int64_t> source_row(static_cast<std::size_t>(B * K));
    for (std::int64_t r = 0; r < B * K; ++r) source_row[r] = r;
    for (std::int64_t b = 0; b < B; ++b) {
      SourceBeams& s = sources[static_cast<std::size_t>(b)];
      if (s.done) continue;
      const auto from = advance(s, b, t, step, options.length_penalty, last);
      std::copy(from.begin(), from.end(), source_row.begin() + b * K);
    }
    if (std::all_of(sources.begin(), sources.end(), [](const auto& s) { return s.done; })) break;
    const Tensor order = Tensor::from_vector(source_row, {B * K});
    for (const auto& session : sessions) session->reorder(order);
  }

  std::vector<Hypothesis> out;
  for (const SourceBeams& s : sources) out.push_back(best_hypothesis(s, options.length_penalty));
  return out;
}

}  // namespace seqgrad
