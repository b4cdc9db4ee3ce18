// One example, teacher-forced, with every quantity the explain page draws kept as its own
// Variable so backward leaves its gradient there (retain_grad).
// Shape legend: S source length, T target length, V vocabulary, K heads, H hidden.
#include "seq2seq/explain.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "seq2seq/transformer_model.h"
#include "tensor/reduce.h"

namespace seqgrad {

namespace {

// One teacher-forced pass over the example, keeping each step and each encoder state.
struct Pass {
  RNNTrace trace;
  std::vector<DecoderStep> steps;
  std::vector<Variable> logits;  // [1,V] per step
  std::vector<Variable> losses;  // loss_i, scalars
};

Pass forward(const Seq2Seq& model, const std::vector<std::int64_t>& source,
             const std::vector<std::int64_t>& target) {
  const auto S = static_cast<std::int64_t>(source.size());
  Pass p;
  const EncoderOutput enc = model.encode(Tensor::from_vector(source, {1, S}), {S}, &p.trace);
  auto [memory, state] = model.start(enc);
  std::int64_t y_prev = kBosId;
  for (const std::int64_t y : target) {
    DecoderStep s =
        model.decoder().step(Tensor::from_vector(std::vector{y_prev}, {1}), state, memory);
    state = s.state;
    p.logits.push_back(model.decoder().logits(s.output));
    p.losses.push_back(cross_entropy(p.logits.back(), Tensor::from_vector(std::vector{y}, {1}), -1,
                                     0.0, Reduction::sum));
    p.steps.push_back(std::move(s));
    y_prev = y;
  }
  return p;
}

// The attention Variables of one step, one per head: [1,S] or [1,K,S].
Variable step_weights(const DecoderStep& s) {
  return s.head_weights.defined() ? s.head_weights : s.weights;
}

// Row k (a head) of a [1,S] or [1,K,S] tensor, as doubles; zeros when undefined.
std::vector<double> head_row(const Tensor& t, std::int64_t k, std::int64_t S) {
  if (!t.defined()) return std::vector<double>(static_cast<std::size_t>(S), 0.0);
  const Tensor row = t.dim() == 3 ? t.select(1, k) : t;
  return row.reshape({S}).to_vector<double>();
}

void fill_attention(const Pass& p, std::int64_t S, Explanation& x) {
  const std::size_t K = static_cast<std::size_t>(x.heads);
  for (auto* m : {&x.weights, &x.dweights, &x.scores, &x.dscores}) m->assign(K, Matrix{});
  for (const DecoderStep& s : p.steps) {
    const Variable a = step_weights(s);
    for (std::size_t k = 0; k < K; ++k) {
      const auto kk = static_cast<std::int64_t>(k);
      x.weights[k].push_back(head_row(a.data(), kk, S));
      x.dweights[k].push_back(head_row(a.grad(), kk, S));
      x.scores[k].push_back(head_row(s.scores.data(), kk, S));
      x.dscores[k].push_back(head_row(s.scores.grad(), kk, S));
    }
  }
}

// || d loss_i / d h_j || for every j, from one pass whose loss_i has been backpropagated.
std::vector<double> state_norms(const Pass& p, const Seq2Seq& model, std::int64_t S) {
  const std::size_t D = model.config().bidirectional ? 2 : 1;
  const std::size_t top = p.trace.h.size() - D;
  std::vector<double> norms(static_cast<std::size_t>(S), 0.0);
  for (std::size_t d = 0; d < D; ++d) {
    for (std::size_t j = 0; j < norms.size(); ++j) {
      const Tensor& g = p.trace.h[top + d][j].grad();
      if (!g.defined()) continue;
      for (double v : g.to_vector<double>()) norms[j] += v * v;
    }
  }
  for (double& n : norms) n = std::sqrt(n);
  return norms;
}

Explanation explain_recurrent(Seq2Seq& model, const std::vector<std::int64_t>& source,
                              const std::vector<std::int64_t>& target) {
  const auto S = static_cast<std::int64_t>(source.size());
  Explanation x;
  x.source = source;
  x.target = target;
  x.heads = model.decoder().has_attention() ? model.config().heads : 0;
  x.layers = x.heads > 0 ? 1 : 0;
  {
    Pass p = forward(model, source, target);
    if (x.heads > 0) {
      if (!p.steps.front().head_weights.defined()) x.heads = 1;
      for (DecoderStep& s : p.steps) {
        Variable a = step_weights(s);
        a.retain_grad();
        s.scores.retain_grad();
      }
    }
    const Variable total = sum(stack(p.losses, 0));
    total.backward();
    x.loss = total.item();
    for (std::size_t i = 0; i < p.losses.size(); ++i) {
      x.step_loss.push_back(p.losses[i].item());
      x.predicted.push_back(static_cast<std::int64_t>(argmax(p.logits[i].data(), 1).item()));
    }
    if (x.heads > 0) fill_attention(p, S, x);
  }
  for (std::size_t i = 0; i < target.size(); ++i) {
    Pass p = forward(model, source, target);
    for (auto& direction : p.trace.h) {
      for (Variable& h : direction) h.retain_grad();
    }
    p.losses[i].backward();
    x.state_grad.push_back(state_norms(p, model, S));
  }
  return x;
}

// --- the Transformer families ---

// One teacher-forced pass of a Transformer family, with the losses of its steps.
struct TracedSteps {
  TracedPass pass;
  std::vector<Variable> losses;  // loss_i, scalars
};

TracedSteps traced_steps(const Seq2Seq& model, const std::vector<std::int64_t>& source,
                         const std::vector<std::int64_t>& target) {
  const auto S = static_cast<std::int64_t>(source.size());
  const auto T = static_cast<std::int64_t>(target.size());
  std::vector<std::int64_t> input{kBosId};  // <s> y_1 .. y_{T-1}
  input.insert(input.end(), target.begin(), target.end() - 1);
  const Tensor src = Tensor::from_vector(source, {1, S}),
               tgt_in = Tensor::from_vector(input, {1, T});
  TracedSteps t;
  if (const auto* m = dynamic_cast<const TransformerSeq2Seq*>(&model.architecture())) {
    t.pass = m->traced(src, tgt_in);
  } else {
    t.pass = dynamic_cast<const DecoderOnly&>(model.architecture()).traced(src, tgt_in);
  }
  const Variable logits = reshape(t.pass.logits, {T, -1});
  for (std::int64_t i = 0; i < T; ++i) {
    t.losses.push_back(cross_entropy(narrow(logits, 0, i, 1),
                                     Tensor::from_vector(std::vector{target[i]}, {1}), -1, 0.0,
                                     Reduction::sum));
  }
  return t;
}

// Rows [first, first + count) of head k of a [1,K,R,C] tensor, as doubles.
Matrix head_rows(const Tensor& t, std::int64_t k, std::int64_t first, std::int64_t count) {
  const Tensor m = t.select(0, 0).select(0, k).narrow(0, first, count).contiguous();
  const std::vector<double> v = m.to_vector<double>();
  const auto C = static_cast<std::size_t>(m.size(1));
  Matrix out;
  for (std::size_t r = 0; r < static_cast<std::size_t>(count); ++r) {
    out.emplace_back(v.begin() + static_cast<std::ptrdiff_t>(r * C),
                     v.begin() + static_cast<std::ptrdiff_t>((r + 1) * C));
  }
  return out;
}

void fill_layers(const TracedSteps& t, Explanation& x) {
  const auto S = static_cast<std::int64_t>(x.source.size());
  const auto T = static_cast<std::int64_t>(x.target.size());
  const std::int64_t first = x.arch == Arch::decoder_only ? S : 0;  // the rows predicting y
  for (const SdpaTrace& layer : t.pass.attention) {
    for (std::int64_t k = 0; k < x.heads; ++k) {
      x.weights.push_back(head_rows(layer.weights.data(), k, first, T));
      x.dweights.push_back(head_rows(layer.weights.grad(), k, first, T));
      x.scores.push_back(head_rows(layer.scores.data(), k, first, T));
      x.dscores.push_back(head_rows(layer.scores.grad(), k, first, T));
    }
  }
}

// || d loss_i / d h_j || over the model width, for each source position j.
std::vector<double> position_norms(const Tensor& grad, std::int64_t S) {
  std::vector<double> norms(static_cast<std::size_t>(S), 0.0);
  if (!grad.defined()) return norms;
  const std::vector<double> g = grad.contiguous().to_vector<double>();
  const std::size_t E = g.size() / norms.size();
  for (std::size_t j = 0; j < norms.size(); ++j) {
    for (std::size_t e = 0; e < E; ++e) norms[j] += g[j * E + e] * g[j * E + e];
    norms[j] = std::sqrt(norms[j]);
  }
  return norms;
}

Explanation explain_transformer(Seq2Seq& model, const std::vector<std::int64_t>& source,
                                const std::vector<std::int64_t>& target) {
  Explanation x;
  x.arch = model.arch();
  x.source = source;
  x.target = target;
  x.heads = model.config().heads;
  x.layers = model.config().layers;
  x.target_keys = x.arch == Arch::decoder_only ? static_cast<std::int64_t>(target.size()) : 0;
  {
    TracedSteps t = traced_steps(model, source, target);
    for (SdpaTrace& layer : t.pass.attention) {
      layer.weights.retain_grad();
      layer.scores.retain_grad();
    }
    const Variable total = sum(stack(t.losses, 0));
    total.backward();
    x.loss = total.item();
    const Tensor logits =
        reshape(t.pass.logits, {static_cast<std::int64_t>(target.size()), -1}).data();
    for (std::size_t i = 0; i < t.losses.size(); ++i) {
      x.step_loss.push_back(t.losses[i].item());
      x.predicted.push_back(static_cast<std::int64_t>(
          argmax(logits.narrow(0, static_cast<std::int64_t>(i), 1), 1).item()));
    }
    fill_layers(t, x);
  }
  for (std::size_t i = 0; i < target.size(); ++i) {
    TracedSteps t = traced_steps(model, source, target);
    t.pass.source_states.retain_grad();
    t.losses[i].backward();
    x.state_grad.push_back(
        position_norms(t.pass.source_states.grad(), static_cast<std::int64_t>(source.size())));
  }
  return x;
}

}  // namespace

Explanation explain(Seq2Seq& model, const std::vector<std::int64_t>& source,
                    const std::vector<std::int64_t>& target) {
  if (source.empty() || target.empty() || target.back() != kEosId) {
    throw ValueError(fmt::format(
        "explain: the source ({} ids) and target ({} ids) must not be empty, and the target "
        "must end with </s>",
        source.size(), target.size()));
  }
  Explanation x = model.arch() == Arch::rnn ? explain_recurrent(model, source, target)
                                            : explain_transformer(model, source, target);
  model.zero_grad();
  return x;
}

Matrix softmax_backward_rows(const Matrix& a, const Matrix& da) {
  Matrix de(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    double dot = 0;  // sum_k a_ik dL/da_ik
    for (std::size_t k = 0; k < a[i].size(); ++k) dot += a[i][k] * da[i][k];
    for (std::size_t j = 0; j < a[i].size(); ++j) de[i].push_back(a[i][j] * (da[i][j] - dot));
  }
  return de;
}

}  // namespace seqgrad
