// The registry of differentiable ops: every public op in autograd/ops.h is listed here once.
// Primitives (P) create tape nodes under this name and carry a hand-written backward; composites
// (C) are written from primitives and need none. tests/test_gradcheck.cpp requires a gradcheck
// case for every entry, so an op added here without a case fails the suite, and an op cannot
// create a node without an entry here (the node's name is an Op value).
#pragma once

#include <array>
#include <string_view>

namespace seqgrad {

// clang-format off
//        name               kind  file
#define SEQGRAD_OPS(X)                                        \
  X(add,             P)  /* ops_arith.cpp */                  \
  X(sub,             P)                                       \
  X(mul,             P)                                       \
  X(div,             P)                                       \
  X(maximum,         P)                                       \
  X(minimum,         P)                                       \
  X(affine,          P)                                       \
  X(neg,             C)                                       \
  X(where,           P)                                       \
  X(masked_fill,     P)                                       \
  X(exp,             P)  /* ops_unary.cpp */                  \
  X(log,             P)                                       \
  X(tanh,            P)                                       \
  X(sigmoid,         P)                                       \
  X(relu,            P)                                       \
  X(gelu,            P)                                       \
  X(sqrt,            P)                                       \
  X(pow,             P)                                       \
  X(sum,             P)  /* ops_reduce.cpp */                 \
  X(mean,            C)                                       \
  X(amax,            P)                                       \
  X(reshape,         P)  /* ops_shape.cpp */                  \
  X(permute,         P)                                       \
  X(transpose,       C)                                       \
  X(narrow,          P)                                       \
  X(select,          C)                                       \
  X(unsqueeze,       P)                                       \
  X(squeeze,         P)                                       \
  X(expand,          P)                                       \
  X(contiguous,      P)                                       \
  X(concat,          P)                                       \
  X(stack,           C)                                       \
  X(split,           C)                                       \
  X(matmul,          P)  /* ops_matmul.cpp */                 \
  X(matmul_transposed, P)                                     \
  X(index_select,    P)  /* ops_index.cpp */                  \
  X(embedding,       P)                                       \
  X(gather,          P)                                       \
  X(softmax,         P)  /* ops_softmax.cpp */                \
  X(log_softmax,     P)                                       \
  X(lstm_cell,       P)  /* ops_recurrent.cpp */              \
  X(lstm_layer,      P)                                       \
  X(gru_cell,        P)                                       \
  X(additive_scores, P)  /* ops_attention.cpp */              \
  X(scaled_dot_product_attention, P)  /* ops_sdpa.cpp */     \
  X(cross_entropy,   P)  /* ops_loss.cpp */
// clang-format on

enum class Op {
  leaf,  // not an op: a user-made value
#define SEQGRAD_OP_ENUM(name, kind) name,
  SEQGRAD_OPS(SEQGRAD_OP_ENUM)
#undef SEQGRAD_OP_ENUM
};

struct OpInfo {
  Op op;
  std::string_view name;
  bool primitive;
};

inline constexpr std::array kOps = {
#define SEQGRAD_OP_INFO(name, kind) OpInfo{Op::name, #name, std::string_view(#kind) == "P"},
    SEQGRAD_OPS(SEQGRAD_OP_INFO)
#undef SEQGRAD_OP_INFO
};

constexpr std::string_view op_name(Op op) {
  if (op == Op::leaf) return "leaf";
  return kOps[static_cast<std::size_t>(op) - 1].name;
}

}  // namespace seqgrad
