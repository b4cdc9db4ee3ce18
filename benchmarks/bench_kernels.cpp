// Kernel benchmarks: every figure is printed beside its reference from the same run (memcpy for
// elementwise kernels, a raw cblas_sgemm call for matmul), with the ratio and the target the
// project holds it to; a summary table closes the run. The binary only measures and reports:
// a missed target is informational and the exit code stays 0 (1 only on an internal error,
// such as the API and the reference disagreeing on a result; 2 on an unknown argument).
//
//   bench_kernels          full run: 16M-float elementwise ops, matmul up to 1024^3, attention
//                          at B 64 H 4 T 30 D 64
//   bench_kernels --quick  CI smoke run: 1M floats, no 1024^3, attention at B 8, fewer repeats
#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/ops.h"
#include "benchmarks/timing.h"
#include "tensor/elementwise.h"
#include "tensor/matmul.h"
#include "tensor/random.h"

namespace {

using seqgrad::Tensor;
using seqgrad::Variable;
using seqgrad::bench::escape;
using seqgrad::bench::time_interleaved;
using seqgrad::bench::Timing;

constexpr double kMiB = 1024.0 * 1024.0;

struct Config {
  bool quick = false;
  std::int64_t elems = 0;  // elementwise tensor length
  int warmup = 0;
  int reps = 0;
};

struct MatmulCase {
  std::int64_t m, k, n;
  bool transposed_b;  // b is the view bt.transpose(0, 1) of a dense [N,K] tensor
};

// One line of the closing table. Rows without a target are context, not judged.
struct SummaryRow {
  std::string figure;
  std::string value;
  std::string target;
  std::string result;  // "PASS", "MISS" or "info"
};

std::string judge(bool pass) {
  return pass ? "PASS" : "MISS";
}

[[noreturn]] void internal_error(const std::string& what) {
  throw std::logic_error(fmt::format("internal error: {}", what));
}

double ms(double seconds) {
  return seconds * 1e3;
}

void print_blas_line() {
  fmt::print("OpenBLAS core: {}   threads: {}   config: {}\n", seqgrad::blas_core_name(),
             openblas_get_num_threads(), openblas_get_config());
}

// --- elementwise ----------------------------------------------------------------------------

void bench_elementwise(const Config& cfg, std::vector<SummaryRow>& summary) {
  const std::int64_t n = cfg.elems;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  const double mib = static_cast<double>(bytes) / kMiB;
  fmt::print("\n== Elementwise, float32, {} elements ({:.0f} MiB per tensor) ==\n", n, mib);
  fmt::print(
      "Bytes counted: each tensor read or written once, logical bytes only (cache write-allocate\n"
      "  traffic is not counted, on either side): add = 3 x {0:.0f} MiB (read a, b; write y),\n"
      "  tanh = 2 x {0:.0f} MiB, memcpy = 2 x {0:.0f} MiB (read src, write dst). GB = 1e9 bytes.\n",
      mib);
  fmt::print(
      "Reference for the target: memcpy into a fresh Tensor::empty of the same size, i.e. the\n"
      "  same allocation and first-touch page faults that add/tanh pay for their output. memcpy\n"
      "  into a reused, already-touched buffer (no allocation at all) is shown beside it, and\n"
      "  add_ in place shows the add kernel without the allocation.\n");
  if (cfg.quick) {
    fmt::print(
        "  (--quick: these sizes fit in cache; a smoke test, not comparable to a full run)\n");
  }

  const Tensor a = seqgrad::uniform({n}, -3.0, 3.0);
  const Tensor b = seqgrad::uniform({n}, -3.0, 3.0);
  Tensor reused = Tensor::zeros({n});  // zeroing touches every page once, before timing
  Tensor acc = a.clone();              // destination of the in-place add_

  const float* pa = a.data<float>();
  const std::vector<std::function<void()>> fns = {
      [&] {
        std::memcpy(reused.data<float>(), pa, bytes);
        escape(reused.raw_data());
      },
      [&] {
        Tensor y = Tensor::empty({n});
        std::memcpy(y.data<float>(), pa, bytes);
        escape(y.raw_data());
      },
      [&] {
        Tensor y = seqgrad::add(a, b);
        escape(y.raw_data());
      },
      [&] {
        seqgrad::add_(acc, b);
        escape(acc.raw_data());
      },
      [&] {
        Tensor y = seqgrad::tanh(a);
        escape(y.raw_data());
      },
  };
  const std::vector<Timing> t = time_interleaved(cfg.warmup, cfg.reps, 1, fns);

  // The API results must be right, or their speed means nothing.
  const Tensor y_add = seqgrad::add(a, b), y_tanh = seqgrad::tanh(a);
  for (std::int64_t i = 0; i < n; i += 4099) {
    const float want_add = pa[i] + b.data<float>()[i];
    const float want_tanh = std::tanh(pa[i]);
    if (y_add.data<float>()[i] != want_add ||
        std::fabs(y_tanh.data<float>()[i] - want_tanh) > 1e-5f) {
      internal_error(
          fmt::format("elementwise result wrong at {}: add {} (want {}), tanh {} "
                      "(want {})",
                      i, y_add.data<float>()[i], want_add, y_tanh.data<float>()[i], want_tanh));
    }
  }

  struct Line {
    const char* name;
    double counted;  // bytes
    const Timing& timing;
  };
  const double b1 = static_cast<double>(bytes);
  const Line lines[] = {
      {"memcpy, reused dst  [no alloc]", 2 * b1, t[0]},
      {"memcpy, fresh Tensor::empty dst", 2 * b1, t[1]},
      {"add(a, b)  [allocates y]", 3 * b1, t[2]},
      {"add_(acc, b) in place  [no alloc]", 3 * b1, t[3]},
      {"tanh(a)  [allocates y]", 2 * b1, t[4]},
  };
  const double gbs_reused = 2 * b1 / t[0].median / 1e9;
  const double gbs_fresh = 2 * b1 / t[1].median / 1e9;
  fmt::print("  {:<36} {:>9} {:>17} {:>7} {:>11} {:>11}\n", "kernel", "median ms", "(min..max)",
             "GB/s", "/fresh cpy", "/reused cpy");
  for (const Line& l : lines) {
    const double gbs = l.counted / l.timing.median / 1e9;
    fmt::print("  {:<36} {:>9.2f} {:>17} {:>7.2f} {:>10.0f}% {:>10.0f}%\n", l.name,
               ms(l.timing.median),
               fmt::format("({:.2f}..{:.2f})", ms(l.timing.min), ms(l.timing.max)), gbs,
               100 * gbs / gbs_fresh, 100 * gbs / gbs_reused);
  }

  const auto add_rows = [&](const char* op, const Line& l) {
    const double gbs = l.counted / l.timing.median / 1e9;
    const double vs_fresh = gbs / gbs_fresh, vs_reused = gbs / gbs_reused;
    summary.push_back({fmt::format("{} GB/s / memcpy fresh dst", op),
                       fmt::format("{:.0f}% ({:.1f} GB/s)", 100 * vs_fresh, gbs), ">= 70%",
                       judge(vs_fresh >= 0.70)});
    summary.push_back({fmt::format("{} GB/s / memcpy reused dst", op),
                       fmt::format("{:.0f}%", 100 * vs_reused), "(none)", "info"});
  };
  add_rows("add", lines[2]);
  add_rows("tanh", lines[4]);
  summary.push_back({"add_ in place / memcpy reused dst",
                     fmt::format("{:.0f}%", 100 * (3 * b1 / t[3].median / 1e9) / gbs_reused),
                     "(none)", "info"});
}

// --- matmul ---------------------------------------------------------------------------------

// The largest |x - y| between two float buffers of n elements.
float max_abs_diff(const float* x, const float* y, std::int64_t n) {
  float d = 0;
  for (std::int64_t i = 0; i < n; ++i) d = std::max(d, std::fabs(x[i] - y[i]));
  return d;
}

void bench_matmul(const Config& cfg, std::vector<SummaryRow>& summary) {
  fmt::print("\n== matmul, float32: A[M,K] @ B[K,N] -> C[M,N], shapes as M x K x N ==\n");
  fmt::print(
      "GFLOP/s = 2*M*N*K / time. raw = cblas_sgemm into a reused C; API = seqgrad::matmul, which\n"
      "  also allocates C. ratio = API GFLOP/s / raw GFLOP/s.\n");
  print_blas_line();

  std::vector<MatmulCase> cases = {{64, 384, 1024, false}, {256, 256, 256, false}};
  if (!cfg.quick) cases.push_back({1024, 1024, 1024, false});
  cases.push_back({256, 256, 256, true});

  fmt::print("  {:<24} {:>3} {:>10} {:>10} {:>9} {:>9} {:>7}\n", "M x K x N", "thr", "raw ms",
             "API ms", "raw GF/s", "API GF/s", "ratio");
  for (const MatmulCase& c : cases) {
    const Tensor a = seqgrad::uniform({c.m, c.k}, -1.0, 1.0);
    // The transposed case stores B as [N,K] and hands gemm a view; raw gemm reads the same
    // buffer with CblasTrans.
    const Tensor b_store = c.transposed_b ? seqgrad::uniform({c.n, c.k}, -1.0, 1.0)
                                          : seqgrad::uniform({c.k, c.n}, -1.0, 1.0);
    const Tensor b = c.transposed_b ? b_store.transpose(0, 1) : b_store;
    Tensor c_raw = Tensor::zeros({c.m, c.n});
    const CBLAS_TRANSPOSE tb = c.transposed_b ? CblasTrans : CblasNoTrans;
    const auto ldb = static_cast<blasint>(c.transposed_b ? c.k : c.n);
    const auto raw = [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, static_cast<blasint>(c.m),
                  static_cast<blasint>(c.n), static_cast<blasint>(c.k), 1.0f, a.data<float>(),
                  static_cast<blasint>(c.k), b_store.data<float>(), ldb, 0.0f, c_raw.data<float>(),
                  static_cast<blasint>(c.n));
      escape(c_raw.raw_data());
    };
    const auto api = [&] {
      Tensor y = seqgrad::matmul(a, b);
      escape(y.raw_data());
    };

    // Short calls are repeated inside one sample so each sample lasts about 5 ms.
    raw();
    const double t0 = seqgrad::bench::now_seconds();
    raw();
    const double once = seqgrad::bench::now_seconds() - t0;
    const int inner = std::clamp(static_cast<int>(5e-3 / std::max(once, 1e-7)), 1, 1000);
    const std::vector<Timing> t = time_interleaved(cfg.warmup, cfg.reps, inner, {raw, api});

    const Tensor y = seqgrad::matmul(a, b);
    const float diff = max_abs_diff(y.data<float>(), c_raw.data<float>(), c.m * c.n);
    if (diff > 1e-3f * static_cast<float>(c.k)) {
      internal_error(
          fmt::format("matmul {}x{}x{}: API and raw gemm differ by {}", c.m, c.k, c.n, diff));
    }

    const double flops = 2.0 * static_cast<double>(c.m * c.n * c.k);
    const double gf_raw = flops / t[0].median / 1e9, gf_api = flops / t[1].median / 1e9;
    const double ratio = gf_api / gf_raw;
    const std::string label =
        fmt::format("{}x{}x{}{}", c.m, c.k, c.n, c.transposed_b ? " B^T view" : "");
    fmt::print("  {:<24} {:>3} {:>10.3f} {:>10.3f} {:>9.1f} {:>9.1f} {:>6.1f}%\n", label,
               openblas_get_num_threads(), ms(t[0].median), ms(t[1].median), gf_raw, gf_api,
               100 * ratio);

    const bool has_target = c.m >= 256 || c.transposed_b;  // the issue sets >= 95% from 256^3
    summary.push_back({fmt::format("matmul {} API/raw", label),
                       fmt::format("{:.1f}% ({:.0f} GF/s)", 100 * ratio, gf_api),
                       has_target ? ">= 95%" : "(none)",
                       has_target ? judge(ratio >= 0.95) : "info"});

    if (c.transposed_b) {
      // What a copy of B would have cost, had the view been made dense before gemm.
      const std::vector<Timing> copy = time_interleaved(cfg.warmup, cfg.reps, inner, {[&] {
                                                          Tensor d = b.contiguous();
                                                          escape(d.raw_data());
                                                        }});
      fmt::print(
          "  B^T view: B is bt.transpose(0,1) of a dense [N,K] tensor, passed to gemm as\n"
          "  CblasTrans with ld=K. A dense copy of it would add {:.3f} ms ({:.0f}% of the raw\n"
          "  gemm); a ratio near 100% shows no copy is made.\n",
          ms(copy[0].median), 100 * copy[0].median / t[0].median);
    }
  }
}

// --- autograd overhead ----------------------------------------------------------------------

void bench_autograd(const Config& cfg, std::vector<SummaryRow>& summary) {
  constexpr int kOps = 1000;
  constexpr std::int64_t kWidth = 4;
  fmt::print("\n== Autograd overhead: a chain of {} ops on {}-element float32 Variables ==\n", kOps,
             kWidth);
  fmt::print(
      "Chain: h = x; then repeat h = h * w, h = h + c, h = tanh(h) (x, w, c leaves that require\n"
      "  grad); loss = sum(h); loss.backward(). Per op = (forward + backward + tape teardown) / "
      "{}\n"
      "  (the final sum and the backward seed are included in the total, not counted as ops).\n"
      "  OpenBLAS runs {} thread(s), its workers started at load: with more than one thread in\n"
      "  the process, shared_ptr counts and malloc use atomic operations, as in any seqgrad run.\n",
      kOps, openblas_get_num_threads());

  Variable x(seqgrad::uniform({kWidth}, -1.0, 1.0), true);
  Variable w(Tensor::full({kWidth}, 0.9), true);
  Variable c(Tensor::full({kWidth}, 0.1), true);

  std::vector<double> fwd, bwd, teardown, total;
  const int warmup = cfg.warmup + 1;
  for (int r = 0; r < warmup + cfg.reps; ++r) {
    x.zero_grad();
    w.zero_grad();
    c.zero_grad();
    const double t0 = seqgrad::bench::now_seconds();
    Variable h = x;
    for (int i = 0; i < kOps; ++i) {
      switch (i % 3) {
        case 0:
          h = h * w;
          break;
        case 1:
          h = h + c;
          break;
        default:
          h = seqgrad::tanh(h);
          break;
      }
    }
    Variable loss = seqgrad::sum(h);
    const double t1 = seqgrad::bench::now_seconds();
    loss.backward();
    const double t2 = seqgrad::bench::now_seconds();
    loss = Variable();
    h = Variable();  // the last reference to the tape: frees every node
    const double t3 = seqgrad::bench::now_seconds();
    if (r < warmup) continue;
    fwd.push_back(t1 - t0);
    bwd.push_back(t2 - t1);
    teardown.push_back(t3 - t2);
    total.push_back(t3 - t0);
  }
  for (const Variable* v : {&x, &w, &c}) {
    if (!v->grad().defined() || !std::isfinite(seqgrad::sum(v->grad()).item())) {
      internal_error("autograd chain: a leaf got no finite gradient");
    }
  }

  const auto per_op_ns = [&](std::vector<double> s) {
    return seqgrad::bench::summarize(std::move(s)).median / kOps * 1e9;
  };
  const Timing t_total = seqgrad::bench::summarize(total);
  const double ns = t_total.median / kOps * 1e9;
  fmt::print("  forward {:.0f} ns/op, backward {:.0f} ns/op, teardown {:.0f} ns/op\n",
             per_op_ns(fwd), per_op_ns(bwd), per_op_ns(teardown));
  fmt::print("  total   {:.0f} ns/op (median of {}; min {:.0f}, max {:.0f})\n", ns, cfg.reps,
             t_total.min / kOps * 1e9, t_total.max / kOps * 1e9);
  summary.push_back({"autograd tiny-op chain, fwd+bwd", fmt::format("{:.0f} ns/op", ns),
                     "<= 1000 ns/op", judge(ns <= 1000)});
}

// --- scaled dot-product attention ------------------------------------------------------------

// The composite the fused op replaced, as it was: matmul, scale, masked softmax (the causal and
// key padding masks combined into a dense [B,H,Tq,Tk] mask per call), matmul; four nodes and
// their [B,H,Tq,Tk] intermediates on the tape.
Variable sdpa_composite(const Variable& q, const Variable& k, const Variable& v,
                        const Tensor& padding, double scale) {
  const std::int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), Tk = k.size(2);
  Tensor causal = Tensor::zeros({Tq, Tk}, seqgrad::DType::boolean);
  auto* c = static_cast<std::uint8_t*>(causal.raw_data());
  for (std::int64_t i = 0; i < Tq; ++i) {
    for (std::int64_t j = 0; j < Tk; ++j) c[i * Tk + j] = j <= i + (Tk - Tq);
  }
  Tensor keep = padding.expand({B, H, Tq, Tk}).contiguous();
  const Tensor cb = causal.expand({B, H, Tq, Tk}).contiguous();
  auto* pk = static_cast<std::uint8_t*>(keep.raw_data());
  const auto* pc = static_cast<const std::uint8_t*>(cb.raw_data());
  for (std::int64_t e = 0; e < keep.numel(); ++e) pk[e] = pk[e] && pc[e];
  const auto fold = [&](const Variable& x) {
    return seqgrad::reshape(x, {B * H, x.size(2), x.size(3)});
  };
  const Variable s = seqgrad::matmul(fold(q), seqgrad::transpose(fold(k), 1, 2)) * scale;
  const Variable w = seqgrad::softmax(seqgrad::reshape(s, {B, H, Tq, Tk}), -1, keep);
  return seqgrad::reshape(seqgrad::matmul(fold(w), fold(v)), {B, H, Tq, v.size(3)});
}

void bench_sdpa(const Config& cfg, std::vector<SummaryRow>& summary) {
  const std::int64_t B = cfg.quick ? 8 : 64, H = 4, T = 30, D = 64;
  fmt::print(
      "\n== scaled dot-product attention, float32, B {} H {} Tq = Tk = {} D {}, key padding "
      "mask [B,1,1,Tk], causal ==\n",
      B, H, T, D);
  fmt::print(
      "Forward + backward of one call (loss = sum(y * u)), fused primitive (one tape node: q, k,\n"
      "  v, P kept) against the composite it replaced (matmul, scale, masked softmax, matmul).\n"
      "  dense: q, k, v [B,H,T,D] tensors; heads split: [B,T,H*D] viewed [B,T,H,D] and permuted\n"
      "  to [B,H,T,D], as a multi-head layer hands them over. ratio = composite / fused median\n"
      "  time; min ratio = the same for the fastest repeats (what a quiet machine would show).\n");
  print_blas_line();
  seqgrad::Generator gen(3);
  Tensor padding = Tensor::zeros({B, 1, 1, T}, seqgrad::DType::boolean);
  auto* pp = static_cast<std::uint8_t*>(padding.raw_data());
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t len = T / 2 + static_cast<std::int64_t>(gen.next_u64() % (T / 2 + 1));
    for (std::int64_t j = 0; j < len; ++j) pp[b * T + j] = 1;
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  fmt::print("  {:<12} {:>9} {:>17} {:>13} {:>17} {:>7} {:>10}\n", "layout", "fused ms",
             "(min..max)", "composite ms", "(min..max)", "ratio", "min ratio");
  for (const bool split : {false, true}) {
    const auto input = [&] {
      const Tensor t = seqgrad::normal({B, T, H, D}, 0, 1, seqgrad::DType::f32, gen);
      return split ? t.permute({0, 2, 1, 3}) : t.permute({0, 2, 1, 3}).contiguous();
    };
    Variable q(input(), true), k(input(), true), v(input(), true);
    const Variable up(seqgrad::normal({B, H, T, D}, 0, 1, seqgrad::DType::f32, gen));
    seqgrad::SdpaOptions o;
    o.mask = padding;
    o.causal = true;
    o.scale = scale;
    const auto step = [&](bool fused) {
      q.zero_grad();
      k.zero_grad();
      v.zero_grad();
      const Variable y = fused ? seqgrad::scaled_dot_product_attention(q, k, v, o).out
                               : sdpa_composite(q, k, v, padding, scale);
      seqgrad::sum(y * up).backward();
      escape(q.grad().raw_data());
      return y.data();
    };
    // Both sides must compute the same thing, or their speed means nothing.
    const Tensor y_fused = step(true), dq_fused = q.grad().clone();
    const Tensor y_comp = step(false), dq_comp = q.grad().clone();
    const float dy = max_abs_diff(y_fused.data<float>(), y_comp.data<float>(), y_fused.numel());
    const float dg = max_abs_diff(dq_fused.data<float>(), dq_comp.data<float>(), dq_fused.numel());
    if (dy > 1e-4f || dg > 1e-4f) {
      internal_error(fmt::format("sdpa: fused and composite differ by {} (out), {} (dq)", dy, dg));
    }
    // A call is a few ms: three times the usual repeats, so the medians hold on a busy machine.
    const std::vector<Timing> t = time_interleaved(cfg.warmup + 1, 3 * cfg.reps, 1,
                                                   {[&] { step(true); }, [&] { step(false); }});
    const double ratio = t[1].median / t[0].median;
    const char* layout = split ? "heads split" : "dense";
    fmt::print("  {:<12} {:>9.3f} {:>17} {:>13.3f} {:>17} {:>6.2f}x {:>9.2f}x\n", layout,
               ms(t[0].median), fmt::format("({:.3f}..{:.3f})", ms(t[0].min), ms(t[0].max)),
               ms(t[1].median), fmt::format("({:.3f}..{:.3f})", ms(t[1].min), ms(t[1].max)), ratio,
               t[1].min / t[0].min);
    summary.push_back({fmt::format("sdpa composite/fused, {}", layout),
                       fmt::format("{:.2f}x ({:.2f} ms)", ratio, ms(t[0].median)), "(none)",
                       "info"});
  }
}

void print_summary(const std::vector<SummaryRow>& rows) {
  fmt::print("\n== Summary (informational: a MISS does not change the exit code) ==\n");
  fmt::print("  {:<36} {:<22} {:<14} {}\n", "figure", "value", "target", "result");
  for (const SummaryRow& r : rows) {
    fmt::print("  {:<36} {:<22} {:<14} {}\n", r.figure, r.value, r.target, r.result);
  }
}

int run(const Config& cfg) {
  fmt::print("seqgrad kernel benchmarks ({} run)\n", cfg.quick ? "--quick" : "full");
  print_blas_line();
  fmt::print("Each figure: median of {} timed repeats after {} warm-up runs (min..max shown).\n",
             cfg.reps, cfg.warmup);
  std::vector<SummaryRow> summary;
  bench_elementwise(cfg, summary);
  bench_matmul(cfg, summary);
  bench_autograd(cfg, summary);
  bench_sdpa(cfg, summary);
  print_summary(summary);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      cfg.quick = true;
    } else {
      fmt::print(stderr, "usage: {} [--quick]\n  unknown argument: {}\n", argv[0], arg);
      return 2;
    }
  }
  cfg.elems = cfg.quick ? std::int64_t{1} << 20 : std::int64_t{1} << 24;
  cfg.warmup = cfg.quick ? 1 : 2;
  cfg.reps = cfg.quick ? 5 : 11;
  try {
    return run(cfg);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_kernels: {}\n", e.what());
    return 1;
  }
}
