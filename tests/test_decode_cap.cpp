// The decoding length cap (seq2seq/search.h): each source's cap is its own, so an input decodes
// to the same tokens alone and inside a batch of mixed lengths, greedy and beam, with one worker
// or two (parallel_beam_search); a hypothesis stopped by the cap says so (capped). The length
// penalty: beam search returns the finished output that ranks best by score / len^alpha.
//
// To add a case: decode with decode_alone / decode_batch below and compare with same_result.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "seq2seq/parallel.h"

namespace seqgrad {
namespace {

// An untrained model (float64, no dropout); with_eos_bias makes it end some outputs early.
ModelConfig cap_config(const std::string& attention) {
  return {.src_vocab = 12,
          .tgt_vocab = 12,
          .embed = 6,
          .hidden = 8,
          .layers = 1,
          .dropout = 0.0,
          .attention = attention,
          .dtype = DType::f64};
}

// Sources of lengths 1, 2, 3, 5, 9, 17, 30 (the long ones lift a batch-wide cap far above the
// short ones' own), ids in [4, 12).
std::vector<std::vector<std::int64_t>> mixed_sources(Generator& gen) {
  std::vector<std::vector<std::int64_t>> out;
  for (const std::int64_t len : {1, 30, 2, 3, 17, 5, 9}) {
    auto& s = out.emplace_back();
    for (std::int64_t i = 0; i < len; ++i)
      s.push_back(4 + static_cast<std::int64_t>(gen.next_u64() % 8));
  }
  return out;
}

struct Sources {
  Tensor src;  // [B,S], pads 0
  std::vector<std::int64_t> lengths;
};

Sources pad(const std::vector<std::vector<std::int64_t>>& rows) {
  std::size_t longest = 1;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  std::vector<std::int64_t> ids(rows.size() * longest, kPadId);
  Sources s;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::copy(rows[i].begin(), rows[i].end(),
              ids.begin() + static_cast<std::ptrdiff_t>(i * longest));
    s.lengths.push_back(static_cast<std::int64_t>(rows[i].size()));
  }
  s.src = Tensor::from_vector(
      ids, {static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(longest)});
  return s;
}

// Adds `bias` to the output layer's bias for </s>.
void add_eos_bias(Seq2Seq& model, double bias) {
  for (auto& [name, p] : model.named_parameters()) {
    if (!name.ends_with("project.bias")) continue;
    Tensor b = p.data();
    b.data<double>()[kEosId] += bias;
  }
}

Hypothesis decode_alone(const Seq2Seq& model, const std::vector<std::int64_t>& source,
                        const SearchOptions& opt) {
  const Sources s = pad({source});
  return beam_search(model, s.src, s.lengths, opt).at(0);
}

std::vector<Hypothesis> decode_batch(const Seq2Seq& model,
                                     const std::vector<std::vector<std::int64_t>>& sources,
                                     const SearchOptions& opt, int workers) {
  const Sources s = pad(sources);
  return parallel_beam_search({&model}, s.src, s.lengths, opt, workers);
}

void same_result(const Hypothesis& got, const Hypothesis& want) {
  CHECK(got.tokens == want.tokens);
  CHECK(got.capped == want.capped);
  CHECK(got.score == doctest::Approx(want.score).epsilon(1e-9));
  CHECK(got.attention.size() == want.attention.size());
}

TEST_CASE("decode cap: an input decodes alone as inside a batch of mixed lengths") {
  for (const std::string attention : {"general", "none"}) {
    Generator gen(11);
    Seq2Seq model(cap_config(attention), gen);
    model.eval();
    const auto sources = mixed_sources(gen);
    // Raise </s> until some outputs end early and some run to their cap: both cases are met.
    const auto kinds = [&](const std::vector<Hypothesis>& hyps) {
      std::pair<int, int> capped_ended{0, 0};
      for (const auto& h : hyps) (h.capped ? capped_ended.first : capped_ended.second) += 1;
      return capped_ended;
    };
    std::vector<Hypothesis> greedy;
    for (int tries = 0; tries < 40; ++tries) {
      greedy.clear();
      for (const auto& s : sources) greedy.push_back(decode_alone(model, s, {.beam = 1}));
      const auto [capped, ended] = kinds(greedy);
      if (capped > 0 && ended > 0) break;
      add_eos_bias(model, ended == 0 ? 0.25 : -0.1);
    }
    const auto [capped, ended] = kinds(greedy);
    REQUIRE(capped > 0);
    REQUIRE(ended > 0);
    for (const std::int64_t beam : {1, 3}) {
      const SearchOptions opt{.beam = beam};  // max_len 0: per source
      std::vector<Hypothesis> alone;
      for (const auto& s : sources) alone.push_back(decode_alone(model, s, opt));
      for (std::size_t i = 0; i < sources.size(); ++i) {
        const auto cap =
            static_cast<std::size_t>(max_len_for(static_cast<std::int64_t>(sources[i].size())));
        CHECK(alone[i].tokens.size() <= cap);
        // Capped exactly when the output ran to its own cap without </s>.
        CHECK(alone[i].capped == (alone[i].tokens.size() == cap));
      }
      for (const int workers : {1, 2}) {
        CAPTURE(attention);
        CAPTURE(beam);
        CAPTURE(workers);
        const auto batch = decode_batch(model, sources, opt, workers);
        REQUIRE(batch.size() == sources.size());
        for (std::size_t i = 0; i < sources.size(); ++i) {
          CAPTURE(i);
          same_result(batch[i], alone[i]);
        }
      }
    }
  }
}

TEST_CASE("decode cap: an explicit max_len caps every source the same and marks it") {
  Generator gen(12);
  Seq2Seq model(cap_config("general"), gen);
  model.eval();
  const auto sources = mixed_sources(gen);
  const auto batch = decode_batch(model, sources, {.beam = 2, .max_len = 4}, 1);
  for (std::size_t i = 0; i < sources.size(); ++i) {
    CAPTURE(i);
    CHECK(batch[i].tokens.size() <= 4);
    CHECK(batch[i].capped == (batch[i].tokens.size() == 4));
    same_result(batch[i], decode_alone(model, sources[i], {.beam = 2, .max_len = 4}));
  }
  CHECK(max_len_for(7) == 24);
  const Sources s = pad(sources);
  CHECK_THROWS_WITH_AS(beam_search(model, s.src, s.lengths, {.beam = 1, .max_len = -1}),
                       doctest::Contains("max_len -1 >= 0"), ValueError);
  CHECK_THROWS_WITH_AS(beam_search(model, s.src, {1, 2}, {}),
                       doctest::Contains("2 lengths for a batch of 7 sources"), ValueError);
}

// score / len^alpha, len counting </s>, as beam search ranks finished outputs.
double ranked(const Hypothesis& h, double alpha) {
  return h.score / std::pow(static_cast<double>(h.tokens.size() + 1), alpha);
}

TEST_CASE("length penalty: each alpha's output ranks best by score / len^alpha") {
  Generator gen(13);
  Seq2Seq model(cap_config("general"), gen);
  model.eval();
  add_eos_bias(model, 0.5);  // outputs of many lengths, most ended by </s>
  const auto sources = mixed_sources(gen);
  const std::vector<double> alphas{0.0, 0.25, 0.6, 1.0, 2.0};
  int longer = 0;  // sources whose output grows with alpha
  for (std::size_t i = 0; i < sources.size(); ++i) {
    std::vector<Hypothesis> hyps;
    for (const double alpha : alphas)
      hyps.push_back(decode_alone(model, sources[i], {.beam = 4, .length_penalty = alpha}));
    for (std::size_t a = 0; a < alphas.size(); ++a) {
      CAPTURE(i);
      CAPTURE(alphas[a]);
      // Every alpha's search finishes the same outputs and more, so each alpha's choice ranks
      // at least as well, by its own alpha, as every other alpha's choice.
      for (const auto& other : hyps)
        CHECK(ranked(hyps[a], alphas[a]) >= ranked(other, alphas[a]) - 1e-12);
      // Log-probabilities are negative: a larger alpha never picks a shorter output.
      if (a > 0) CHECK(hyps[a].tokens.size() >= hyps[a - 1].tokens.size());
    }
    if (hyps.back().tokens.size() > hyps.front().tokens.size()) ++longer;
  }
  CHECK(longer > 0);
  const Sources s = pad(sources);
  for (const double bad : {-0.5, std::nan("")}) {
    CHECK_THROWS_WITH_AS(beam_search(model, s.src, s.lengths, {.beam = 2, .length_penalty = bad}),
                         doctest::Contains("length_penalty"), ValueError);
  }
}

}  // namespace
}  // namespace seqgrad
