// Data parallelism across threads of one process. A training step's batch is split by rows into
// one share per worker; each worker runs the forward and backward of its share on its own tape,
// the first on the model itself and the others on replicas whose parameters share the model's
// storage but keep gradients of their own. The shares' gradients are then summed into the
// model's, each share's loss weighted by its part of the batch's target tokens, so the model
// receives the gradient of the whole batch's mean loss (to float rounding of the changed
// summation order). Each worker's BLAS calls run single-threaded, so the cores do not contend.
// Decoding splits the same way (beam search is per source).
// Shape legend: B batch, S source length, T target length.
#pragma once

#include <memory>
#include <vector>

#include "seq2seq/batch.h"
#include "seq2seq/collective.h"
#include "seq2seq/model.h"
#include "seq2seq/search.h"

namespace seqgrad {

// Rows [begin, end) of a batch, with the source and target trimmed to the longest row kept
// (trimmed positions are padding, so the loss and decoding are unchanged).
Batch slice_rows(const Batch& b, std::int64_t begin, std::int64_t end);

struct StepLoss {
  double loss = 0;          // the batch's mean loss (over real target tokens)
  std::int64_t tokens = 0;  // real target tokens
};

// Which of a batch's shares a process computes, when several processes split one batch: shares
// [first, first + workers()) of `of` (0: of = workers(), the whole batch). N processes of T
// workers, process r taking {.first = r * T, .of = N * T}, split every batch as one process of
// N * T workers does: the same rows and the same random stream in each share.
struct Shares {
  int first = 0;
  int of = 0;
};

class DataParallel {
 public:
  // `workers` >= 1. With one worker, loss_backward is exactly model.loss(...).loss.backward().
  DataParallel(Seq2Seq& model, int workers);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int workers() const { return static_cast<int>(replicas_.size()) + 1; }
  // Forward and backward of the batch's loss; gradients are added into the model's parameters.
  // `gen` draws a seed per step for each share after the first, for its dropout and sampling
  // generator, and then draws the first share's own choices, so a run is a pure function of
  // gen's state. Each share's loss is weighted by its part of the whole batch's target tokens.
  // With `part`, only those shares are computed and the result is their part of the batch's
  // mean loss (the sum over the processes is the mean); a process that does not hold share 0
  // reseeds gen for its first share, so afterwards gen is the run's only where share 0 ran.
  StepLoss loss_backward(const Batch& b, const LossOptions& options, Generator& gen,
                         Shares part = {});
  // Each of the model's gradients becomes its sum over `group` (a parameter backward did not
  // reach counts as zeros), by one allreduce of a buffer kept from step to step; afterwards the
  // gradients are views of that buffer, so nothing is allocated or copied back. float32
  // parameters only (ValueError otherwise).
  void sum_gradients(Collective& group);

 private:
  struct Replica;
  Seq2Seq& model_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  Tensor summed_;  // sum_gradients' buffer: every parameter's gradient, end to end
};

// beam_search with the batch's rows split over `workers` threads (each decodes its rows with the
// whole batch's options, so the result equals one beam_search call).
std::vector<Hypothesis> parallel_beam_search(const std::vector<const Seq2Seq*>& models,
                                             const Tensor& src,
                                             const std::vector<std::int64_t>& lengths,
                                             const SearchOptions& options, int workers);

// The number of workers `threads` asks for: threads itself when > 0, else 1.
int worker_count(int threads);

}  // namespace seqgrad
