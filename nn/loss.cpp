#include "nn/loss.h"

namespace seqgrad {

Variable cross_entropy(const Variable& logits, const Tensor& targets,
                       const CrossEntropyOptions& options) {
  return cross_entropy(logits, targets, options.ignore_index, options.label_smoothing,
                       options.reduction);
}

}  // namespace seqgrad
