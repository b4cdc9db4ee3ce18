// Differentiable ops on Variables. Each is a free function; primitives attach their backward
// right below the forward in autograd/ops_<family>.cpp, composites are written from primitives.
// Every op here has an entry in autograd/op_registry.h and a gradcheck case in the tests.
// Shapes are checked (by the tensor kernel the op calls) before anything is computed.
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "tensor/packed_matmul.h"
#include "tensor/random.h"
#include "tensor/reduce.h"

namespace seqgrad {

// --- arithmetic (ops_arith.cpp), NumPy broadcasting ---
Variable add(const Variable& a, const Variable& b);      // y = a + b
Variable sub(const Variable& a, const Variable& b);      // y = a - b
Variable mul(const Variable& a, const Variable& b);      // y = a * b
Variable div(const Variable& a, const Variable& b);      // y = a / b
Variable maximum(const Variable& a, const Variable& b);  // y = max(a, b); ties send dy to a
Variable minimum(const Variable& a, const Variable& b);  // y = min(a, b); ties send dy to a
Variable affine(const Variable& x, double s, double t);  // y = s * x + t
Variable neg(const Variable& x);                         // y = -x
// y = cond ? a : b (cond a boolean tensor, no gradient)
Variable where(const Tensor& cond, const Variable& a, const Variable& b);
// y = mask ? value : x
Variable masked_fill(const Variable& x, const Tensor& mask, double value);

Variable operator+(const Variable& a, const Variable& b);
Variable operator-(const Variable& a, const Variable& b);
Variable operator*(const Variable& a, const Variable& b);
Variable operator/(const Variable& a, const Variable& b);
Variable operator-(const Variable& x);
Variable operator+(const Variable& x, double s);
Variable operator+(double s, const Variable& x);
Variable operator-(const Variable& x, double s);
Variable operator-(double s, const Variable& x);
Variable operator*(const Variable& x, double s);
Variable operator*(double s, const Variable& x);
Variable operator/(const Variable& x, double s);

// --- unary (ops_unary.cpp) ---
Variable exp(const Variable& x);
Variable log(const Variable& x);
Variable tanh(const Variable& x);
Variable sigmoid(const Variable& x);
Variable relu(const Variable& x);
// GELU as PyTorch's gelu: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (approximate='none'), or
// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) with tanh_approximation ('tanh').
Variable gelu(const Variable& x, bool tanh_approximation = false);
Variable sqrt(const Variable& x);
Variable pow(const Variable& x, double p);

// --- reductions (ops_reduce.cpp); empty axes = all axes ---
Variable sum(const Variable& x, const Axes& axes = {}, bool keepdim = false);
Variable mean(const Variable& x, const Axes& axes = {}, bool keepdim = false);
// Ties share the gradient equally.
Variable amax(const Variable& x, const Axes& axes = {}, bool keepdim = false);

// --- shape (ops_shape.cpp): views where the tensor layer can view ---
Variable reshape(const Variable& x, const Shape& shape);
Variable permute(const Variable& x, const std::vector<std::int64_t>& order);
Variable transpose(const Variable& x, std::int64_t a, std::int64_t b);
Variable narrow(const Variable& x, std::int64_t axis, std::int64_t start, std::int64_t length);
Variable select(const Variable& x, std::int64_t axis, std::int64_t index);
Variable unsqueeze(const Variable& x, std::int64_t axis);
Variable squeeze(const Variable& x, std::int64_t axis);
Variable expand(const Variable& x, const Shape& shape);
Variable contiguous(const Variable& x);
Variable concat(const std::vector<Variable>& xs, std::int64_t axis);
Variable stack(const std::vector<Variable>& xs, std::int64_t axis);
std::vector<Variable> split(const Variable& x, const std::vector<std::int64_t>& sizes,
                            std::int64_t axis);

// --- matmul (ops_matmul.cpp): shapes as tensor/matmul.h ---
Variable matmul(const Variable& a, const Variable& b);
// x @ w^T for x [M,K] and a weight w [N,K], computed from w_t = PackedMatrix(w^T) [K,N], which
// the caller made once for many products (the steps of a recurrent layer): a small M's product
// then skips gemm's copy of the weight (tensor/packed_matmul.h). The backward's dy @ w uses
// `w_packed` = PackedMatrix(w) when given. The gradients go to x (dy @ w) and to w (dy^T @ x),
// never to the packed copies, which must hold w^T's and w's values. ShapeError or DTypeError
// names the shapes when they do not fit.
Variable matmul_transposed(const Variable& x, const Variable& w, const PackedMatrix& w_t,
                           const PackedMatrix& w_packed = {});

// --- indexing (ops_index.cpp); indices are int64 tensors, never differentiated ---
Variable index_select(const Variable& x, std::int64_t axis, const Tensor& index);
// y[..., :] = weight[ids[...], :]: ids of any shape, y of shape ids.shape + [E]. The row
// `padding_idx` (if >= 0) receives no gradient.
Variable embedding(const Variable& weight, const Tensor& ids, std::int64_t padding_idx = -1);
Variable gather(const Variable& x, std::int64_t axis, const Tensor& index);

// --- softmax (ops_softmax.cpp); mask semantics as tensor/softmax.h ---
Variable softmax(const Variable& x, std::int64_t axis, const Tensor& mask = {});
Variable log_softmax(const Variable& x, std::int64_t axis, const Tensor& mask = {});

// --- loss (ops_loss.cpp); N rows, V classes ---
enum class Reduction { mean, sum, none };
// Fused log-softmax + negative log-likelihood + label smoothing (eps), one node that keeps only
// the logits and two numbers per row: for logits [N,V] and int64 targets [N],
//   loss_n = (1 - eps) (-log p_n[t_n]) - eps mean_j log p_n[j],  0 where t_n == ignore_index,
// returned as [N] (none), their sum or their mean over the rows not ignored (0, with zero
// gradient, when every row is ignored). nn/loss.h wraps it with PyTorch-style options.
Variable cross_entropy(const Variable& logits, const Tensor& targets, std::int64_t ignore_index,
                       double label_smoothing, Reduction reduction);

// --- recurrent cells (ops_recurrent.cpp) ---
// One fused LSTM step (tensor/recurrent.h): gates [B,4H] in PyTorch's i,f,g,o order and
// c_prev [B,H] give [B,2H] = [h | c], with h = sigmoid(o) tanh(c) and
// c = sigmoid(f) c_prev + sigmoid(i) tanh(g). Narrow the result to take h and c apart.
Variable lstm_cell(const Variable& gates, const Variable& c_prev);
// One LSTM layer in one direction over a whole sequence, as one node (the cell above at every
// step, with BPTT written by hand): x [B,T,I], h0 and c0 [B,H], w_ih [4H,I], w_hh [4H,H],
// biases [4H] or undefined; lengths as RNN::forward (empty: all T), reverse runs T-1..0. Gives
// [B,T+2,H]: rows 0..T-1 the outputs (zero past each length), row T the final h, T+1 the final
// c (each sequence's state after its own last step). Narrow and select the result apart.
Variable lstm_layer(const Variable& x, const Variable& h0, const Variable& c0, const Variable& w_ih,
                    const Variable& w_hh, const Variable& b_ih, const Variable& b_hh,
                    const std::vector<std::int64_t>& lengths, bool reverse);
// One fused GRU step (tensor/recurrent.h): xp = x W_ih^T + b_ih and hp = h_prev W_hh^T + b_hh,
// both [B,3H] in PyTorch's r,z,n order, and h_prev [B,H] give h [B,H] = n + z (h_prev - n),
// with r = sigmoid(xp_r + hp_r), z = sigmoid(xp_z + hp_z), n = tanh(xp_n + r hp_n).
Variable gru_cell(const Variable& xp, const Variable& hp, const Variable& h_prev);

// --- attention (ops_attention.cpp); B batch, S source length, A attention size ---
// Additive (Bahdanau) scores as one node: score[b,s] = v . tanh(uk[b,s,:] + wq[b,:]) for uk
// [B,S,A], wq [B,A] and v [A] (or [1,A] as Linear(A, 1) stores it, or [A,1]); gives [B,S]. The
// [B,S,A] tanh is not kept: the backward recomputes it.
Variable additive_scores(const Variable& uk, const Variable& wq, const Variable& v);

// --- scaled dot-product attention (ops_sdpa.cpp); H heads, Tq queries, Tk keys, D head size ---
// The scores S = scale q k^T and the weights P = softmax(S, keep) as Variables of the graph, so
// that backward leaves dL/dS and dL/dP in them (retain_grad): what views of attention draw.
struct SdpaTrace {
  Variable scores, weights;  // [.., Tq, Tk]
};
struct SdpaOptions {
  Tensor mask;                // boolean, broadcastable to [.., Tq, Tk]; true keeps (as softmax's)
  bool causal = false;        // also drop key j > query i + (Tk - Tq) (bottom-right aligned)
  double scale = 0;           // 0: 1 / sqrt(D)
  double dropout = 0;         // of the weights, in [0, 1) (inverted dropout)
  Generator* gen = nullptr;   // draws the dropout mask; nullptr: the default generator
  bool need_weights = false;  // return the weights (after masking, before dropout)
  // Set: computed from matmul, masked softmax and matmul instead of the fused node, with the
  // scores and weights kept here (views only: slower, and no dropout).
  SdpaTrace* trace = nullptr;
};
struct SdpaResult {
  Variable out;    // [.., Tq, Dv]
  Tensor weights;  // [.., Tq, Tk] when need_weights, else undefined
};
// y = softmax(q k^T * scale, keep) v for q [.., Tq, D], k [.., Tk, D], v [.., Tk, Dv], 3-D [N,..]
// or 4-D [B,H,..] with equal leading axes. A fully masked query row gives y = 0, gradient 0.
// One fused node (tensor/sdpa.h) that keeps q, k, v and the weights, not the raw scores.
SdpaResult scaled_dot_product_attention(const Variable& q, const Variable& k, const Variable& v,
                                        const SdpaOptions& options = {});

}  // namespace seqgrad
