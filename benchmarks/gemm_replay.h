// The matmul-only time of a step: the gemm calls the tensor layer issued during one step
// (tensor/matmul.h GemmRecording), replayed as raw cblas calls on buffers of the same shapes and
// leading dimensions. That is what the step would cost if everything but its matrix products
// were free. Tiny products (a batch of m/n/k = 1 ones, done by SIMD loops, not gemm) are left out
// of the replay and counted separately, so the bound is the stricter one.
#pragma once

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "benchmarks/timing.h"
#include "tensor/matmul.h"

namespace seqgrad::bench {

struct GemmReplay {
  std::vector<GemmCall> calls;  // the replayed ones (tiny products excluded)
  std::int64_t tiny = 0;        // products done by SIMD loops
  double gflop = 0;             // of the replayed calls
  double tiny_gflop = 0;
  std::vector<float> a, b, c;  // buffers big enough for every call

  explicit GemmReplay(const std::vector<GemmCall>& recorded) {
    std::size_t na = 1, nb = 1, nc = 1;
    for (const GemmCall& g : recorded) {
      const double flop = 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) *
                          static_cast<double>(g.k) * 1e-9;
      if (g.tiny) {
        ++tiny;
        tiny_gflop += flop;
        continue;
      }
      calls.push_back(g);
      gflop += flop;
      // Row-major extents: A is m x k (or k x m transposed) with leading dimension lda.
      na = std::max(na, static_cast<std::size_t>((g.trans_a ? g.k : g.m) * g.lda));
      nb = std::max(nb, static_cast<std::size_t>((g.trans_b ? g.n : g.k) * g.ldb));
      nc = std::max(nc, static_cast<std::size_t>(g.m * g.ldc));
    }
    a.assign(na, 0.5f);
    b.assign(nb, 0.25f);
    c.assign(nc, 0.f);
  }

  // One pass over every replayed call, in the recorded order; seconds.
  double run() {
    const double t0 = now_seconds();
    for (const GemmCall& g : calls) {
      cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
                  g.trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(g.m),
                  static_cast<blasint>(g.n), static_cast<blasint>(g.k), 1.0f, a.data(),
                  static_cast<blasint>(g.lda), b.data(), static_cast<blasint>(g.ldb),
                  g.accumulate ? 1.0f : 0.0f, c.data(), static_cast<blasint>(g.ldc));
    }
    escape(c.data());
    return now_seconds() - t0;
  }

  // The shapes that take most of the replay, "m x n x k (tA,tB) count: ms", one a line.
  std::string top_shapes(std::size_t count) const {
    std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool>, int> calls_of;
    for (const GemmCall& g : calls) ++calls_of[{g.m, g.n, g.k, g.trans_a, g.trans_b}];
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [key, n] : calls_of) {
      const auto [m, nn, k, ta, tb] = key;
      const double flop = 2.0 * static_cast<double>(m * nn * k) * n * 1e-9;
      rows.emplace_back(flop, fmt::format("{}x{}x{} ({}{}) x{}: {:.3f} GFLOP", m, nn, k,
                                          ta ? 'T' : 'N', tb ? 'T' : 'N', n, flop));
    }
    std::sort(rows.rbegin(), rows.rend());
    std::string out;
    for (std::size_t i = 0; i < std::min(count, rows.size()); ++i)
      out += "    " + rows[i].second + "\n";
    return out;
  }
};

}  // namespace seqgrad::bench
