// Gradient checks for every op in autograd/op_registry.h, in float64 against central finite
// differences (autograd/gradcheck.h), full Jacobian plus a random upstream gradient.
//
// To add a case: append a GradCase to cases() below with the op's registry name, a function
// that builds its float64 inputs, and a function of the inputs that returns the op's output.
// The completeness test fails until every registered op has at least one case.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <set>

#include "autograd/autograd.h"

namespace seqgrad {
namespace {

struct GradCase {
  std::string op;
  std::string what;
  std::function<std::vector<Tensor>()> inputs;
  GradcheckFn fn;
};

Generator& gen() {
  static Generator g(42);
  return g;
}
// Dense random input.
Tensor rnd(const Shape& s) {
  return normal(s, 0.0, 1.0, DType::f64, gen());
}
// Random input of shape [a,b] stored transposed: a non-contiguous view.
Tensor rnd_t(std::int64_t a, std::int64_t b) {
  return rnd({b, a}).transpose(0, 1);
}
// Values in [lo, hi): for log, sqrt, pow and divisors.
Tensor positive(const Shape& s, double lo = 0.5, double hi = 2.0) {
  return uniform(s, lo, hi, DType::f64, gen());
}
// Values at least `gap` away from 0, for relu's kink.
Tensor off_zero(const Shape& s, double gap = 0.1) {
  Tensor t = rnd(s);
  double* p = t.data<double>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] += p[i] >= 0 ? gap : -gap;
  return t;
}
// Distinct values (spacing >= 0.05) in shuffled order, for max's kink at ties.
Tensor distinct(const Shape& s) {
  Tensor t = Tensor::empty(s, DType::f64);
  double* p = t.data<double>();
  const std::int64_t n = t.numel();
  for (std::int64_t i = 0; i < n; ++i) p[i] = 0.1 * static_cast<double>((i * 7 + 3) % n) - 0.3;
  return t;
}
Tensor ids(std::initializer_list<double> v, const Shape& s) {
  return Tensor::from_list(v, s, DType::i64);
}
Tensor mask(std::initializer_list<double> v, const Shape& s) {
  return Tensor::from_list(v, s, DType::boolean);
}

using V = std::vector<Variable>;
using T = std::vector<Tensor>;

std::vector<GradCase> cases() {
  std::vector<GradCase> c;
  // --- arithmetic ---
  c.push_back({"add", "broadcast [2,3] + [3]",
               [] {
                 return T{rnd({2, 3}), rnd({3})};
               },
               [](const V& x) { return x[0] + x[1]; }});
  c.push_back({"add", "transposed view + [2,1]",
               [] {
                 return T{rnd_t(2, 3), rnd({2, 1})};
               },
               [](const V& x) { return x[0] + x[1]; }});
  c.push_back({"sub", "[2,1] - [1,3]",
               [] {
                 return T{rnd({2, 1}), rnd({1, 3})};
               },
               [](const V& x) { return x[0] - x[1]; }});
  c.push_back({"mul", "transposed view * dense",
               [] {
                 return T{rnd_t(3, 2), rnd({3, 2})};
               },
               [](const V& x) { return x[0] * x[1]; }});
  c.push_back({"mul", "the same input twice (x*x)",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) { return x[0] * x[0]; }});
  c.push_back({"div", "[2,3] / [3] positive",
               [] {
                 return T{rnd({2, 3}), positive({3})};
               },
               [](const V& x) { return x[0] / x[1]; }});
  c.push_back({"maximum", "separated inputs, broadcast",
               [] {
                 Tensor a = distinct({2, 3});
                 return T{a, affine(distinct({3}), -1.0, 0.02)};
               },
               [](const V& x) { return maximum(x[0], x[1]); }});
  c.push_back({"minimum", "separated inputs",
               [] {
                 return T{distinct({2, 3}), affine(distinct({2, 3}), -1.0, 0.02)};
               },
               [](const V& x) { return minimum(x[0], x[1]); }});
  c.push_back({"affine", "2.5 x + 1", [] { return T{rnd_t(2, 3)}; },
               [](const V& x) { return x[0] * 2.5 + 1.0; }});
  c.push_back({"neg", "-x and 1 - x", [] { return T{rnd({4})}; },
               [](const V& x) { return (-x[0]) * (1.0 - x[0]); }});
  c.push_back({"where", "cond [2,3], b broadcast [3]",
               [] {
                 return T{rnd({2, 3}), rnd({3})};
               },
               [](const V& x) {
                 return where(mask({1, 0, 1, 0, 0, 1}, {2, 3}), x[0], x[1]);
               }});
  c.push_back({"masked_fill", "broadcast mask [1,3]",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) {
                 return masked_fill(x[0], mask({0, 1, 0}, {1, 3}), 7.0);
               }});
  // --- unary ---
  c.push_back({"exp", "", [] { return T{rnd_t(2, 3)}; }, [](const V& x) { return exp(x[0]); }});
  c.push_back({"log", "", [] { return T{positive({5})}; }, [](const V& x) { return log(x[0]); }});
  c.push_back({"tanh", "", [] { return T{rnd({2, 3})}; }, [](const V& x) { return tanh(x[0]); }});
  c.push_back({"sigmoid", "",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) { return sigmoid(x[0]); }});
  c.push_back({"relu", "off the kink",
               [] {
                 return T{off_zero({3, 3})};
               },
               [](const V& x) { return relu(x[0]); }});
  c.push_back({"sqrt", "", [] { return T{positive({4})}; }, [](const V& x) { return sqrt(x[0]); }});
  // GELU at 0, near 0, moderate and large |x| (where Phi is 0 or 1 to double precision), in a
  // length-11 row (the SIMD body and the scalar tail), once as a transposed view.
  for (const bool tanh_form : {false, true}) {
    const char* form = tanh_form ? "tanh form" : "exact form";
    c.push_back(
        {"gelu", fmt::format("{}, 0, near 0, moderate, large |x|", form),
         [] {
           return T{Tensor::from_list(
               {0.0, 1e-4, -3e-3, 0.5, -0.7, 1.3, -2.2, 4.5, -6.0, 9.0, -12.0}, {11}, DType::f64)};
         },
         [tanh_form](const V& x) { return gelu(x[0], tanh_form); }});
    c.push_back({"gelu", fmt::format("{}, transposed view, x used twice", form),
                 [] { return T{rnd_t(3, 5)}; },
                 [tanh_form](const V& x) { return gelu(x[0], tanh_form) * x[0]; }});
  }
  c.push_back(
      {"pow", "p = 3", [] { return T{rnd({4})}; }, [](const V& x) { return pow(x[0], 3.0); }});
  c.push_back({"pow", "p = -1.5", [] { return T{positive({4})}; },
               [](const V& x) { return pow(x[0], -1.5); }});
  // --- reductions ---
  c.push_back({"sum", "axis 1",
               [] {
                 return T{rnd({2, 3, 2})};
               },
               [](const V& x) { return sum(x[0], {1}); }});
  c.push_back({"sum", "axis 0 keepdim on a transposed view", [] { return T{rnd_t(3, 4)}; },
               [](const V& x) { return sum(x[0], {0}, true); }});
  c.push_back({"sum", "axes {0,2}",
               [] {
                 return T{rnd({2, 3, 2})};
               },
               [](const V& x) {
                 return sum(x[0], {0, 2});
               }});
  c.push_back({"sum", "all", [] { return T{rnd({2, 3})}; }, [](const V& x) { return sum(x[0]); }});
  c.push_back({"mean", "axis -1",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) { return mean(x[0], {-1}); }});
  c.push_back({"amax", "axis 1, distinct values",
               [] {
                 return T{distinct({2, 4})};
               },
               [](const V& x) { return amax(x[0], {1}); }});
  c.push_back({"amax", "axes {0,1} keepdim",
               [] {
                 return T{distinct({2, 3, 2})};
               },
               [](const V& x) {
                 return amax(x[0], {0, 1}, true);
               }});
  // --- shape ---
  c.push_back({"reshape", "of a transposed view", [] { return T{rnd_t(2, 3)}; },
               [](const V& x) {
                 return reshape(x[0], {3, -1}) * reshape(x[0], {3, 2});
               }});
  c.push_back({"permute", "",
               [] {
                 return T{rnd({2, 3, 4})};
               },
               [](const V& x) {
                 return permute(x[0], {2, 0, 1}) * 1.5;
               }});
  c.push_back({"transpose", "",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) { return matmul(transpose(x[0], 0, 1), x[0]); }});
  // An RNN's weight: one transposed view used at every step. matmul's backward gives the view
  // a transposed gradient, and the later shares are summed into it in place.
  c.push_back({"transpose", "one view of a weight used by three products",
               [] {
                 return T{rnd({3, 4}), rnd({2, 4})};
               },
               [](const V& x) {
                 const Variable wt = transpose(x[1], 0, 1);  // [4,2]
                 return tanh(matmul(x[0], wt)) + matmul(x[0] * 2.0, wt) + matmul(tanh(x[0]), wt);
               }});
  c.push_back({"narrow", "",
               [] {
                 return T{rnd({3, 4})};
               },
               [](const V& x) { return narrow(x[0], 1, 1, 2); }});
  c.push_back({"select", "",
               [] {
                 return T{rnd({3, 4})};
               },
               [](const V& x) { return select(x[0], 0, -1); }});
  c.push_back({"unsqueeze", "", [] { return T{rnd({3})}; },
               [](const V& x) { return unsqueeze(x[0], 0) * unsqueeze(x[0], 1); }});
  c.push_back({"squeeze", "",
               [] {
                 return T{rnd({3, 1})};
               },
               [](const V& x) { return squeeze(x[0], 1); }});
  c.push_back({"expand", "",
               [] {
                 return T{rnd({3, 1})};
               },
               [](const V& x) {
                 return expand(x[0], {2, 3, 4});
               }});
  c.push_back({"contiguous", "of a transposed view", [] { return T{rnd_t(3, 2)}; },
               [](const V& x) { return contiguous(x[0]); }});
  c.push_back({"concat", "three inputs on axis 1",
               [] {
                 return T{rnd({2, 1}), rnd_t(2, 3), rnd({2, 2})};
               },
               [](const V& x) {
                 return concat({x[0], x[1], x[2]}, 1);
               }});
  c.push_back({"stack", "",
               [] {
                 return T{rnd({2, 2}), rnd({2, 2})};
               },
               [](const V& x) {
                 return stack({x[0], x[1]}, 1);
               }});
  c.push_back({"split", "uneven pieces",
               [] {
                 return T{rnd({5, 2})};
               },
               [](const V& x) {
                 auto p = split(x[0], {2, 3}, 0);
                 return concat({p[1] * 2.0, tanh(p[0])}, 0);
               }});
  // --- matmul ---
  c.push_back({"matmul", "[3,4] @ [4,2]",
               [] {
                 return T{rnd({3, 4}), rnd({4, 2})};
               },
               [](const V& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul", "transposed views",
               [] {
                 return T{rnd_t(3, 4), rnd_t(4, 2)};
               },
               [](const V& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul", "batched [2,3,4] @ [2,4,2]",
               [] {
                 return T{rnd({2, 3, 4}), rnd({2, 4, 2})};
               },
               [](const V& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul", "[2,3,4] @ shared [4,2]",
               [] {
                 return T{rnd({2, 3, 4}), rnd({4, 2})};
               },
               [](const V& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul", "[2,3,4] @ shared transposed view [4,2]",
               [] {
                 return T{rnd({2, 3, 4}), rnd_t(4, 2)};
               },
               [](const V& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul", "shared [3,4] @ [2,4,2]",
               [] {
                 return T{rnd({3, 4}), rnd({2, 4, 2})};
               },
               [](const V& x) { return matmul(x[0], x[1]); }});
  // As an RNN's steps use it: W^T and W packed once for three products with W, one of them
  // differentiated through gemm with W itself (no packed W).
  c.push_back({"matmul_transposed", "one weight in three products",
               [] {
                 return T{rnd({3, 4}), rnd({2, 4})};
               },
               [](const V& x) {
                 const PackedMatrix w_t(x[1].data().transpose(0, 1)), w(x[1].data());
                 return tanh(matmul_transposed(x[0], x[1], w_t, w)) +
                        matmul_transposed(x[0] * 2.0, x[1], w_t);
               }});
  // --- indexing ---
  c.push_back({"index_select", "axis 0, repeated rows",
               [] {
                 return T{rnd({4, 3})};
               },
               [](const V& x) {
                 return index_select(x[0], 0, ids({2, 0, 2}, {3}));
               }});
  c.push_back({"index_select", "axis 1 of a transposed view", [] { return T{rnd_t(3, 4)}; },
               [](const V& x) {
                 return index_select(x[0], 1, ids({3, 3, 1}, {3}));
               }});
  c.push_back({"embedding", "ids [2,3]",
               [] {
                 return T{rnd({5, 2})};
               },
               [](const V& x) {
                 return embedding(x[0], ids({1, 4, 1, 0, 0, 3}, {2, 3}));
               }});
  c.push_back({"gather", "axis 1 (pick one logit a row)",
               [] {
                 return T{rnd({3, 4})};
               },
               [](const V& x) {
                 return gather(x[0], 1, ids({3, 0, 0}, {3, 1}));
               }});
  c.push_back({"gather", "axis 0, repeated",
               [] {
                 return T{rnd({3, 2})};
               },
               [](const V& x) {
                 return gather(x[0], 0, ids({2, 2, 0, 1}, {2, 2}));
               }});
  // --- softmax ---
  c.push_back({"softmax", "axis 1",
               [] {
                 return T{rnd({2, 4})};
               },
               [](const V& x) { return softmax(x[0], 1); }});
  c.push_back({"softmax", "axis 0 of a transposed view", [] { return T{rnd_t(3, 2)}; },
               [](const V& x) { return softmax(x[0], 0); }});
  c.push_back({"softmax", "masked, one row fully masked",
               [] {
                 return T{rnd({3, 3})};
               },
               [](const V& x) {
                 return softmax(x[0], 1, mask({1, 1, 0, 0, 0, 0, 1, 0, 1}, {3, 3}));
               }});
  c.push_back({"log_softmax", "axis -1",
               [] {
                 return T{rnd({2, 5})};
               },
               [](const V& x) { return log_softmax(x[0], -1); }});
  c.push_back({"log_softmax", "masked (masked outputs zeroed to stay finite)",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) {
                 const Tensor m = mask({1, 0, 1, 1, 1, 0}, {2, 3});
                 return masked_fill(log_softmax(x[0], 1, m), logical_not(m), 0.0);
               }});
  // --- recurrent cells ---
  // H = 9 runs the SIMD body (2, 4 or 8 double lanes) and the scalar tail.
  c.push_back({"lstm_cell", "H 9: h and c both used downstream",
               [] {
                 return T{rnd({3, 36}), rnd({3, 9})};
               },
               [](const V& x) {
                 const Variable hc = lstm_cell(x[0], x[1]);
                 return narrow(hc, 1, 0, 9) * narrow(hc, 1, 9, 9);
               }});
  c.push_back({"lstm_cell", "two steps, transposed gates view",
               [] {
                 return T{rnd_t(2, 4), rnd({2, 1})};
               },
               [](const V& x) {
                 const Variable s1 = lstm_cell(x[0], x[1]);
                 return lstm_cell(x[0], narrow(s1, 1, 1, 1));
               }});
  // lstm_layer: inputs x [B,T,I], h0, c0 [B,H], w_ih [4H,I], w_hh [4H,H] (weights scaled by 0.5
  // to keep the gates off saturation), then b_ih, b_hh [4H] if `bias`; x stored as [B,I,T] and
  // viewed transposed if `strided`.
  auto lstm_inputs = [](std::int64_t B, std::int64_t Tn, std::int64_t I, std::int64_t H, bool bias,
                        bool strided) {
    T in{strided ? rnd({B, I, Tn}).transpose(1, 2) : rnd({B, Tn, I}), rnd({B, H}), rnd({B, H}),
         affine(rnd({4 * H, I}), 0.5, 0.0), affine(rnd({4 * H, H}), 0.5, 0.0)};
    if (bias) in.insert(in.end(), {rnd({4 * H}), rnd({4 * H})});
    return in;
  };
  c.push_back({"lstm_layer", "H 9, bias, padded lengths {3,1,2} (one at T)",
               [=] { return lstm_inputs(3, 3, 2, 9, true, false); },
               [](const V& x) {
                 return lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], {3, 1, 2}, false);
               }});
  c.push_back({"lstm_layer", "reverse, strided x, bias, lengths {2,4,0}",
               [=] { return lstm_inputs(3, 4, 3, 2, true, true); },
               [](const V& x) {
                 return lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], {2, 4, 0}, true);
               }});
  c.push_back(
      {"lstm_layer", "T 1, no bias, reverse, all lengths",
       [=] { return lstm_inputs(2, 1, 3, 3, false, false); },
       [](const V& x) { return lstm_layer(x[0], x[1], x[2], x[3], x[4], {}, {}, {}, true); }});
  c.push_back(
      {"lstm_layer", "two layers, h0 and c0 one input, outputs and final c used",
       [=] {
         T in = lstm_inputs(2, 3, 2, 2, true, false);
         in.push_back(affine(rnd({8, 2}), 0.5, 0.0));  // layer 2's w_ih [4H,H]
         return in;
       },
       [](const V& x) {
         const Variable y1 = lstm_layer(x[0], x[1], x[1], x[3], x[4], x[5], x[6], {3, 2}, false);
         const Variable y2 =
             lstm_layer(narrow(y1, 1, 0, 3), x[2], x[1], x[7], x[4], x[6], {}, {3, 2}, true);
         return concat({y2, narrow(y1, 1, 4, 1) * unsqueeze(x[2], 1)}, 1);
       }});
  c.push_back({"gru_cell", "H 9",
               [] {
                 return T{rnd({3, 27}), rnd({3, 27}), rnd({3, 9})};
               },
               [](const V& x) { return gru_cell(x[0], x[1], x[2]); }});
  // As RNN::step uses it: hp = h W_hh^T, so h reaches the cell twice; a strided xp view.
  c.push_back({"gru_cell", "two steps, transposed xp view, h also through hp",
               [] {
                 return T{rnd_t(2, 6), rnd({2, 2}), affine(rnd({2, 6}), 0.5, 0.0)};
               },
               [](const V& x) {
                 const Variable h1 = gru_cell(x[0], matmul(x[1], x[2]), x[1]);
                 return gru_cell(x[0], matmul(h1, x[2]), h1);
               }});
  // --- attention ---
  // A 9 runs the SIMD body (2, 4 or 8 double lanes) and the scalar tail.
  c.push_back({"additive_scores", "A 9, v [1,A] as Linear(A, 1) stores it",
               [] {
                 return T{rnd({2, 3, 9}), rnd({2, 9}), rnd({1, 9})};
               },
               [](const V& x) { return additive_scores(x[0], x[1], x[2]); }});
  c.push_back({"additive_scores", "strided uk and wq, v a [A,1] view",
               [] {
                 return T{rnd({2, 9, 3}).transpose(1, 2), rnd_t(2, 9), rnd({1, 5}).transpose(0, 1)};
               },
               [](const V& x) {
                 return additive_scores(narrow(x[0], 2, 2, 5), narrow(x[1], 1, 4, 5), x[2]);
               }});
  c.push_back({"additive_scores", "v [A]; uk and v also used downstream",
               [] {
                 return T{rnd({3, 2, 4}), rnd({3, 4}), rnd({4})};
               },
               [](const V& x) {
                 const Variable s = additive_scores(x[0], x[1], x[2]);  // [3,2]
                 return s * sum(x[0], {2}) + sum(x[2]);
               }});
  // --- scaled dot-product attention ---
  c.push_back({"scaled_dot_product_attention", "3-D, Tq 3 x Tk 4, no mask",
               [] {
                 return T{rnd({2, 3, 5}), rnd({2, 4, 5}), rnd({2, 4, 3})};
               },
               [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]).out; }});
  c.push_back({"scaled_dot_product_attention",
               "4-D, key padding mask [B,1,1,Tk] with one fully masked row, causal",
               [] {
                 return T{rnd({2, 2, 3, 4}), rnd({2, 2, 3, 4}), rnd_t(3, 2).reshape({1, 1, 3, 2})};
               },
               [](const V& x) {
                 SdpaOptions o;
                 o.mask = mask({1, 1, 0, 0, 1, 1},
                               {2, 1, 1, 3});  // batch 0 keeps keys 0-1, batch 1 keys 1-2
                 o.causal = true;              // batch 1, query 0 sees only key 0: fully masked
                 const Variable v = expand(x[2], {2, 2, 3, 2});
                 return scaled_dot_product_attention(x[0], x[1], v, o).out;
               }});
  c.push_back(
      {"scaled_dot_product_attention",
       "3-D transposed q, k views, narrowed v, Tq 2 < Tk 9 causal, scale 0.7",
       [] {
         return T{rnd({2, 5, 2}).transpose(1, 2), rnd({2, 5, 9}).transpose(1, 2), rnd({2, 9, 6})};
       },
       [](const V& x) {
         SdpaOptions o;
         o.causal = true;  // query 0 sees keys 0-7, query 1 all 9
         o.scale = 0.7;
         return scaled_dot_product_attention(x[0], x[1], narrow(x[2], 2, 1, 3), o).out;
       }});
  c.push_back({"scaled_dot_product_attention",
               "4-D heads split by permute, Tq 4 > Tk 3 causal (query 0 sees no key)",
               [] {
                 return T{rnd({2, 4, 2, 3}).permute({0, 2, 1, 3}),
                          rnd({2, 3, 2, 3}).permute({0, 2, 1, 3}),
                          rnd({2, 3, 2, 2}).permute({0, 2, 1, 3})};
               },
               [](const V& x) {
                 SdpaOptions o;
                 o.causal = true;
                 return scaled_dot_product_attention(x[0], x[1], x[2], o).out;
               }});
  c.push_back({"scaled_dot_product_attention",
               "4-D full [B,H,Tq,Tk] mask with a fully masked row, scale 0.4",
               [] {
                 return T{rnd({2, 2, 3, 4}), rnd({2, 2, 3, 4}), rnd({2, 2, 3, 2})};
               },
               [](const V& x) {
                 SdpaOptions o;
                 o.mask = mask({1, 0, 1, /**/ 0, 0, 0, /**/ 1, 1, 1,  // b 0 h 0 (row 1 empty)
                                0, 1, 1, /**/ 1, 0, 0, /**/ 0, 1, 0,  // b 0 h 1
                                1, 1, 0, /**/ 0, 1, 1, /**/ 1, 0, 1,  // b 1 h 0
                                1, 1, 1, /**/ 1, 1, 0, /**/ 0, 0, 1},
                               {2, 2, 3, 3});
                 o.scale = 0.4;
                 return scaled_dot_product_attention(x[0], x[1], x[2], o).out;
               }});
  c.push_back({"scaled_dot_product_attention",
               "self-attention (x, x, x), 4-D, key padding mask [B,1,1,Tk]",
               [] {
                 return T{rnd({2, 2, 3, 4})};
               },
               [](const V& x) {
                 SdpaOptions o;
                 o.mask = mask({1, 1, 1, 1, 1, 0}, {2, 1, 1, 3});  // batch 1 pads key 2
                 return scaled_dot_product_attention(x[0], x[0], x[0], o).out;
               }});
  c.push_back({"scaled_dot_product_attention",
               "3-D, mask [Tq,Tk] shared by the batch, output also used downstream",
               [] {
                 return T{rnd({2, 3, 4}), rnd({2, 4, 4}), rnd({2, 4, 4})};
               },
               [](const V& x) {
                 SdpaOptions o;
                 o.mask = mask({1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1}, {3, 4});
                 const Variable y = scaled_dot_product_attention(x[0], x[1], x[2], o).out;
                 return y * x[0];
               }});
  c.push_back({"scaled_dot_product_attention",
               "dropout 0.3, the generator reseeded per call (the same keep-mask each time)",
               [] {
                 return T{rnd({2, 3, 4}), rnd({2, 5, 4}), rnd({2, 5, 3})};
               },
               [](const V& x) {
                 Generator g(7);
                 SdpaOptions o;
                 o.dropout = 0.3;
                 o.gen = &g;
                 return scaled_dot_product_attention(x[0], x[1], x[2], o).out;
               }});
  // --- loss ---
  // V 11 runs the SIMD body and the scalar tail; rows 1 and 3 are ignored.
  for (const double eps : {0.0, 0.1}) {
    for (const auto& [reduction, label] :
         {std::pair{Reduction::none, "none"}, {Reduction::sum, "sum"}, {Reduction::mean, "mean"}}) {
      c.push_back(
          {"cross_entropy",
           std::string("transposed logits [4,11], two rows ignored, eps ") +
               (eps > 0 ? "0.1, " : "0, ") + label,
           [] { return T{rnd_t(4, 11)}; },
           [eps, reduction](const V& x) {
             return cross_entropy(x[0], ids({10, -100, 0, -100}, {4}), -100, eps, reduction);
           }});
    }
  }
  c.push_back(
      {"cross_entropy", "ignore_index 2, eps 1, logits also used downstream",
       [] {
         return T{rnd({3, 5})};
       },
       [](const V& x) {
         const Variable l = cross_entropy(x[0], ids({2, 4, 1}, {3}), 2, 1.0, Reduction::mean);
         return l * sum(x[0]);
       }});
  c.push_back({"cross_entropy", "every row ignored: mean is 0 with zero gradient",
               [] {
                 return T{rnd({2, 3})};
               },
               [](const V& x) {
                 return cross_entropy(x[0], ids({-100, -100}, {2}), -100, 0.1, Reduction::mean);
               }});
  return c;
}

TEST_CASE("gradcheck: every registered op passes in float64") {
  for (const auto& gc : cases()) {
    CAPTURE(gc.op);
    CAPTURE(gc.what);
    const GradcheckResult r = gradcheck(gc.fn, gc.inputs());
    CAPTURE(r.worst);
    CHECK(r.entries > 0);
    CHECK(r.max_error < 1e-6);
    CHECK(r.passed);
  }
}

TEST_CASE("gradcheck: every registered op has a case") {
  std::set<std::string> covered;
  for (const auto& gc : cases()) covered.insert(gc.op);
  for (const auto& info : kOps) {
    CAPTURE(info.name);
    CHECK(covered.count(std::string(info.name)) == 1);
  }
  // and no case names an op the registry does not know
  for (const auto& name : covered) {
    bool known = false;
    for (const auto& info : kOps) known = known || info.name == name;
    CAPTURE(name);
    CHECK(known);
  }
}

TEST_CASE("gradcheck: catches a wrong gradient") {
  // A function whose backward is deliberately wrong (2x instead of 3x^2 for x^3): built from a
  // custom node so the check has something to find.
  const GradcheckFn wrong = [](const V& x) {
    Tensor y = pow(x[0].data(), 3.0);
    return make_result(std::move(y), Op::pow, {&x[0]},
                       [](const Tensor& dy, const GradSink& g) { g.add(0, affine(dy, 2.0, 0.0)); });
  };
  const GradcheckResult r = gradcheck(wrong, {rnd({3})});
  CHECK_FALSE(r.passed);
  CHECK(r.max_error > 1e-3);
  CHECK(r.worst.find("input 0") != std::string::npos);
}

TEST_CASE("gradcheck: refuses broadcast views and non-float64 inputs") {
  const GradcheckFn f = [](const V& x) { return x[0] * 2.0; };
  CHECK_THROWS_AS(gradcheck(f, {rnd({1, 3}).expand({2, 3})}), ValueError);
  CHECK_THROWS_AS(gradcheck(f, {Tensor::ones({2}, DType::f32)}), DTypeError);
}

}  // namespace
}  // namespace seqgrad
