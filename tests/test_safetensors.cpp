// Safetensors files: round trips of every dtype and awkward layouts, metadata, refusal of corrupt
// files (each written byte by byte here), atomic saves, and interop with NumPy through
// tests/python/safetensors_numpy.py (run with /usr/bin/python3; the test fails if it is missing).
//
// To add a corrupt-file case: add a row to kCorrupt below (header JSON, data bytes, and a
// fragment the error message must contain); the test also checks the message names the file.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tensor/safetensors.h"

using namespace seqgrad;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir =
        fs::temp_directory_path() / fmt::format("seqgrad_safetensors_{}_{}", ::getpid(), counter++);
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  // A fresh file, not a truncated one: ext4 flushes files truncated and rewritten (auto_da_alloc),
  // which would make the loops below over every prefix and every byte take seconds.
  fs::remove(path);
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The message load_safetensors refuses `path` with; fails the test if it loads.
std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const RuntimeError& e) {
    return e.what();
  }
  FAIL("load_safetensors accepted ", path);
  return {};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Same dtype, shape and values, compared exactly (int64 as integers, so extremes survive).
void check_same(const Tensor& got, const Tensor& want) {
  REQUIRE(got.defined());
  CHECK(got.dtype() == want.dtype());
  CHECK(got.shape() == want.shape());
  CHECK(got.is_contiguous());
  if (want.dtype() == DType::i64) {
    CHECK(got.to_vector<std::int64_t>() == want.to_vector<std::int64_t>());
  } else {
    CHECK(got.to_vector<double>() == want.to_vector<double>());
  }
}

// Compares tensors with the JSON description safetensors_numpy.py prints.
void check_matches_json(const Tensor& t, const nlohmann::json& j) {
  CHECK(dtype_name(t.dtype()) == j["dtype"].get<std::string>());
  CHECK(t.shape() == Shape(j["shape"].get<std::vector<std::int64_t>>()));
  const auto& values = j["values"];
  REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel());
  if (t.dtype() == DType::i64) {
    CHECK(t.to_vector<std::int64_t>() == values.get<std::vector<std::int64_t>>());
  } else if (t.dtype() == DType::boolean) {
    std::vector<double> want;
    for (const auto& v : values) want.push_back(v.get<bool>() ? 1.0 : 0.0);
    CHECK(t.to_vector<double>() == want);
  } else {
    CHECK(t.to_vector<double>() == values.get<std::vector<double>>());
  }
}

std::string script() {
  return std::string(SEQGRAD_SOURCE_DIR) + "/tests/python/safetensors_numpy.py";
}

// Runs the NumPy script; fails (never skips) when the interpreter or NumPy is missing, since CI
// installs both. Returns the JSON it printed.
nlohmann::json run_numpy(const TempDir& tmp, const std::string& mode, const std::string& file) {
  REQUIRE_MESSAGE(
      fs::exists("/usr/bin/python3"),
      "/usr/bin/python3 is missing: install python3-numpy (apt-get install python3-numpy)");
  REQUIRE_MESSAGE(std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0,
                  "NumPy is missing for /usr/bin/python3: apt-get install python3-numpy");
  const std::string out = tmp.path("numpy.json"), err = tmp.path("numpy.err");
  const int rc = std::system(
      fmt::format("/usr/bin/python3 '{}' {} '{}' > '{}' 2> '{}'", script(), mode, file, out, err)
          .c_str());
  REQUIRE_MESSAGE((WIFEXITED(rc) && WEXITSTATUS(rc) == 0), "safetensors_numpy.py ", mode,
                  " failed: ", read_bytes(err));
  return nlohmann::json::parse(read_bytes(out));
}

Tensor iota(const Shape& shape, DType dtype = DType::f32) {
  return Tensor::arange(shape_numel(shape), DType::i64).astype(dtype).reshape(shape);
}

// One of every dtype plus the awkward layouts: 0-d, empty, transposed, offset and expanded views.
std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
  const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
  return {
      {"f32", Tensor::from_list({-1.5, 0.25, 3e38, 1e-30, -0.0, 7}, {2, 3}, DType::f32)},
      {"f64.scalar", Tensor::scalar(3.141592653589793, DType::f64)},
      {"i64", Tensor::from_vector<std::int64_t>({lo, -1, 0, hi}, {4})},
      {"mask", Tensor::from_list({1, 0, 1}, {3}, DType::boolean)},
      {"empty", Tensor::zeros({0, 3}, DType::f32)},
      {"empty.too", Tensor::zeros({2, 0}, DType::i64)},  // same offset as "empty"
      {"transposed", iota({2, 3}, DType::f64).transpose(0, 1)},
      {"narrowed", iota({4, 3}, DType::i64).narrow(0, 1, 2)},
      {"expanded", iota({1, 3}).expand({2, 3})},
  };
}

}  // namespace

TEST_CASE("safetensors: every dtype and layout round trips in order") {
  TempDir tmp;
  const auto tensors = sample_tensors();
  CHECK_FALSE(tensors[6].second.is_contiguous());  // the transposed view really is strided
  const std::string path = tmp.path("all.safetensors");
  save_safetensors(path, tensors);
  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.tensors.size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    CAPTURE(tensors[i].first);
    CHECK(file.tensors[i].first == tensors[i].first);
    check_same(file.tensors[i].second, tensors[i].second);
  }
  CHECK(file.metadata.empty());
  CHECK(file.at("f64.scalar").item() == 3.141592653589793);
  CHECK(file.find("nope") == nullptr);
  CHECK_THROWS_AS(file.at("nope"), ValueError);

  // The header is padded with spaces so the data starts 8-byte aligned.
  const std::string bytes = read_bytes(path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  CHECK((8 + n) % 8 == 0);
  CHECK(bytes[8] == '{');
}

TEST_CASE("safetensors: metadata round trips, a file may hold no tensors") {
  TempDir tmp;
  const std::map<std::string, std::string> meta = {{"framework", "seqgrad"},
                                                   {"step", "1200"},
                                                   {"note", "h\xc3\xa9llo \"quoted\"\n"},
                                                   {"empty", ""}};
  const std::string path = tmp.path("meta.safetensors");
  save_safetensors(path, {{"w", Tensor::ones({2})}}, meta);
  const SafetensorsFile file = load_safetensors(path);
  CHECK(file.metadata == meta);
  check_same(file.at("w"), Tensor::ones({2}));

  save_safetensors(path, {}, meta);
  const SafetensorsFile bare = load_safetensors(path);
  CHECK(bare.tensors.empty());
  CHECK(bare.metadata == meta);
}

TEST_CASE("safetensors: bad arguments to save are ValueErrors and touch no file") {
  TempDir tmp;
  const std::string path = tmp.path("x.safetensors");
  const Tensor t = Tensor::ones({2});
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"a", t}, {"b", t}, {"a", t}}),
                       doctest::Contains("'a' is given twice"), ValueError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"__metadata__", t}}), doctest::Contains("reserved"),
                       ValueError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"u", Tensor()}}), doctest::Contains("undefined"),
                       ValueError);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"bad\xff", t}}), doctest::Contains("UTF-8"),
                       ValueError);
  CHECK(tmp.listing().empty());
}

// Header and data of a file that loads; each row of kCorrupt changes one thing about it.
constexpr const char* kGoodHeader = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

struct Corrupt {
  std::string header;
  std::string data;
  const char* expect;
};

const std::vector<Corrupt> kCorrupt = {
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", std::string(8, 0),
     "not valid JSON"},
    {"{\"\xff\":1}", std::string(8, 0), "not valid JSON"},
    {"[1,2]", "", "header is a JSON array, not an object"},
    {R"({"a":3})", "", "tensor 'a': entry is a JSON number, not an object"},
    {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0), "no \"dtype\""},
    {R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, 0), "no \"shape\""},
    {R"({"a":{"dtype":"F32","shape":[2]}})", std::string(8, 0), "no \"data_offsets\""},
    {R"({"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0),
     "\"dtype\" is a JSON number"},
    {R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", std::string(8, 0),
     "unsupported dtype 'F16'"},
    {R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", std::string(8, 0),
     "\"shape\" is a JSON number"},
    {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 0),
     "negative dimension -2"},
    {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", std::string(8, 0),
     "holds 2.0, not an integer"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, 0),
     "not two non-negative integers"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", std::string(8, 0),
     "not two non-negative integers"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", std::string(8, 0),
     "not two non-negative integers"},
    {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, 0),
     "run past the 8 data bytes"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, 0),
     "end before they begin"},
    {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 0),
     "F32 [3] needs 12 bytes"},
    {R"({"a":{"dtype":"I64","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
     std::string(8, 0), "too large"},
    {R"({"a":{"dtype":"F64","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", "",
     "too large"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
     std::string(12, 0), "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a'"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
     std::string(20, 0), "4 unused data bytes before tensor 'b'"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, 0),
     "4 unused data bytes"},
    {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
     std::string(8, 0), "tensor name 'a' appears twice"},
    {R"({"a":{"dtype":"F32","dtype":"I64","shape":[1],"data_offsets":[0,8]}})", std::string(8, 0),
     "'dtype' appears twice"},
    {R"({"__metadata__":"x","a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
     std::string(8, 0), "\"__metadata__\" is a JSON string"},
    {R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
     std::string(8, 0), "metadata 'k' is a JSON number"},
    {kGoodHeader, std::string(12, 0), "4 trailing bytes after the last tensor"},
    {R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2),
     "BOOL element 1 is byte 2"},
    {R"({"a":{"x":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}})", "", "nests deeper than"},
};

TEST_CASE("safetensors: hand-written files load, and corrupt headers are refused") {
  TempDir tmp;
  const std::string path = tmp.path("hand.safetensors");
  // Unpadded and space-padded headers both load; the data is little-endian float32 {1, 2}.
  const std::string data("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  for (const std::string& header : {std::string(kGoodHeader), std::string(kGoodHeader) + "     "}) {
    write_bytes(path, le64(header.size()) + header + data);
    check_same(load_safetensors(path).at("a"), Tensor::from_list({1, 2}, {2}));
  }
  for (const Corrupt& c : kCorrupt) {
    CAPTURE(c.header);
    write_bytes(path, le64(c.header.size()) + c.header + c.data);
    const std::string msg = load_error(path);
    CHECK_MESSAGE(contains(msg, "load_safetensors: " + path + ": "), msg);
    CHECK_MESSAGE(contains(msg, c.expect), msg);
  }
}

TEST_CASE("safetensors: unreadable files and bad header lengths are refused") {
  TempDir tmp;
  const std::string path = tmp.path("bad.safetensors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "file is 0 bytes, too short"},
      {std::string("\x10\x00\x00", 3), "file is 3 bytes, too short"},
      {le64(1000) + "{}", "header length 1000 runs past the end of the 10-byte file"},
      {le64(std::uint64_t{1} << 40) + "{}", "header length 1099511627776 is over the"},
      {le64(std::numeric_limits<std::uint64_t>::max()) + "{}", "is over the 104857600-byte limit"},
      {le64(0), "not valid JSON"},
  };
  for (const auto& [bytes, expect] : cases) {
    CAPTURE(expect);
    write_bytes(path, bytes);
    const std::string msg = load_error(path);
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, expect), msg);
  }
  const std::string missing = tmp.path("missing.safetensors");
  CHECK(contains(load_error(missing), missing + ": cannot open: No such file or directory"));
  CHECK(contains(load_error(tmp.dir.string()), tmp.dir.string() + ": not a regular file"));
}

TEST_CASE("safetensors: every truncated prefix of a valid file is refused") {
  TempDir tmp;
  const std::string good = tmp.path("good.safetensors"), cut = tmp.path("cut.safetensors");
  save_safetensors(good, sample_tensors(), {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    write_bytes(cut, bytes.substr(0, n));
    CHECK(contains(load_error(cut), cut));
  }
}

// Under SEQGRAD_SANITIZE this doubles as a small fuzz test for out-of-bounds reads.
TEST_CASE("safetensors: a file with any one byte flipped loads or is refused cleanly") {
  TempDir tmp;
  const std::string good = tmp.path("good.safetensors"), bad = tmp.path("flipped.safetensors");
  save_safetensors(good, sample_tensors(), {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  int refused = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (const unsigned char mask : {0x01, 0x80}) {
      std::string flipped = bytes;
      flipped[i] = static_cast<char>(flipped[i] ^ mask);
      write_bytes(bad, flipped);
      try {
        load_safetensors(bad);
      } catch (const RuntimeError& e) {
        ++refused;
        CHECK(contains(e.what(), bad));
      }
    }
  }
  CHECK(refused > 0);
}

TEST_CASE("safetensors: saving over a file replaces it and leaves no temporary behind") {
  TempDir tmp;
  const std::string path = tmp.path("model.safetensors");
  save_safetensors(path, {{"w", Tensor::ones({3})}});
  save_safetensors(path, {{"w", Tensor::full({2}, 5.0)}, {"b", Tensor::zeros({1})}});
  CHECK(tmp.listing() == std::vector<std::string>{"model.safetensors"});
  const SafetensorsFile file = load_safetensors(path);
  check_same(file.at("w"), Tensor::full({2}, 5.0));
  check_same(file.at("b"), Tensor::zeros({1}));
}

TEST_CASE("safetensors: a failed save leaves the old file and no temporary") {
  TempDir tmp;
  const std::string good = tmp.path("good.safetensors");
  save_safetensors(good, {{"w", Tensor::ones({3})}});
  const std::string before = read_bytes(good);

  SUBCASE("the target is a directory") {
    const std::string dir = tmp.path("dir.safetensors");
    fs::create_directory(dir);
    write_bytes(dir + "/inside", "keep");
    CHECK_THROWS_WITH_AS(save_safetensors(dir, {{"w", Tensor::ones({3})}}),
                         doctest::Contains((dir + ": cannot rename").c_str()), RuntimeError);
    CHECK(read_bytes(dir + "/inside") == "keep");
    CHECK(tmp.listing() == std::vector<std::string>{"dir.safetensors", "good.safetensors"});
  }
  SUBCASE("the directory does not exist") {
    const std::string path = tmp.path("no/such/dir.safetensors");
    CHECK_THROWS_WITH_AS(save_safetensors(path, {{"w", Tensor::ones({3})}}),
                         doctest::Contains((path + ": cannot create").c_str()), RuntimeError);
    CHECK(tmp.listing() == std::vector<std::string>{"good.safetensors"});
  }
  SUBCASE("the disk fills up mid-write") {
    // RLIMIT_FSIZE makes write() fail with EFBIG part way through the data, even as root.
    struct rlimit old_limit {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_limit;
    small.rlim_cur = 64 * 1024;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool threw = false;
    std::string msg;
    try {
      save_safetensors(good, {{"big", Tensor::zeros({1 << 18}, DType::f64)}});  // 2 MiB
    } catch (const RuntimeError& e) {
      threw = true;
      msg = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    std::signal(SIGXFSZ, old_handler);
    CHECK(threw);
    CHECK_MESSAGE(contains(msg, good + ": cannot write " + good + ".tmp."), msg);
    CHECK_MESSAGE(contains(msg, "File too large"), msg);
    CHECK(tmp.listing() == std::vector<std::string>{"good.safetensors"});
  }
  CHECK(read_bytes(good) == before);
  check_same(load_safetensors(good).at("w"), Tensor::ones({3}));
}

TEST_CASE("safetensors: NumPy reads what seqgrad writes") {
  TempDir tmp;
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> meta = {{"framework", "seqgrad"}, {"step", "7"}};
  const std::string path = tmp.path("from_seqgrad.safetensors");
  save_safetensors(path, tensors, meta);
  const nlohmann::json got = run_numpy(tmp, "check", path);
  CHECK(got["metadata"].get<std::map<std::string, std::string>>() == meta);
  REQUIRE(got["tensors"].size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    CAPTURE(tensors[i].first);
    CHECK(got["tensors"][i]["name"].get<std::string>() == tensors[i].first);  // data order
    check_matches_json(tensors[i].second, got["tensors"][i]);
  }
}

TEST_CASE("safetensors: seqgrad reads what NumPy writes") {
  TempDir tmp;
  const std::string path = tmp.path("from_numpy.safetensors");
  const nlohmann::json wrote = run_numpy(tmp, "write", path);
  const SafetensorsFile file = load_safetensors(path);
  CHECK(file.metadata == wrote["metadata"].get<std::map<std::string, std::string>>());
  REQUIRE(file.tensors.size() == wrote["tensors"].size());
  for (const auto& j : wrote["tensors"]) {
    CAPTURE(j["name"].get<std::string>());
    check_matches_json(file.at(j["name"].get<std::string>()), j);
  }
  // A few values by hand, so a bug shared by the script's writer and its description shows.
  CHECK(file.at("weight").shape() == Shape{4, 3});
  CHECK(file.at("weight").at({0, 1}) == 1.0);  // the transpose of arange(12)/4 as [3,4]
  CHECK(file.at("ids").to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(),
                                  std::numeric_limits<std::int64_t>::max(), 0, 7});
  CHECK(file.at("mask").dtype() == DType::boolean);
  CHECK(file.at("scale").dim() == 0);
  CHECK(file.at("scale").item() == 0.1);
  CHECK(file.at("empty").shape() == Shape{2, 0});
}

// parse_safetensors is the loader the fuzz harness (tests/fuzz/fuzz_safetensors.cpp) drives; it
// must agree with load_safetensors byte for byte, and refuse each truncation as cleanly.
TEST_CASE("safetensors: parse_safetensors on bytes in memory matches load_safetensors") {
  TempDir tmp;
  const std::string good = tmp.path("good.safetensors");
  save_safetensors(good, sample_tensors(), {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  const SafetensorsFile from_file = load_safetensors(good);
  const SafetensorsFile from_memory = parse_safetensors(bytes, "in-memory");
  CHECK(from_memory.metadata == from_file.metadata);
  REQUIRE(from_memory.tensors.size() == from_file.tensors.size());
  for (std::size_t i = 0; i < from_file.tensors.size(); ++i) {
    CAPTURE(from_file.tensors[i].first);
    CHECK(from_memory.tensors[i].first == from_file.tensors[i].first);
    check_same(from_memory.tensors[i].second, from_file.tensors[i].second);
  }
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    try {
      parse_safetensors(std::string_view(bytes).substr(0, n), "in-memory");
      FAIL("parse_safetensors accepted a truncated file");
    } catch (const RuntimeError& e) {
      CHECK(contains(e.what(), "parse_safetensors: in-memory: "));
    }
  }
}
