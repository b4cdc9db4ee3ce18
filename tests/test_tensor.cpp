// Tensor: factories, dtypes, views that share storage without copying, and the copies
// (contiguous, clone, astype, copy_from) plus host-side element access.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/tensor.h"

using namespace seqgrad;

namespace {

// 0, 1, 2, ... as float32 in the given shape.
Tensor iota_f32(const Shape& shape) {
  return Tensor::arange(shape_numel(shape), DType::i64).astype(DType::f32).reshape(shape);
}

}  // namespace

TEST_CASE("shape helpers") {
  CHECK(shape_str({2, 3, 4}) == "[2,3,4]");
  CHECK(shape_str({}) == "[]");
  CHECK(shape_numel({2, 3, 4}) == 24);
  CHECK(shape_numel({}) == 1);
  CHECK(shape_numel({3, 0}) == 0);
  CHECK(contiguous_strides({2, 3, 4}) == Shape{12, 4, 1});
  CHECK(contiguous_strides({}) == Shape{});
  CHECK(normalize_axis(-1, 3, "t") == 2);
  CHECK(normalize_axis(-3, 3, "t") == 0);
  CHECK(normalize_axis(2, 3, "t") == 2);
  CHECK_THROWS_AS(normalize_axis(3, 3, "t"), IndexError);
  CHECK_THROWS_AS(normalize_axis(-4, 3, "t"), IndexError);
  CHECK(broadcast_shapes({3, 1}, {1, 4}, "t") == Shape{3, 4});
  CHECK(broadcast_shapes({2, 3, 4}, {4}, "t") == Shape{2, 3, 4});
  CHECK(broadcast_shapes({}, {2, 2}, "t") == Shape{2, 2});
  CHECK(broadcast_shapes({5, 1, 3}, {2, 1}, "t") == Shape{5, 2, 3});
  CHECK_THROWS_AS(broadcast_shapes({2, 3}, {4}, "t"), ShapeError);
}

TEST_CASE("dtype facts") {
  CHECK(dtype_size(DType::f32) == 4);
  CHECK(dtype_size(DType::f64) == 8);
  CHECK(dtype_size(DType::i64) == 8);
  CHECK(dtype_size(DType::boolean) == 1);
  CHECK(dtype_name(DType::f32) == "float32");
  CHECK(dtype_name(DType::f64) == "float64");
  CHECK(dtype_name(DType::i64) == "int64");
  CHECK(dtype_name(DType::boolean) == "bool");
  CHECK(is_floating(DType::f32));
  CHECK(is_floating(DType::f64));
  CHECK_FALSE(is_floating(DType::i64));
  CHECK_FALSE(is_floating(DType::boolean));
}

TEST_CASE("factories") {
  SUBCASE("undefined") {
    Tensor t;
    CHECK_FALSE(t.defined());
    CHECK(t.str() == "Tensor(undefined)");
    CHECK_THROWS_AS(t.raw_data(), ValueError);
  }
  SUBCASE("zeros, ones, full in every dtype") {
    for (DType d : {DType::f32, DType::f64, DType::i64, DType::boolean}) {
      CAPTURE(dtype_name(d));
      Tensor z = Tensor::zeros({2, 3}, d);
      CHECK(z.defined());
      CHECK(z.dtype() == d);
      CHECK(z.shape() == Shape{2, 3});
      CHECK(z.strides() == Shape{3, 1});
      CHECK(z.dim() == 2);
      CHECK(z.numel() == 6);
      CHECK(z.is_contiguous());
      CHECK(z.to_vector<double>() == std::vector<double>(6, 0.0));
      CHECK(Tensor::ones({4}, d).to_vector<double>() == std::vector<double>(4, 1.0));
    }
    CHECK(Tensor::full({2, 2}, 2.5, DType::f64).to_vector<double>() == std::vector<double>(4, 2.5));
    CHECK(Tensor::full({3}, 7.9, DType::i64).to_vector<std::int64_t>() ==
          std::vector<std::int64_t>(3, 7));
  }
  SUBCASE("default dtype is float32") {
    CHECK(Tensor::zeros({1}).dtype() == DType::f32);
    CHECK(Tensor::scalar(1.0).dtype() == DType::f32);
    CHECK(Tensor::arange(3).dtype() == DType::i64);
  }
  SUBCASE("scalar") {
    Tensor s = Tensor::scalar(3.25, DType::f64);
    CHECK(s.dim() == 0);
    CHECK(s.shape().empty());
    CHECK(s.numel() == 1);
    CHECK(s.item() == 3.25);
    CHECK(s.at({}) == 3.25);
  }
  SUBCASE("arange") {
    CHECK(Tensor::arange(5).to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4});
    CHECK(Tensor::arange(4, DType::f32).to_vector<float>() == std::vector<float>{0, 1, 2, 3});
    CHECK(Tensor::arange(0).numel() == 0);
  }
  SUBCASE("from_vector") {
    Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(a.dtype() == DType::f32);
    CHECK(a.at({1, 2}) == 6.0);
    Tensor b = Tensor::from_vector<double>({0.5, -1.5}, {2});
    CHECK(b.dtype() == DType::f64);
    CHECK(b.to_vector<double>() == std::vector<double>{0.5, -1.5});
    Tensor c = Tensor::from_vector<std::int64_t>({7, 8, 9}, {3, 1});
    CHECK(c.dtype() == DType::i64);
    CHECK(c.at({2, 0}) == 9.0);
    const Tensor m = Tensor::from_vector<bool>({true, false, true}, {3});
    CHECK(m.dtype() == DType::boolean);
    CHECK(m.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 1});
    CHECK_THROWS_AS(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), ShapeError);
  }
  SUBCASE("from_list converts to the dtype") {
    Tensor i = Tensor::from_list({1.0, 2.0, -3.0}, {3}, DType::i64);
    CHECK(i.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 2, -3});
    Tensor m = Tensor::from_list({0, 1, 1, 0}, {2, 2}, DType::boolean);
    CHECK(m.dtype() == DType::boolean);
    CHECK(m.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 1, 0});
    CHECK_THROWS_AS(Tensor::from_list({1, 2}, {3}), ShapeError);
  }
  SUBCASE("negative size and empty tensors") {
    CHECK_THROWS_AS(Tensor::empty({2, -1}), ValueError);
    Tensor e = Tensor::zeros({0, 3});
    CHECK(e.numel() == 0);
    CHECK(e.to_vector<float>().empty());
  }
  SUBCASE("str") {
    CHECK(Tensor::from_list({1, 2, 3}, {3}).str() == "float32[3] {1, 2, 3}");
    const std::string s = Tensor::zeros({20}).str();
    CHECK(s.find("float32[20]") == 0);
    CHECK(s.find(", ...") != std::string::npos);
  }
}

TEST_CASE("data<T> checks the dtype") {
  Tensor t = Tensor::zeros({2}, DType::f64);
  CHECK(t.data<double>() != nullptr);
  CHECK_THROWS_AS(t.data<float>(), DTypeError);
  CHECK_THROWS_AS(t.data<std::int64_t>(), DTypeError);
}

TEST_CASE("reshape views dense data and infers -1") {
  Tensor x = iota_f32({2, 3, 4});
  Tensor r = x.reshape({6, 4});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.shares_storage(x));
  CHECK(r.raw_data() == x.raw_data());
  CHECK(r.at({5, 3}) == 23.0);

  CHECK(x.reshape({-1}).shape() == Shape{24});
  CHECK(x.reshape({4, -1}).shape() == Shape{4, 6});
  CHECK(x.reshape({-1, 2, 3}).shape() == Shape{4, 2, 3});
  CHECK(x.reshape({2, -1, 3}).shape() == Shape{2, 4, 3});
  CHECK(x.reshape({-1, 2, 3}).shares_storage(x));
  CHECK(Tensor::scalar(5).reshape({1, 1}).shape() == Shape{1, 1});
  CHECK(Tensor::zeros({1, 1}).reshape({}).shape() == Shape{});

  // A write through the view is seen by the base: no copy was made.
  r.select(0, 0).fill_(-1);
  CHECK(x.at({0, 0, 3}) == -1.0);

  CHECK_THROWS_AS(x.reshape({5, -1}), ShapeError);
  CHECK_THROWS_AS(x.reshape({-1, -1}), ShapeError);
  CHECK_THROWS_AS(x.reshape({7}), ShapeError);
  CHECK_THROWS_AS(x.reshape({-2, 12}), ShapeError);
}

TEST_CASE("reshape of a non-contiguous view copies") {
  Tensor x = iota_f32({2, 3});
  Tensor t = x.transpose(0, 1);  // [3,2]
  Tensor r = t.reshape({-1});
  CHECK_FALSE(r.shares_storage(x));
  CHECK(r.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("permute and transpose are views") {
  Tensor x = iota_f32({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(p.shares_storage(x));
  CHECK_FALSE(p.is_contiguous());
  for (std::int64_t i = 0; i < 2; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      for (std::int64_t k = 0; k < 4; ++k) CHECK(p.at({k, i, j}) == x.at({i, j, k}));
    }
  }
  CHECK(x.permute({-1, 0, 1}).shape() == Shape{4, 2, 3});

  Tensor t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.shares_storage(x));
  CHECK(t.at({3, 1, 1}) == x.at({1, 1, 3}));
  CHECK(x.transpose(-1, -2).shape() == Shape{2, 4, 3});
  CHECK(t.transpose(0, 2).is_contiguous());

  CHECK_THROWS_AS(x.permute({0, 1}), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 0, 1}), ValueError);
  CHECK_THROWS_AS(x.permute({0, 1, 3}), IndexError);
  CHECK_THROWS_AS(x.transpose(0, 3), IndexError);
}

TEST_CASE("narrow and select are views") {
  Tensor x = iota_f32({3, 4});
  Tensor n = x.narrow(1, 1, 2);
  CHECK(n.shape() == Shape{3, 2});
  CHECK(n.shares_storage(x));
  CHECK(n.offset() == 1);
  CHECK_FALSE(n.is_contiguous());
  CHECK(n.to_vector<float>() == std::vector<float>{1, 2, 5, 6, 9, 10});
  Tensor rows = x.narrow(0, 1, 2);
  CHECK(rows.is_contiguous());
  CHECK(rows.to_vector<float>() == std::vector<float>{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(x.narrow(-1, 3, 1).to_vector<float>() == std::vector<float>{3, 7, 11});
  CHECK(x.narrow(0, 3, 0).numel() == 0);

  Tensor row = x.select(0, 2);
  CHECK(row.shape() == Shape{4});
  CHECK(row.shares_storage(x));
  CHECK(row.to_vector<float>() == std::vector<float>{8, 9, 10, 11});
  Tensor col = x.select(1, -1);
  CHECK(col.shape() == Shape{3});
  CHECK(col.strides() == Shape{4});
  CHECK(col.to_vector<float>() == std::vector<float>{3, 7, 11});

  col.fill_(0);  // writes through the view
  CHECK(x.at({1, 3}) == 0.0);
  CHECK(x.at({1, 2}) == 6.0);

  CHECK_THROWS_AS(x.narrow(1, 3, 2), IndexError);
  CHECK_THROWS_AS(x.narrow(1, -1, 2), IndexError);
  CHECK_THROWS_AS(x.narrow(2, 0, 1), IndexError);
  CHECK_THROWS_AS(x.select(0, 3), IndexError);
  CHECK_THROWS_AS(x.select(0, -4), IndexError);
}

TEST_CASE("unsqueeze and squeeze are views") {
  Tensor x = iota_f32({2, 3});
  Tensor u0 = x.unsqueeze(0);
  CHECK(u0.shape() == Shape{1, 2, 3});
  CHECK(u0.shares_storage(x));
  CHECK(u0.is_contiguous());
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3});
  CHECK(x.unsqueeze(2).shape() == Shape{2, 3, 1});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(x.unsqueeze(1).to_vector<float>() == x.to_vector<float>());
  CHECK(x.unsqueeze(2).is_contiguous());
  CHECK_THROWS_AS(x.unsqueeze(3), IndexError);

  Tensor y = iota_f32({1, 3, 1});
  CHECK(y.squeeze(0).shape() == Shape{3, 1});
  CHECK(y.squeeze(-1).shape() == Shape{1, 3});
  CHECK(y.squeeze().shape() == Shape{3});
  CHECK(y.squeeze().shares_storage(y));
  CHECK(Tensor::zeros({1, 1}).squeeze().shape() == Shape{});
  CHECK_THROWS_AS(y.squeeze(1), ShapeError);

  // unsqueeze of a transposed view keeps element order.
  Tensor t = x.transpose(0, 1).unsqueeze(1);
  CHECK(t.shape() == Shape{3, 1, 2});
  CHECK(t.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("expand broadcasts with stride 0") {
  Tensor x = Tensor::from_list({1, 2, 3}, {3, 1});
  Tensor e = x.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(e.shares_storage(x));
  CHECK_FALSE(e.is_contiguous());
  CHECK(e.at({1, 2, 3}) == 3.0);
  CHECK(e.at({0, 1, 0}) == 2.0);
  const auto v = e.to_vector<float>();
  REQUIRE(v.size() == 24);
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(v[i] == static_cast<float>((i / 4) % 3 + 1));

  Tensor s = Tensor::scalar(4).expand({2, 2});
  CHECK(s.strides() == Shape{0, 0});
  CHECK(s.to_vector<float>() == std::vector<float>(4, 4.0f));
  CHECK(x.expand({3, 1}).strides() == x.strides());

  CHECK_THROWS_AS(x.expand({3, 1}).expand({2}), ShapeError);
  CHECK_THROWS_AS(x.expand({4, 4}), ShapeError);
}

TEST_CASE("contiguous copies only when needed") {
  Tensor x = iota_f32({3, 4});
  Tensor c = x.contiguous();
  CHECK(c.shares_storage(x));
  CHECK(c.raw_data() == x.raw_data());

  Tensor rows = x.narrow(0, 1, 2);  // dense at an offset
  CHECK(rows.contiguous().raw_data() == rows.raw_data());
  CHECK(x.unsqueeze(0).contiguous().shares_storage(x));

  Tensor t = x.transpose(0, 1);
  Tensor tc = t.contiguous();
  CHECK_FALSE(tc.shares_storage(x));
  CHECK(tc.is_contiguous());
  CHECK(tc.shape() == Shape{4, 3});
  CHECK(tc.to_vector<float>() == t.to_vector<float>());
  CHECK(tc.at({3, 2}) == 11.0);

  Tensor e = Tensor::scalar(2).expand({3});
  CHECK_FALSE(e.contiguous().shares_storage(e));

  Tensor k = x.clone();
  CHECK_FALSE(k.shares_storage(x));
  CHECK(k.to_vector<float>() == x.to_vector<float>());
  k.fill_(0);
  CHECK(x.at({2, 3}) == 11.0);
}

TEST_CASE("astype converts every element") {
  Tensor x = Tensor::from_list({1.5, -2.25, 3.0, 0.0}, {2, 2}, DType::f64);
  Tensor f = x.astype(DType::f32);
  CHECK(f.dtype() == DType::f32);
  CHECK(f.to_vector<float>() == std::vector<float>{1.5f, -2.25f, 3.0f, 0.0f});
  Tensor i = x.astype(DType::i64);
  CHECK(i.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, -2, 3, 0});
  Tensor same = x.astype(DType::f64);
  CHECK_FALSE(same.shares_storage(x));
  CHECK(same.to_vector<double>() == x.to_vector<double>());

  // Any nonzero value is true, whatever its magnitude or sign.
  Tensor b = Tensor::from_list({0.0, 0.5, -2.0, 256.0}, {4}, DType::f32).astype(DType::boolean);
  CHECK(b.dtype() == DType::boolean);
  CHECK(b.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 1, 1});
  Tensor back = b.astype(DType::f32);
  CHECK(back.to_vector<float>() == std::vector<float>{0, 1, 1, 1});

  // A transposed source is read in its logical order.
  Tensor t = x.transpose(0, 1).astype(DType::f32);
  CHECK(t.is_contiguous());
  CHECK(t.to_vector<float>() == std::vector<float>{1.5f, 3.0f, -2.25f, 0.0f});
}

TEST_CASE("bool factories store 0 or 1") {
  CHECK(Tensor::full({2}, 0.5, DType::boolean).to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{1, 1});
  CHECK(Tensor::from_list({0, -1, 2}, {3}, DType::boolean).to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{0, 1, 1});
}

TEST_CASE("a transposed matrix made dense, across tile edges, in every dtype") {
  // 37 x 70: neither side a multiple of the 32-element tiles; a narrowed source (offset and
  // leading dimension larger than its rows) and a narrowed destination.
  const Tensor base = iota_f32({80, 40});
  const Tensor src = base.narrow(0, 3, 70).narrow(1, 2, 37).transpose(0, 1);  // [37,70]
  for (const DType dt : {DType::f32, DType::f64, DType::i64}) {
    CAPTURE(dtype_name(dt));
    const Tensor typed = base.astype(dt).narrow(0, 3, 70).narrow(1, 2, 37).transpose(0, 1);
    const Tensor dense = typed.contiguous();
    Tensor wide = Tensor::zeros({37, 75}, dt);
    Tensor into = wide.narrow(1, 5, 70);
    into.copy_from(typed);
    const auto a = dense.astype(DType::f64).to_vector<double>();
    const auto b = into.contiguous().astype(DType::f64).to_vector<double>();
    bool same = true;
    for (std::int64_t r = 0; r < 37; ++r) {
      for (std::int64_t c = 0; c < 70; ++c) {
        const double want = static_cast<double>((c + 3) * 40 + (r + 2));  // iota: row * 40 + col
        same = same && a[static_cast<std::size_t>(r * 70 + c)] == want &&
               b[static_cast<std::size_t>(r * 70 + c)] == want;
      }
    }
    CHECK(same);
    CHECK(wide.narrow(1, 0, 5).astype(DType::f64).to_vector<double>() ==
          std::vector<double>(37 * 5, 0.0));
  }
  CHECK(src.contiguous().is_contiguous());
}

TEST_CASE("copy_from broadcasts into a view") {
  Tensor dst = Tensor::zeros({2, 3});
  dst.copy_from(Tensor::from_list({1, 2, 3}, {3}));
  CHECK(dst.to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3});
  dst.copy_from(Tensor::from_list({7, 8}, {2, 1}));
  CHECK(dst.to_vector<float>() == std::vector<float>{7, 7, 7, 8, 8, 8});
  dst.copy_from(Tensor::scalar(-1));
  CHECK(dst.to_vector<float>() == std::vector<float>(6, -1.0f));

  // Into a column of a bigger tensor, from a transposed source.
  Tensor big = Tensor::zeros({3, 4});
  Tensor src = iota_f32({2, 3}).transpose(0, 1);  // [3,2]: {0,3},{1,4},{2,5}
  big.narrow(1, 1, 2).copy_from(src);
  CHECK(big.to_vector<float>() == std::vector<float>{0, 0, 3, 0, 0, 1, 4, 0, 0, 2, 5, 0});

  // Into a transposed destination.
  Tensor d2 = Tensor::zeros({2, 3});
  d2.transpose(0, 1).copy_from(iota_f32({3, 2}));
  CHECK(d2.to_vector<float>() == std::vector<float>{0, 2, 4, 1, 3, 5});

  CHECK_THROWS_AS(dst.copy_from(Tensor::zeros({3}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(dst.copy_from(Tensor::zeros({4})), ShapeError);
}

TEST_CASE("item, at and to_vector") {
  Tensor x = Tensor::from_list({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  CHECK(x.at({0, 0}) == 1.0);
  CHECK(x.at({1, 2}) == 6.0);
  CHECK(x.transpose(0, 1).at({2, 1}) == 6.0);
  CHECK(x.select(1, 1).at({1}) == 5.0);
  CHECK(x.narrow(0, 0, 1).narrow(1, 2, 1).item() == 3.0);
  CHECK(Tensor::from_list({42}, {1, 1, 1}, DType::i64).item() == 42.0);
  CHECK(Tensor::from_list({1}, {1}, DType::boolean).item() == 1.0);
  CHECK_THROWS_AS(x.item(), ValueError);
  CHECK_THROWS_AS(x.at({0}), IndexError);
  CHECK_THROWS_AS(x.at({2, 0}), IndexError);
  CHECK_THROWS_AS(x.at({0, -1}), IndexError);

  CHECK(x.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(x.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
  CHECK(x.transpose(0, 1).to_vector<double>() == std::vector<double>{1, 4, 2, 5, 3, 6});
  CHECK(x.size(0) == 2);
  CHECK(x.size(-1) == 3);
  CHECK_THROWS_AS(x.size(2), IndexError);
}

TEST_CASE("views keep storage alive") {
  Tensor v;
  {
    Tensor x = iota_f32({4, 4});
    v = x.transpose(0, 1).narrow(0, 1, 2);
  }
  CHECK(v.storage().use_count() == 1);
  CHECK(v.to_vector<float>() == std::vector<float>{1, 5, 9, 13, 2, 6, 10, 14});
}

TEST_CASE("shares_storage") {
  Tensor a = Tensor::zeros({2, 2});
  Tensor b = Tensor::zeros({2, 2});
  CHECK(a.shares_storage(a.reshape({4})));
  CHECK(a.shares_storage(a.select(0, 1)));
  CHECK_FALSE(a.shares_storage(b));
  CHECK_FALSE(a.shares_storage(a.clone()));
}

TEST_CASE("shape: inline list of at most kMaxDims sizes, vector-like") {
  seqgrad::Shape s{2, 3};
  s.push_back(4);
  s.insert(s.begin() + 1, 7);
  CHECK(s == seqgrad::Shape{2, 7, 3, 4});
  s.erase(s.begin());
  CHECK(s == seqgrad::Shape{7, 3, 4});
  CHECK(std::vector<std::int64_t>(s) == std::vector<std::int64_t>{7, 3, 4});
  CHECK(seqgrad::Shape(std::vector<std::int64_t>{1, 2}) == seqgrad::Shape{1, 2});
  CHECK_FALSE(s == seqgrad::Shape{7, 3});
  CHECK_THROWS_WITH_AS(seqgrad::Shape(9, 1), doctest::Contains("at most 8"), seqgrad::ShapeError);
  CHECK_THROWS_AS(seqgrad::Tensor::zeros(seqgrad::Shape(8, 1)).unsqueeze(0), seqgrad::ShapeError);
}

TEST_CASE("storage cache: a released block of a size class is handed out again") {
  storage_cache_clear();
  const StorageCacheStats before = storage_cache_stats();
  void* first = nullptr;
  {
    Tensor t = Tensor::zeros({1000, 300});  // 1.2 MB
    first = t.raw_data();
  }
  Tensor again = Tensor::empty({1000, 301});  // the same size class (4 per power of two)
  const StorageCacheStats after = storage_cache_stats();
  if (storage_cache_enabled()) {
    CHECK(again.raw_data() == first);
    CHECK(after.hits == before.hits + 1);
    CHECK(after.cached_bytes == 0);
  } else {
    CHECK(after.hits == before.hits);
  }
  // Small blocks bypass the cache.
  { Tensor small = Tensor::zeros({10}); }
  CHECK(storage_cache_stats().cached_bytes == 0);
  storage_cache_clear();
  CHECK(storage_cache_stats().cached_bytes == 0);
}

TEST_CASE("storage cache: blocks in use plus cached stay within 1.25x the peak in use") {
  if (!storage_cache_enabled()) return;
  storage_cache_clear();
  constexpr std::int64_t kMiB = 1 << 20;
  // Phase one sets a new peak with 1 MiB blocks and releases them all to the cache.
  const std::size_t blocks = storage_cache_stats().peak_in_use / kMiB + 16;
  {
    std::vector<Tensor> phase_one;
    for (std::size_t i = 0; i < blocks; ++i) phase_one.push_back(Tensor::empty({kMiB / 4}));
  }
  const StorageCacheStats held = storage_cache_stats();
  CHECK(held.cached_bytes >= blocks * kMiB);
  // Phase two uses another size class: without a bound its blocks would come on top of all the
  // cached ones (1.5x the peak here).
  std::vector<Tensor> phase_two;
  for (std::size_t i = 0; i < blocks / 2; ++i) phase_two.push_back(Tensor::empty({kMiB * 3 / 8}));
  const StorageCacheStats now = storage_cache_stats();
  CHECK(now.cached_bytes < held.cached_bytes);
  CHECK(now.in_use + now.cached_bytes <= now.peak_in_use + now.peak_in_use / 4);
  storage_cache_clear();
}
