// Recurrent layers: Elman RNN (tanh), GRU and LSTM; multi-layer, optionally bidirectional, with
// dropout between layers. Batch-first: x [B,T,I] -> output [B,T,D*H], with D = 2 when
// bidirectional. States are [L*D, B, H] in PyTorch's order (layer 0 forward, layer 0 reverse,
// layer 1 forward, ...).
//
// Padded batches: given per-sequence lengths, a sequence's final state is the one after its own
// last real step and its outputs past that step are zero (what PyTorch's packed sequences give);
// the reverse direction starts at each sequence's own last step.
//
// Parameter names, shapes and gate orders follow PyTorch so weights move between the two
// without reshuffling: weight_ih_l{k}[_reverse] [G*H, I_k], weight_hh_l{k} [G*H, H],
// bias_ih_l{k} and bias_hh_l{k} [G*H]; LSTM gates i,f,g,o (G=4); GRU gates r,z,n (G=3) with the
// n gate's hidden bias inside the reset product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
#pragma once

#include <string_view>
#include <vector>

#include "nn/module.h"
#include "tensor/packed_matmul.h"
#include "tensor/random.h"

namespace seqgrad {

enum class CellType { rnn_tanh, gru, lstm };
std::string_view cell_name(CellType cell);
CellType parse_cell(std::string_view name);  // "rnn", "gru", "lstm"; ValueError otherwise

struct RNNOptions {
  CellType cell = CellType::lstm;
  std::int64_t input_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 1;
  bool bidirectional = false;
  double dropout = 0.0;  // on each layer's output except the last, in training
  bool bias = true;
  DType dtype = DType::f32;
};

// h (and, for LSTM, c): [L*D, B, H]. Undefined members mean zeros.
struct RNNState {
  Variable h, c;
};

// Every step's state h_t as its own Variable, for looking at gradients: trace.h[l * D + d][t]
// (layer l, direction d) is the value that feeds both the layer's output at t and step t + 1, so
// after backward (with retain_grad on it) its gradient is everything that reaches h_t, through
// the output and through the recurrence. Asking for a trace runs LSTM layers step by step
// instead of as one fused node (slower, the same numbers).
struct RNNTrace {
  std::vector<std::vector<Variable>> h;
};

struct RNNOutput {
  Variable output;  // [B,T,D*H] from forward, [B,H] from step
  RNNState state;
};

class RNN : public Module {
 public:
  explicit RNN(const RNNOptions& options, Generator& gen = default_generator());

  // x [B,T,I]; lengths: B values in [1, T], or empty when every sequence has length T.
  RNNOutput forward(const Variable& x, const std::vector<std::int64_t>& lengths = {},
                    const RNNState& init = {}, RNNTrace* trace = nullptr) const;
  // Each layer's W_ih^T and W_hh^T packed for the steps' products (tensor/packed_matmul.h), and
  // W_ih and W_hh for their backward's. Made once for a sequence of step() calls (while the
  // weights do not change), they spare each step's small-batch products gemm's copy of the
  // weight (README, Speed). Under no_grad the backward's copies are not made.
  struct StepWeights {
    std::vector<PackedMatrix> ih_t, hh_t;  // per layer: [I_k, G*H] and [H, G*H]
    std::vector<PackedMatrix> ih, hh;      // per layer: [G*H, I_k] and [G*H, H], or empty
  };
  StepWeights step_weights() const;
  // One time step through every layer (unidirectional only): x_t [B,I] -> top output [B,H].
  // With `packed` (from step_weights(), after the last change of the weights) the products use
  // it: the same values, computed faster.
  RNNOutput step(const Variable& x_t, const RNNState& state,
                 const StepWeights* packed = nullptr) const;

  const RNNOptions& options() const { return opt_; }
  std::int64_t directions() const { return opt_.bidirectional ? 2 : 1; }

 private:
  struct Weights {
    Variable w_ih, w_hh, b_ih, b_hh;
  };
  struct CellState {
    Variable h, c;
  };
  // The cell from the input's projection xp and the hidden one hp (biases not yet added).
  CellState cell_step(const Variable& xp, Variable hp, const CellState& s, const Weights& w) const;
  // One layer, one direction over the whole sequence: outputs [B,T,H] and the final state.
  std::pair<Variable, CellState> run(const Variable& x, const std::vector<std::int64_t>& lengths,
                                     std::size_t index, bool reverse, CellState s,
                                     std::vector<Variable>* trace) const;
  CellState initial(const RNNState& init, std::size_t index, std::int64_t batch) const;

  RNNOptions opt_;
  std::vector<Weights> weights_;  // layer * D + direction
  Generator* gen_;
};

}  // namespace seqgrad
