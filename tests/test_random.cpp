// The seeded generator: fixed streams (checked against xoshiro256** values computed
// independently), reproducibility by seed, distribution moments on 100k samples, and exact
// state()/set_state() round trips, including a cached Box-Muller normal.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "tensor/random.h"

using namespace seqgrad;

namespace {

constexpr std::int64_t kSamples = 100000;

struct Moments {
  double mean = 0, std = 0;
};

Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.std += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(m.std / static_cast<double>(v.size() - 1));
  return m;
}

}  // namespace

TEST_CASE("the bit stream is xoshiro256** seeded by splitmix64") {
  // Reference values from an independent implementation of the published algorithms.
  Generator g0(0);
  CHECK(g0.next_u64() == 0x99ec5f36cb75f2b4ULL);
  CHECK(g0.next_u64() == 0xbf6e1f784956452aULL);
  CHECK(g0.next_u64() == 0x1a5f849d4933e6e0ULL);
  Generator g42(42);
  CHECK(g42.next_u64() == 0x15780b2e0c2ec716ULL);
  CHECK(g42.next_u64() == 0x6104d9866d113a7eULL);
  CHECK(g42.next_u64() == 0xae17533239e499a1ULL);
  // next_double keeps the top 53 bits.
  Generator g(0);
  CHECK(g.next_double() == static_cast<double>(0x99ec5f36cb75f2b4ULL >> 11) * 0x1.0p-53);
}

TEST_CASE("same seed, same numbers, different seeds differ") {
  Generator a(1234), b(1234), c(1235);
  std::vector<std::uint64_t> va, vb, vc;
  for (int i = 0; i < 1000; ++i) {
    va.push_back(a.next_u64());
    vb.push_back(b.next_u64());
    vc.push_back(c.next_u64());
  }
  CHECK(va == vb);
  int same = 0;
  for (std::size_t i = 0; i < va.size(); ++i) same += va[i] == vc[i];
  CHECK(same == 0);

  Generator t1(7), t2(7), t3(8);
  CHECK(uniform({64}, -1, 1, DType::f32, t1).to_vector<float>() ==
        uniform({64}, -1, 1, DType::f32, t2).to_vector<float>());
  CHECK(normal({8, 8}, 0, 1, DType::f64, t1).to_vector<double>() ==
        normal({8, 8}, 0, 1, DType::f64, t2).to_vector<double>());
  CHECK(bernoulli({200}, 0.5, t1).to_vector<std::int64_t>() ==
        bernoulli({200}, 0.5, t2).to_vector<std::int64_t>());
  Generator t4(7);
  CHECK(uniform({64}, -1, 1, DType::f32, t4).to_vector<float>() !=
        uniform({64}, -1, 1, DType::f32, t3).to_vector<float>());

  // manual_seed restarts the stream and drops a cached normal.
  Generator r(99);
  const double first = Generator(99).next_normal();
  r.next_normal();  // caches the second value of the pair
  r.manual_seed(99);
  CHECK(r.next_normal() == first);
  Generator fresh(5);
  r.manual_seed(5);
  CHECK(r.next_u64() == fresh.next_u64());
}

TEST_CASE("the default generator follows manual_seed") {
  manual_seed(2024);
  const auto a = uniform({16}, 0, 1).to_vector<float>();
  manual_seed(2024);
  const auto b = uniform({16}, 0, 1).to_vector<float>();
  CHECK(a == b);
  Generator g(2024);
  CHECK(uniform({16}, 0, 1, DType::f32, g).to_vector<float>() == a);
  CHECK(&default_generator() == &default_generator());
}

TEST_CASE("next_double and uniform stay in range with the right mean") {
  Generator g(3);
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = g.next_double();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(lo < 0.01);
  CHECK(hi > 0.99);

  for (DType d : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(d));
    const Tensor u = uniform({kSamples}, -2.0, 3.0, d, g);
    CHECK(u.dtype() == d);
    CHECK(u.shape() == Shape{kSamples});
    const auto v = u.to_vector<double>();
    for (double x : v) {
      if (x < -2.0 || x > 3.0) FAIL_CHECK("uniform sample " << x << " outside [-2, 3]");
    }
    const Moments m = moments(v);
    // Mean 0.5, std 5/sqrt(12); the sample mean's own std is about 0.0046.
    CHECK(std::abs(m.mean - 0.5) < 0.025);
    CHECK(std::abs(m.std - 5.0 / std::sqrt(12.0)) < 0.02);
    // Each fifth of the range holds about a fifth of the samples.
    std::vector<int> bins(5, 0);
    for (double x : v) ++bins[std::min(4, static_cast<int>(x + 2.0))];
    for (int b : bins) CHECK(std::abs(b / static_cast<double>(kSamples) - 0.2) < 0.01);
  }
  // low == high gives that value.
  CHECK(uniform({3}, 1.5, 1.5, DType::f64, g).to_vector<double>() == std::vector<double>(3, 1.5));
}

TEST_CASE("normal has the requested mean and std") {
  Generator g(11);
  for (DType d : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(d));
    const auto v = normal({kSamples}, 1.5, 2.0, d, g).to_vector<double>();
    const Moments m = moments(v);
    CHECK(std::abs(m.mean - 1.5) < 0.03);  // sample-mean std is 2/sqrt(1e5) = 0.0063
    CHECK(std::abs(m.std - 2.0) < 0.03);
    // About 68.3% within one std.
    int within = 0;
    for (double x : v) within += std::abs(x - 1.5) < 2.0;
    CHECK(std::abs(within / static_cast<double>(kSamples) - 0.6827) < 0.01);
  }
  // Consecutive samples (the two halves of each Box-Muller pair among them) are uncorrelated.
  const auto z = normal({kSamples}, 0, 1, DType::f64, g).to_vector<double>();
  double lag = 0, sq = 0;
  for (std::size_t i = 0; i + 1 < z.size(); i += 2) {
    lag += z[i] * z[i + 1];
    sq += z[i] * z[i];
  }
  CHECK(std::abs(lag / sq) < 0.02);
  // std = 0 gives the mean exactly.
  CHECK(normal({4}, -3.0, 0.0, DType::f64, g).to_vector<double>() == std::vector<double>(4, -3.0));
  // Odd-sized tensors consume pairs cleanly: a 3-element draw leaves one normal cached, which
  // the next draw uses first.
  Generator p(5), q(5);
  const auto three = normal({3}, 0, 1, DType::f64, p).to_vector<double>();
  const auto one = normal({1}, 0, 1, DType::f64, p).to_vector<double>();
  const auto four = normal({4}, 0, 1, DType::f64, q).to_vector<double>();
  CHECK(four == std::vector<double>{three[0], three[1], three[2], one[0]});
}

TEST_CASE("bernoulli frequency") {
  Generator g(17);
  for (double p : {0.1, 0.3, 0.5, 0.9}) {
    CAPTURE(p);
    const Tensor b = bernoulli({kSamples}, p, g);
    CHECK(b.dtype() == DType::boolean);
    const auto v = b.to_vector<std::int64_t>();
    std::int64_t ones = 0;
    for (auto x : v) {
      CHECK((x == 0 || x == 1));
      ones += x;
    }
    CHECK(std::abs(ones / static_cast<double>(kSamples) - p) < 0.008);
  }
  const auto none = bernoulli({1000}, 0.0, g).to_vector<std::int64_t>();
  const auto all = bernoulli({1000}, 1.0, g).to_vector<std::int64_t>();
  CHECK(none == std::vector<std::int64_t>(1000, 0));
  CHECK(all == std::vector<std::int64_t>(1000, 1));
  CHECK(bernoulli({2, 3}, 0.5, g).shape() == Shape{2, 3});
}

// bernoulli and dropout_mask draw in chunks with the state in registers: they must give what
// one next_double() per element gives, and leave the generator where that would.
TEST_CASE("bernoulli and dropout_mask are next_double() < p, draw for draw") {
  Generator a(23), b(23), c(23);
  std::vector<std::uint64_t> filled(1500);
  a.fill_u64(filled.data(), 1500);
  for (std::uint64_t u : filled) REQUIRE(u == b.next_u64());
  CHECK(a.state() == b.state());
  for (const double p : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    CAPTURE(p);
    Generator g(5), h(5);
    const auto got = bernoulli({1300}, p, g).to_vector<std::int64_t>();  // crosses chunks
    for (std::int64_t x : got) REQUIRE(x == (h.next_double() < p ? 1 : 0));
    CHECK(g.state() == h.state());
  }
  for (const DType dtype : {DType::f32, DType::f64}) {
    Generator g(9), h(9);
    const Tensor mask = dropout_mask({37, 29}, 0.3, dtype, g);
    CHECK(mask.dtype() == dtype);
    const std::vector<double> m = mask.to_vector<double>();
    const double scale =
        dtype == DType::f32 ? static_cast<double>(static_cast<float>(1.0 / 0.7)) : 1.0 / 0.7;
    for (double x : m) REQUIRE(x == (h.next_double() < 1.0 - 0.3 ? scale : 0.0));
    CHECK(g.state() == h.state());
  }
  Generator g(1);
  CHECK_THROWS_AS(dropout_mask({2}, 1.0, DType::f32, g), ValueError);
}

TEST_CASE("state and set_state round trip the stream") {
  Generator g(31);
  for (int i = 0; i < 10; ++i) g.next_u64();

  SUBCASE("no cached normal") {
    const auto s = g.state();
    CHECK(s[4] == ~0ULL);
    std::vector<double> a;
    for (int i = 0; i < 7; ++i) a.push_back(g.next_normal());
    a.push_back(g.next_double());
    g.set_state(s);
    std::vector<double> b;
    for (int i = 0; i < 7; ++i) b.push_back(g.next_normal());
    b.push_back(g.next_double());
    CHECK(a == b);
    CHECK(g.state() != s);
  }
  SUBCASE("with a cached normal") {
    g.next_normal();  // the pair's second value is now cached
    const auto s = g.state();
    CHECK(s[4] != ~0ULL);
    const double cached = g.next_normal();  // served from the cache, no bits drawn
    const auto after_cache = g.state();
    CHECK(after_cache[4] == ~0ULL);
    CHECK(std::vector<std::uint64_t>(after_cache.begin(), after_cache.begin() + 4) ==
          std::vector<std::uint64_t>(s.begin(), s.begin() + 4));
    const auto tail = normal({9}, 0, 1, DType::f64, g).to_vector<double>();

    // Restore into a different generator: the cached value comes back bit for bit.
    Generator other(1);
    other.set_state(s);
    CHECK(other.state() == s);
    CHECK(other.next_normal() == cached);
    CHECK(normal({9}, 0, 1, DType::f64, other).to_vector<double>() == tail);

    // And into the same one.
    g.set_state(s);
    CHECK(g.next_normal() == cached);
    CHECK(normal({9}, 0, 1, DType::f64, g).to_vector<double>() == tail);
  }
  SUBCASE("tensor draws") {
    const auto s = g.state();
    const auto a = uniform({50}, 0, 1, DType::f32, g).to_vector<float>();
    const auto n = normal({5}, 0, 1, DType::f32, g).to_vector<float>();
    const auto m = bernoulli({50}, 0.4, g).to_vector<std::int64_t>();
    g.set_state(s);
    CHECK(uniform({50}, 0, 1, DType::f32, g).to_vector<float>() == a);
    CHECK(normal({5}, 0, 1, DType::f32, g).to_vector<float>() == n);
    CHECK(bernoulli({50}, 0.4, g).to_vector<std::int64_t>() == m);
  }
}

TEST_CASE("random argument errors") {
  Generator g(0);
  CHECK_THROWS_AS(uniform({2}, 1.0, 0.0, DType::f32, g), ValueError);
  CHECK_THROWS_AS(uniform({2}, 0.0, std::nan(""), DType::f32, g), ValueError);
  CHECK_THROWS_AS(normal({2}, 0.0, -1.0, DType::f32, g), ValueError);
  CHECK_THROWS_AS(bernoulli({2}, 1.5, g), ValueError);
  CHECK_THROWS_AS(bernoulli({2}, -0.1, g), ValueError);
  CHECK_THROWS_AS(uniform({2}, 0.0, 1.0, DType::i64, g), DTypeError);
  CHECK_THROWS_AS(normal({2}, 0.0, 1.0, DType::boolean, g), DTypeError);
}
