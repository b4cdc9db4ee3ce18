// What `seqgrad explain` shows for one example: the attention weights, the gradients of the loss
// with respect to the weights and to the scores, and how much gradient each encoder state
// receives from each output step. Teacher-forced on the given target.
//   L = sum_i loss_i,  loss_i = -log p(y_i | y_<i, x)
//   a_i = softmax(e_i) over source positions;  c_i = sum_j a_ij h_j
//   dL/de_ij = a_ij (dL/da_ij - sum_k a_ik dL/da_ik)     (the softmax backward)
//   state_grad[i][j] = || d loss_i / d h_j ||, h_j the top encoder layer's state at j (both
//   directions), through attention and through the recurrence.
// The Transformer families give the same per layer and head: e_ij = q_i . k_j / sqrt(D) and
// a_ij of each cross-attention layer (decoder-only: of each self-attention layer, whose row i is
// the position predicting y_i and whose columns are the source and then <s> y), with h_j the
// encoder's output at j (decoder-only: the embedded source token j).
// Shape legend: S source length, T target length (with </s>), L layers, K heads, C columns of
// the attention (S, or S + T for decoder-only).
#pragma once

#include <vector>

#include "seq2seq/model.h"

namespace seqgrad {

using Matrix = std::vector<std::vector<double>>;  // [T][S]

struct Explanation {
  Arch arch = Arch::rnn;
  std::vector<std::int64_t> source, target;  // ids; target ends with </s>
  std::int64_t layers = 0;                   // L; 0 without attention (the recurrent model: 1)
  std::int64_t heads = 0;                    // K a layer; 0 without attention
  std::int64_t target_keys = 0;           // decoder-only: T (columns S.. are the inputs <s> y_1 ..)
  std::vector<Matrix> weights, dweights;  // a and dL/da, layer by layer, head by head: [L*K][T][C]
  std::vector<Matrix> scores, dscores;    // e and dL/de, the same
  Matrix state_grad;                      // [T][S]
  std::vector<double> step_loss;          // loss_i
  std::vector<std::int64_t> predicted;    // argmax_y p(y | y_<i, x) at each forced step
  double loss = 0;                        // L
};

// `model` in eval mode (no dropout), any arch. Runs 1 + T forward/backward passes; leaves the
// parameters' gradients cleared. Source and target are ids (no <s>; the target ends with </s>).
Explanation explain(Seq2Seq& model, const std::vector<std::int64_t>& source,
                    const std::vector<std::int64_t>& target);

// dL/de from a and dL/da, row by row, as the formula above writes it (the page shows it beside
// autograd's numbers).
Matrix softmax_backward_rows(const Matrix& a, const Matrix& da);

}  // namespace seqgrad
