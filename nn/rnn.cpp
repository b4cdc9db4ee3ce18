// Recurrent layers, written from autograd primitives: the input projection of a whole sequence
// is one matmul; each step adds the recurrent projection and applies the gate nonlinearities.
// An LSTM layer's whole sequence is one fused node instead (autograd lstm_layer); RNN::step,
// one step at a time, still goes through cell_step. The per-step products read packed copies of
// W^T and W (made once a run, or by step_weights for a sequence of step calls) through
// matmul_transposed: for a small batch, gemm's own copy of the weight at every call costs more.
// Shape legend: B batch, T time, I input size, H hidden size, G gates, L layers, D directions.
#include "nn/rnn.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "nn/dropout.h"
#include "tensor/elementwise.h"

namespace seqgrad {

std::string_view cell_name(CellType cell) {
  switch (cell) {
    case CellType::rnn_tanh:
      return "rnn";
    case CellType::gru:
      return "gru";
    case CellType::lstm:
      return "lstm";
  }
  return "?";
}

CellType parse_cell(std::string_view name) {
  if (name == "rnn") return CellType::rnn_tanh;
  if (name == "gru") return CellType::gru;
  if (name == "lstm") return CellType::lstm;
  throw ValueError(fmt::format("unknown cell '{}' (known: rnn, gru, lstm)", name));
}

namespace {
std::int64_t gate_count(CellType cell) {
  return cell == CellType::lstm ? 4 : cell == CellType::gru ? 3 : 1;
}
}  // namespace

RNN::RNN(const RNNOptions& options, Generator& gen) : opt_(options), gen_(&gen) {
  if (opt_.input_size <= 0 || opt_.hidden_size <= 0 || opt_.num_layers <= 0) {
    throw ValueError(
        fmt::format("RNN: input_size {}, hidden_size {} and num_layers {} must be "
                    "positive",
                    opt_.input_size, opt_.hidden_size, opt_.num_layers));
  }
  if (!(opt_.dropout >= 0 && opt_.dropout < 1)) {
    throw ValueError(fmt::format("RNN: dropout {} is outside [0, 1)", opt_.dropout));
  }
  const std::int64_t H = opt_.hidden_size, G = gate_count(opt_.cell);
  const double bound = 1.0 / std::sqrt(static_cast<double>(H));
  for (std::int64_t layer = 0; layer < opt_.num_layers; ++layer) {
    const std::int64_t in = layer == 0 ? opt_.input_size : H * directions();
    for (std::int64_t dir = 0; dir < directions(); ++dir) {
      const std::string suffix = fmt::format("_l{}{}", layer, dir == 1 ? "_reverse" : "");
      auto init = [&](Shape s) { return uniform(s, -bound, bound, opt_.dtype, gen); };
      Weights w;
      w.w_ih = register_parameter("weight_ih" + suffix, init({G * H, in}));
      w.w_hh = register_parameter("weight_hh" + suffix, init({G * H, H}));
      if (opt_.bias) {
        w.b_ih = register_parameter("bias_ih" + suffix, init({G * H}));
        w.b_hh = register_parameter("bias_hh" + suffix, init({G * H}));
      }
      weights_.push_back(w);
    }
  }
}

// clang-format off
// xp = x W_ih^T + b_ih for this step; hp = h W_hh^T + b_hh.
//   RNN:  h' = tanh(xp + hp)
//   LSTM: i,f,g,o = split(xp + hp); c' = sigmoid(f) c + sigmoid(i) tanh(g);
//         h' = sigmoid(o) tanh(c')
//   GRU:  r = sigmoid(xp_r + hp_r); z = sigmoid(xp_z + hp_z); n = tanh(xp_n + r * hp_n);
//         h' = (1 - z) n + z h = n + z (h - n)
// clang-format on
RNN::CellState RNN::cell_step(const Variable& xp, Variable hp, const CellState& s,
                              const Weights& w) const {
  const std::int64_t H = opt_.hidden_size;
  if (w.b_hh.defined()) hp = hp + w.b_hh;
  switch (opt_.cell) {
    case CellType::rnn_tanh:
      return {tanh(xp + hp), {}};
    case CellType::lstm: {  // one fused node (autograd lstm_cell) for the gate arithmetic
      const Variable hc = lstm_cell(xp + hp, s.c);
      return {narrow(hc, 1, 0, H), narrow(hc, 1, H, H)};
    }
    case CellType::gru:  // one fused node (autograd gru_cell) for the gate arithmetic
      return {gru_cell(xp, hp, s.h), {}};
  }
  return {};
}

RNN::CellState RNN::initial(const RNNState& init, std::size_t index, std::int64_t batch) const {
  const Shape want{opt_.num_layers * directions(), batch, opt_.hidden_size};
  auto pick = [&](const Variable& v, const char* what) {
    if (!v.defined()) return Variable(Tensor::zeros({batch, opt_.hidden_size}, opt_.dtype));
    if (v.shape() != want) {
      throw ShapeError(fmt::format("RNN: initial {} is {}, expected {} ([L*D, B, H])", what,
                                   shape_str(v.shape()), shape_str(want)));
    }
    return select(v, 0, static_cast<std::int64_t>(index));
  };
  CellState s{pick(init.h, "h"), {}};
  if (opt_.cell == CellType::lstm) s.c = pick(init.c, "c");
  return s;
}

std::pair<Variable, RNN::CellState> RNN::run(const Variable& x,
                                             const std::vector<std::int64_t>& lengths,
                                             std::size_t index, bool reverse, CellState s,
                                             std::vector<Variable>* trace) const {
  const Weights& w = weights_[index];
  const std::int64_t B = x.size(0), T = x.size(1);
  if (trace != nullptr) trace->assign(static_cast<std::size_t>(T), Variable());
  if (opt_.cell == CellType::lstm &&
      trace == nullptr) {  // the whole sequence as one node (autograd lstm_layer)
    const Variable y = lstm_layer(x, s.h, s.c, w.w_ih, w.w_hh, w.b_ih, w.b_hh, lengths, reverse);
    return {narrow(y, 1, 0, T), {select(y, 1, T), select(y, 1, T + 1)}};
  }
  Variable xp = matmul(x, transpose(w.w_ih, 0, 1));  // [B,T,G*H]
  if (w.b_ih.defined()) xp = xp + w.b_ih;
  const PackedMatrix w_hh_t(w.w_hh.data().transpose(0, 1));  // for all T steps
  const PackedMatrix w_hh = grad_enabled() ? PackedMatrix(w.w_hh.data()) : PackedMatrix();
  const std::int64_t min_len =
      lengths.empty() ? T : *std::min_element(lengths.begin(), lengths.end());
  std::vector<Variable> outs(T);
  for (std::int64_t k = 0; k < T; ++k) {
    const std::int64_t t = reverse ? T - 1 - k : k;
    CellState next =
        cell_step(select(xp, 1, t), matmul_transposed(s.h, w.w_hh, w_hh_t, w_hh), s, w);
    if (t < min_len) {  // every sequence is still running
      outs[t] = next.h;
      s = next;
      if (trace != nullptr) (*trace)[static_cast<std::size_t>(t)] = s.h;
      continue;
    }
    // Sequences already past their end keep their state and emit zeros.
    Tensor active = Tensor::empty({B, 1}, DType::boolean);
    auto* pa = static_cast<std::uint8_t*>(active.raw_data());
    for (std::int64_t b = 0; b < B; ++b) pa[b] = t < lengths[b];
    outs[t] = masked_fill(next.h, logical_not(active), 0.0);
    s.h = where(active, next.h, s.h);
    if (opt_.cell == CellType::lstm) s.c = where(active, next.c, s.c);
    if (trace != nullptr) (*trace)[static_cast<std::size_t>(t)] = s.h;
  }
  return {stack(outs, 1), s};
}

RNNOutput RNN::forward(const Variable& x, const std::vector<std::int64_t>& lengths,
                       const RNNState& init, RNNTrace* trace) const {
  if (x.dim() != 3 || x.size(2) != opt_.input_size || x.size(1) == 0) {
    throw ShapeError(fmt::format("RNN: input {} must be [B,T,{}] with T > 0", shape_str(x.shape()),
                                 opt_.input_size));
  }
  const std::int64_t B = x.size(0), T = x.size(1);
  if (!lengths.empty()) {
    if (static_cast<std::int64_t>(lengths.size()) != B) {
      throw ShapeError(fmt::format("RNN: {} lengths for a batch of {}", lengths.size(), B));
    }
    for (auto len : lengths) {
      if (len < 1 || len > T) {
        throw ValueError(fmt::format("RNN: length {} is outside [1, {}]", len, T));
      }
    }
  }
  Variable layer_in = x;
  std::vector<Variable> hs, cs;
  if (trace != nullptr)
    trace->h.assign(static_cast<std::size_t>(opt_.num_layers * directions()), {});
  for (std::int64_t layer = 0; layer < opt_.num_layers; ++layer) {
    if (layer > 0) layer_in = dropout(layer_in, opt_.dropout, training(), *gen_);
    std::vector<Variable> dir_out;
    for (std::int64_t dir = 0; dir < directions(); ++dir) {
      const std::size_t index = static_cast<std::size_t>(layer * directions() + dir);
      auto [out, s] = run(layer_in, lengths, index, dir == 1, initial(init, index, B),
                          trace != nullptr ? &trace->h[index] : nullptr);
      dir_out.push_back(out);
      hs.push_back(s.h);
      if (opt_.cell == CellType::lstm) cs.push_back(s.c);
    }
    layer_in = dir_out.size() == 1 ? dir_out[0] : concat(dir_out, 2);
  }
  RNNOutput r;
  r.output = layer_in;
  r.state.h = stack(hs, 0);
  if (opt_.cell == CellType::lstm) r.state.c = stack(cs, 0);
  return r;
}

RNN::StepWeights RNN::step_weights() const {
  if (opt_.bidirectional) throw ValueError("RNN::step_weights: a bidirectional layer cannot step");
  StepWeights packed;
  for (std::int64_t layer = 0; layer < opt_.num_layers; ++layer) {
    const Weights& w = weights_[static_cast<std::size_t>(layer)];
    packed.ih_t.emplace_back(w.w_ih.data().transpose(0, 1));
    packed.hh_t.emplace_back(w.w_hh.data().transpose(0, 1));
    if (grad_enabled()) {
      packed.ih.emplace_back(w.w_ih.data());
      packed.hh.emplace_back(w.w_hh.data());
    }
  }
  return packed;
}

RNNOutput RNN::step(const Variable& x_t, const RNNState& state, const StepWeights* packed) const {
  if (opt_.bidirectional) throw ValueError("RNN::step: a bidirectional layer cannot step");
  if (x_t.dim() != 2 || x_t.size(1) != opt_.input_size) {
    throw ShapeError(
        fmt::format("RNN::step: input {} must be [B,{}]", shape_str(x_t.shape()), opt_.input_size));
  }
  const std::int64_t B = x_t.size(0);
  Variable in = x_t;
  std::vector<Variable> hs, cs;
  for (std::int64_t layer = 0; layer < opt_.num_layers; ++layer) {
    if (layer > 0) in = dropout(in, opt_.dropout, training(), *gen_);
    const auto l = static_cast<std::size_t>(layer);
    const Weights& w = weights_[l];
    const CellState prev = initial(state, l, B);
    Variable xp, hp;
    if (packed != nullptr) {
      const bool back = !packed->ih.empty();
      xp = matmul_transposed(in, w.w_ih, packed->ih_t.at(l),
                             back ? packed->ih.at(l) : PackedMatrix());
      hp = matmul_transposed(prev.h, w.w_hh, packed->hh_t.at(l),
                             back ? packed->hh.at(l) : PackedMatrix());
    } else {
      xp = matmul(in, transpose(w.w_ih, 0, 1));
      hp = matmul(prev.h, transpose(w.w_hh, 0, 1));
    }
    if (w.b_ih.defined()) xp = xp + w.b_ih;
    const CellState s = cell_step(xp, hp, prev, w);
    hs.push_back(s.h);
    if (opt_.cell == CellType::lstm) cs.push_back(s.c);
    in = s.h;
  }
  RNNOutput r;
  r.output = in;
  r.state.h = stack(hs, 0);
  if (opt_.cell == CellType::lstm) r.state.c = stack(cs, 0);
  return r;
}

}  // namespace seqgrad
