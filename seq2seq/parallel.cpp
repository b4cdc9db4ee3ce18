// Shape legend: B batch, S source length, T target length.
#include "seq2seq/parallel.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>

#include "autograd/ops.h"
#include "tensor/parallel_for.h"

namespace seqgrad {

namespace {

// The number of columns of a [B,W] id tensor that hold anything but padding in any row.
std::int64_t used_width(const Tensor& ids) {
  const std::int64_t B = ids.size(0), W = ids.size(1);
  const auto* p = ids.data<std::int64_t>();
  std::int64_t used = 1;
  for (std::int64_t r = 0; r < B; ++r) {
    for (std::int64_t c = W; c-- > used;) {
      if (p[r * W + c] != kPadId) {
        used = c + 1;
        break;
      }
    }
  }
  return used;
}

// Runs f(w) for w in [0, n) on n threads (w = 0 on the caller's), each with single-threaded
// BLAS; rethrows the first worker's exception after all have finished.
template <class F>
void run_workers(int n, const F& f) {
  if (n == 1) {
    f(0);
    return;
  }
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  try {
    run_threads(n, f);
  } catch (...) {
    openblas_set_num_threads(blas_threads);
    throw;
  }
  openblas_set_num_threads(blas_threads);
}

// Rows of worker w of n over B rows: an even split, the first B % n shares one row longer.
std::pair<std::int64_t, std::int64_t> share(std::int64_t B, int n, int w) {
  const std::int64_t base = B / n, extra = B % n;
  const std::int64_t begin = w * base + std::min<std::int64_t>(w, extra);
  return {begin, begin + base + (w < extra ? 1 : 0)};
}

}  // namespace

Batch slice_rows(const Batch& b, std::int64_t begin, std::int64_t end) {
  if (begin < 0 || end > b.size() || begin >= end) {
    throw ValueError(
        fmt::format("slice_rows: rows [{}, {}) of a batch of {}", begin, end, b.size()));
  }
  Batch s;
  s.src_lengths.assign(b.src_lengths.begin() + begin, b.src_lengths.begin() + end);
  const std::int64_t S = *std::max_element(s.src_lengths.begin(), s.src_lengths.end());
  s.src = b.src.narrow(0, begin, end - begin).narrow(1, 0, S).contiguous();
  const Tensor out = b.tgt_out.narrow(0, begin, end - begin).contiguous();
  const std::int64_t T = used_width(out);
  s.tgt_out = out.narrow(1, 0, T).contiguous();
  s.tgt_in = b.tgt_in.narrow(0, begin, end - begin).narrow(1, 0, T).contiguous();
  s.example_index.assign(b.example_index.begin() + begin, b.example_index.begin() + end);
  return s;
}

int worker_count(int threads) {
  return threads > 0 ? threads : 1;
}

// A replica: the model's architecture with its own gradients and its own generator (dropout
// layers keep a pointer to the generator they were built with, so it lives beside them).
struct DataParallel::Replica {
  Generator gen;
  Seq2Seq model;
  explicit Replica(const ModelConfig& config) : gen(0), model(config, gen) {}
};

DataParallel::DataParallel(Seq2Seq& model, int workers) : model_(model) {
  if (workers < 1) throw ValueError(fmt::format("DataParallel: {} workers", workers));
  for (int w = 1; w < workers; ++w) {
    replicas_.push_back(std::make_unique<Replica>(model.config()));
  }
}

DataParallel::~DataParallel() = default;

StepLoss DataParallel::loss_backward(const Batch& b, const LossOptions& options, Generator& gen,
                                     Shares part) {
  const int of = part.of > 0 ? part.of : workers();
  const int n = std::min<int>(of, static_cast<int>(b.size()));  // the shares that get rows
  if (n == 1 && part.first == 0) {
    const LossResult r = model_.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, options, gen);
    r.loss.backward();
    return {r.loss.item(), r.tokens};
  }
  // One seed per share after the first, drawn alike wherever the shares are computed.
  std::vector<std::uint64_t> seeds(static_cast<std::size_t>(n), 0);
  for (int s = 1; s < n; ++s) seeds[static_cast<std::size_t>(s)] = gen.next_u64();
  const int mine = std::clamp(n - part.first, 0, workers());
  if (mine == 0) return {};
  if (part.first > 0) gen.manual_seed(seeds[static_cast<std::size_t>(part.first)]);
  // The replicas read the model's current weights (re-pointed every step: loading a checkpoint
  // may have replaced a parameter's tensor) and follow its train/eval mode.
  const NamedParameters params = model_.named_parameters();
  for (int w = 1; w < mine; ++w) {
    Replica& r = *replicas_[static_cast<std::size_t>(w - 1)];
    r.gen.manual_seed(seeds[static_cast<std::size_t>(part.first + w)]);
    NamedParameters theirs = r.model.named_parameters();
    for (std::size_t k = 0; k < params.size(); ++k) {
      theirs[k].second.data() = params[k].second.data();
    }
    r.model.train(model_.training());
  }
  std::vector<Batch> shares;
  for (int w = 0; w < mine; ++w) {
    const auto [begin, end] = share(b.size(), n, part.first + w);
    shares.push_back(slice_rows(b, begin, end));
  }
  const std::int64_t total = b.target_tokens();
  std::vector<LossResult> results(static_cast<std::size_t>(mine));
  run_workers(mine, [&](int w) {
    const Batch& s = shares[static_cast<std::size_t>(w)];
    const Seq2Seq& m = w == 0 ? model_ : replicas_[static_cast<std::size_t>(w - 1)]->model;
    Generator& g = w == 0 ? gen : replicas_[static_cast<std::size_t>(w - 1)]->gen;
    LossResult r = m.loss(s.src, s.src_lengths, s.tgt_in, s.tgt_out, options, g);
    // d(batch mean)/d(share mean) = share tokens / batch tokens
    const double weight =
        total > 0 ? static_cast<double>(r.tokens) / static_cast<double>(total) : 0.0;
    r.loss.backward(Tensor::full({}, weight, r.loss.dtype()));
    results[static_cast<std::size_t>(w)] = std::move(r);
  });
  // Sum the replicas' gradients into the model's (replica by replica, as one thread would), then
  // clear them for the next step; the parameters are split over the workers' threads.
  std::vector<NamedParameters> theirs;
  for (int w = 1; w < mine; ++w) {
    theirs.push_back(replicas_[static_cast<std::size_t>(w - 1)]->model.named_parameters());
  }
  std::vector<std::int64_t> sizes;
  for (const auto& [name, p] : params) sizes.push_back(p.data().numel());
  parallel_ranges(sizes, mine, [&](std::size_t begin, std::size_t end) {
    for (const NamedParameters& replica : theirs) {
      for (std::size_t k = begin; k < end; ++k) {
        Variable p = replica[k].second;
        if (p.grad().defined()) params[k].second.impl()->accumulate(p.grad());
        p.zero_grad();
      }
    }
  });
  StepLoss out;
  for (const LossResult& r : results) {
    out.loss += total > 0
                    ? r.loss.item() * static_cast<double>(r.tokens) / static_cast<double>(total)
                    : 0.0;
    out.tokens += r.tokens;
  }
  return out;
}

void DataParallel::sum_gradients(Collective& group) {
  const std::vector<Variable> params = model_.parameters();
  std::int64_t count = 0;
  for (const Variable& p : params) {
    if (p.data().dtype() != DType::f32) {
      throw ValueError("train_step: a group of processes trains float32 parameters only");
    }
    count += p.data().numel();
  }
  // A new buffer only for a new size, or while last step's gradients are still held elsewhere
  // (zero_grad drops the parameters' own views of it).
  if (!summed_.defined() || summed_.numel() != count || summed_.storage().use_count() > 1) {
    summed_ = Tensor::empty({count});
  }
  float* flat = summed_.data<float>();
  std::int64_t at = 0;
  for (const Variable& p : params) {
    const std::int64_t n = p.data().numel();
    if (p.grad().defined()) {
      const Tensor g = p.grad().contiguous();
      std::copy_n(g.data<float>(), n, flat + at);
    } else {
      std::fill_n(flat + at, n, 0.0f);
    }
    at += n;
  }
  group.sum(std::span<float>(flat, static_cast<std::size_t>(count)));
  at = 0;
  for (const Variable& p : params) {
    const std::int64_t n = p.data().numel();
    p.impl()->grad = summed_.narrow(0, at, n).reshape(p.data().shape());
    at += n;
  }
}

std::vector<Hypothesis> parallel_beam_search(const std::vector<const Seq2Seq*>& models,
                                             const Tensor& src,
                                             const std::vector<std::int64_t>& lengths,
                                             const SearchOptions& options, int workers) {
  const std::int64_t B = src.size(0);
  const int n = std::clamp<int>(workers, 1, static_cast<int>(std::max<std::int64_t>(B, 1)));
  if (n == 1) return beam_search(models, src, lengths, options);
  std::vector<std::vector<Hypothesis>> parts(static_cast<std::size_t>(n));
  run_workers(n, [&](int w) {
    const auto [begin, end] = share(B, n, w);
    const std::vector<std::int64_t> part_lengths(lengths.begin() + begin, lengths.begin() + end);
    parts[static_cast<std::size_t>(w)] =
        beam_search(models, src.narrow(0, begin, end - begin).contiguous(), part_lengths, options);
  });
  std::vector<Hypothesis> all;
  for (auto& p : parts) {
    for (auto& h : p) all.push_back(std::move(h));
  }
  return all;
}

}  // namespace seqgrad
