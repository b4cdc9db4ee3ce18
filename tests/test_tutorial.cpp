// docs/attention-backprop.md, checked: every formula block in the tutorial carries a marker
// `<!-- check: NAME -->` on the line above it, and there is one case per NAME that evaluates
// exactly that formula by hand (plain loops over doubles) on random float64 inputs and random
// upstream gradients, and compares it with what the library and autograd compute: the forward
// formulas here, the backward ones in test_tutorial_backward.cpp, the registry and the by-hand
// helpers in tutorial_checks.h. Two last cases here read the tutorial: its set of markers must
// equal the set of checks (and every ```text block must carry a marker), and every
// `dir/file:function` it points to must exist.
//
// To add a formula to the tutorial: put `<!-- check: NAME -->` right above its ```text block,
// then write `TUTORIAL_CHECK(NAME) { ... }` in one of the two files, which both registers NAME
// and defines the case. Shape legend: B batch, S source length, H hidden, A attention size, V
// vocabulary.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
// GCC 12 reports a false -Wmaybe-uninitialized inside <regex>'s automaton (std::function moved
// into a state) under the sanitizer build's flags; the warning is about the library's code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tutorial_checks.h"

namespace seqgrad {
namespace {

using namespace tutorial;  // NOLINT(google-build-using-namespace): the checks' own helpers

// --- forward: scores, weights, context ---

TUTORIAL_CHECK(dot_score) {
  // e_j = q . k_j
  const std::size_t B = 2, S = 4, H = 3;
  Generator gen(101);
  const Vec q = randn(gen, B * H), k = randn(gen, B * S * H);
  const auto scorer = make_scorer("dot", scorer_config(H, H, 0, gen));
  const Variable keys(tensor(k, {B, S, H}));
  const Variable e = scorer->score(Variable(tensor(q, {B, H})), scorer->prepare(keys));
  Vec want(B * S, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t h = 0; h < H; ++h) want[b * S + j] += q[b * H + h] * k[(b * S + j) * H + h];
    }
  }
  check_close(values(e), want, "e");
}

TUTORIAL_CHECK(general_score) {
  // e_j = q^T W k_j, W [Hq,Hk]
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5;
  Generator gen(102);
  const Vec q = randn(gen, B * Hq), k = randn(gen, B * S * Hk);
  const auto scorer = make_scorer("general", scorer_config(Hq, Hk, 0, gen));
  const Vec w = values(scorer->parameter("W.weight"));
  REQUIRE(w.size() == Hq * Hk);
  const Variable e =
      scorer->score(Variable(tensor(q, {B, Hq})), scorer->prepare(Variable(tensor(k, {B, S, Hk}))));
  Vec want(B * S, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t r = 0; r < Hq; ++r) {
        for (std::size_t c = 0; c < Hk; ++c) {
          want[b * S + j] += q[b * Hq + r] * w[r * Hk + c] * k[(b * S + j) * Hk + c];
        }
      }
    }
  }
  check_close(values(e), want, "e");
}

TUTORIAL_CHECK(concat_score) {
  // e_j = v . tanh(W q + U k_j + b)
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5, A = 6;
  Generator gen(103);
  const Vec q = randn(gen, B * Hq), k = randn(gen, B * S * Hk);
  const auto scorer = make_scorer("concat", scorer_config(Hq, Hk, A, gen));
  const Concat p(*scorer);
  REQUIRE(p.v.size() == A);
  const Variable e =
      scorer->score(Variable(tensor(q, {B, Hq})), scorer->prepare(Variable(tensor(k, {B, S, Hk}))));
  Vec want;
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      const Vec t = p.t(row(q, b, Hq), row(k, b * S + j, Hk));
      double s = 0;
      for (std::size_t a = 0; a < A; ++a) s += p.v[a] * t[a];
      want.push_back(s);
    }
  }
  check_close(values(e), want, "e");
}

TUTORIAL_CHECK(softmax_weights) {
  // a_j = exp(e_j - m) / sum_k exp(e_k - m) over real positions, 0 at padding
  const std::size_t B = 2, S = 4, H = 3;
  const std::vector<std::int64_t> lengths{4, 2};
  Generator gen(104);
  const Vec q = randn(gen, B * H), k = randn(gen, B * S * H);
  Attention attention(make_scorer("dot", scorer_config(H, H, 0, gen)));
  const AttentionResult r =
      attention.attend(Variable(tensor(q, {B, H})),
                       attention.memory(Variable(tensor(k, {B, S, H})), length_mask(lengths, S)));
  const Vec e = values(r.scores);
  Vec want(B * S, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    const auto n = static_cast<std::size_t>(lengths[b]);
    double m = e[b * S];
    for (std::size_t j = 0; j < n; ++j) m = std::max(m, e[b * S + j]);
    double total = 0;
    for (std::size_t j = 0; j < n; ++j) total += std::exp(e[b * S + j] - m);
    for (std::size_t j = 0; j < n; ++j) want[b * S + j] = std::exp(e[b * S + j] - m) / total;
  }
  check_close(values(r.weights), want, "a");
}

TUTORIAL_CHECK(context_sum) {
  // c = sum_j a_j h_j
  const std::size_t B = 2, S = 4, Hq = 3, Hk = 5;
  Generator gen(105);
  const Vec q = randn(gen, B * Hq), hs = randn(gen, B * S * Hk);
  Attention attention(make_scorer("general", scorer_config(Hq, Hk, 0, gen)));
  const AttentionResult r =
      attention.attend(Variable(tensor(q, {B, Hq})),
                       attention.memory(Variable(tensor(hs, {B, S, Hk})), length_mask({4, 3}, S)));
  const Vec a = values(r.weights);
  Vec want(B * Hk, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t j = 0; j < S; ++j) {
      for (std::size_t h = 0; h < Hk; ++h) {
        want[b * Hk + h] += a[b * S + j] * hs[(b * S + j) * Hk + h];
      }
    }
  }
  check_close(values(r.context), want, "c");
}

TUTORIAL_CHECK(fixed_context) {
  // c = [fwd h_S ; bwd h_1] at every step; h_t = LSTM([E y_{t-1}; c], s_{t-1});
  // o_t = tanh(W_c [c; h_t] + b_c)
  const std::size_t B = 2, S = 3, He = 3, H = 4, E = 3, C = 2 * He;
  Generator gen(106);
  Decoder decoder(decoder_config("none"), gen);
  decoder.eval();
  EncoderOutput enc;
  enc.states = Variable(tensor(randn(gen, B * S * C), {B, S, C}));
  enc.lengths = {3, 3};
  enc.mask = length_mask(enc.lengths, S);
  const Vec final_h = randn(gen, 2 * B * He);  // [L*D=2, B, He]: forward, then backward
  enc.final.h = Variable(tensor(final_h, {2, B, He}));
  enc.final.c = Variable(tensor(randn(gen, 2 * B * He), {2, B, He}));
  const DecoderMemory m = decoder.memory(enc);
  Vec h = randn(gen, B * H), c = randn(gen, B * H);
  DecoderState state =
      decoder.initial({Variable(tensor(h, {1, B, H})), Variable(tensor(c, {1, B, H}))},
                      static_cast<std::int64_t>(B));
  const Vec emb = values(decoder.parameter("embedding.weight"));
  const Vec wc = values(decoder.parameter("combine.weight")),
            bc = values(decoder.parameter("combine.bias"));
  const std::vector<std::vector<std::int64_t>> inputs{{1, 5}, {6, 2}};  // y_{t-1} for t = 1, 2
  for (const auto& y : inputs) {
    const DecoderStep step = decoder.step(Tensor::from_vector(y, {2}), state, m);
    Vec want_c, want_h, want_cell, want_o;
    for (std::size_t b = 0; b < B; ++b) {
      Vec ctx = row(final_h, b, He);         // forward direction, layer 0: after step S
      append(ctx, row(final_h, B + b, He));  // backward direction: after position 1
      Vec x = row(emb, static_cast<std::size_t>(y[b]), E);
      append(x, ctx);
      const LstmByHand s = lstm_step(decoder, "rnn.", x, row(h, b, H), row(c, b, H));
      Vec ch = ctx;
      append(ch, s.h);
      const Vec z = affine(wc, ch, bc, H);
      for (double v : z) want_o.push_back(std::tanh(v));
      append(want_c, ctx);
      append(want_h, s.h);
      append(want_cell, s.c);
    }
    check_close(values(m.fixed_context), want_c, "c");
    check_close(values(step.state.rnn.h), want_h, "h_t");
    check_close(values(step.state.rnn.c), want_cell, "cell c_t");
    check_close(values(step.output), want_o, "o_t");
    h = want_h;
    c = want_cell;
    state = step.state;
  }
}

TUTORIAL_CHECK(luong_output) {
  // h_t = LSTM([E y_{t-1}; o_{t-1}], s_{t-1});  c_t = attend(h_t);
  // o_t = tanh(W_c [c_t; h_t] + b_c);  logits_t = W_o o_t + b_o
  LuongStep s;
  using L = LuongStep;
  const Vec emb = s.param("embedding.weight");
  Vec want_h, want_o, want_logits;
  for (std::size_t b = 0; b < L::B; ++b) {
    Vec x = row(emb, static_cast<std::size_t>(s.y_prev[b]), L::E);
    append(x, row(s.feed, b, L::H));
    append(want_h, lstm_step(s.decoder, "rnn.", x, row(s.h0, b, L::H), row(s.c0, b, L::H)).h);
    Vec o = affine(s.param("combine.weight"), s.context_and_h(b), s.param("combine.bias"), L::H);
    for (double& v : o) v = std::tanh(v);
    append(want_logits, affine(s.param("project.weight"), o, s.param("project.bias"), L::V));
    append(want_o, o);
  }
  check_close(values(s.step.state.rnn.h), want_h, "h_t");
  check_close(values(s.step.output), want_o, "o_t");
  check_close(values(s.logits), want_logits, "logits_t");
}

// --- the document and the checks agree ---

const std::string kTutorial = std::string(SEQGRAD_SOURCE_DIR) + "/docs/attention-backprop.md";

std::vector<std::string> tutorial_lines() {
  std::ifstream in(kTutorial);
  REQUIRE_MESSAGE(in.good(), "cannot read ", kTutorial);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string joined(const std::set<std::string>& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

TEST_CASE("tutorial: the document's formula markers are exactly the TUTORIAL_CHECK cases") {
  const std::vector<std::string> lines = tutorial_lines();
  const std::regex marker(R"(^<!-- check: ([a-z0-9_]+) -->$)");
  std::set<std::string> in_text;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    CAPTURE(i + 1);
    CAPTURE(lines[i]);
    std::smatch m;
    if (std::regex_match(lines[i], m, marker)) {
      CHECK_MESSAGE(in_text.insert(m[1]).second, "a marker used twice");
      // The marker sits right above its formula block.
      CHECK_MESSAGE((i + 1 < lines.size() && lines[i + 1] == "```text"),
                    "a marker must be followed by a ```text formula block");
    } else if (lines[i].starts_with("<!--") && lines[i].find("check") != std::string::npos) {
      FAIL_CHECK("a malformed marker (write <!-- check: name --> alone on its line)");
    }
    // Every formula block is checked: a ```text block has a marker right above it.
    if (lines[i] == "```text") {
      CHECK_MESSAGE((i > 0 && std::regex_match(lines[i - 1], marker)),
                    "a ```text formula block with no <!-- check: name --> above it");
    }
  }
  std::set<std::string> unchecked, unused;
  std::ranges::set_difference(in_text, checked_names(), std::inserter(unchecked, unchecked.end()));
  std::ranges::set_difference(checked_names(), in_text, std::inserter(unused, unused.end()));
  CHECK_MESSAGE(unchecked.empty(), "formulas in the text with no check here: ", joined(unchecked));
  CHECK_MESSAGE(unused.empty(), "checks here with no formula in the text: ", joined(unused));
  CHECK(checked_names().size() >= 15);
}

TEST_CASE("tutorial: every file:function the document points to exists") {
  const std::vector<std::string> lines = tutorial_lines();
  // `dir/file.cpp` or `dir/file.h` (a path from the root), optionally `:name` or `:Class::name`
  const std::regex ref(R"(`([a-z0-9_]+(?:/[a-z0-9_]+)+\.(?:cpp|h))(?::([A-Za-z0-9_:]+))?`)");
  std::size_t functions = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    for (auto it = std::sregex_iterator(lines[i].begin(), lines[i].end(), ref);
         it != std::sregex_iterator(); ++it) {
      const std::string path = (*it)[1], name = (*it)[2];
      CAPTURE(i + 1);
      CAPTURE(path);
      CAPTURE(name);
      std::ifstream in(std::string(SEQGRAD_SOURCE_DIR) + "/" + path);
      REQUIRE_MESSAGE(in.good(), "the tutorial names a file that does not exist");
      if (name.empty()) continue;
      std::stringstream text;
      text << in.rdbuf();
      // The last part of the name, as it appears where it is defined or declared: `name(`.
      const std::size_t colon = name.rfind(':');
      const std::string last = colon == std::string::npos ? name : name.substr(colon + 1);
      CHECK_MESSAGE(text.str().find(last + "(") != std::string::npos,
                    "the tutorial names a function its file does not have");
      ++functions;
    }
  }
  CHECK(functions >= 15);
}

}  // namespace
}  // namespace seqgrad
