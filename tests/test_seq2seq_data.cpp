// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// The data side of seq2seq: tokenizers and Vocab, the TSV reader (with its error messages), the
// generated tasks and their splits, the CMUdict reader and its hash split, the metrics, and
// batching. Everything here is fast (well under a second); the check of the real CMUdict runs
// only when scripts/fetch-cmudict has put it in data/, the inline dictionary test always runs.
//
// To add a case: put a TEST_CASE under the section for its file (vocab, data, tasks, g2p,
// metrics, batch); write files through TempDir so nothing is left behind.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "seq2seq/batch.h"
#include "seq2seq/data.h"
#include "seq2seq/g2p.h"
#include "seq2seq/metrics.h"
#include "seq2seq/sampling.h"
#include "seq2seq/tasks.h"
#include "seq2seq/vocab.h"

using namespace seqgrad;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / fmt::format("seqgrad_s2s_{}_{}", ::getpid(), counter++);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` byte for byte to `name` in the directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = (path_ / name).string();
    std::ofstream out(p, std::ios::binary);
    out << text;
    return p;
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// The message of the exception `f` throws as E; fails the test if it throws nothing.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> toks(std::initializer_list<const char*> list) {
  return {list.begin(), list.end()};
}

std::vector<std::int64_t> row(const Tensor& t, std::int64_t r) {
  return t.select(0, r).to_vector<std::int64_t>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// vocab: tokenizers and Vocab

TEST_CASE("tokenize chars: one token per UTF-8 code point") {
  CHECK(tokenize("abc", Tokenization::chars) == toks({"a", "b", "c"}));
  CHECK(tokenize("h\xC3\xA9llo", Tokenization::chars) == toks({"h", "\xC3\xA9", "l", "l", "o"}));
  // 3-byte (CJK) and 4-byte (emoji) sequences, and a space, are single tokens.
  CHECK(tokenize("\xE6\x97\xA5 \xF0\x9F\x98\x80!", Tokenization::chars) ==
        toks({"\xE6\x97\xA5", " ", "\xF0\x9F\x98\x80", "!"}));
  CHECK(tokenize("", Tokenization::chars).empty());
  const std::string text =
      "na\xC3\xAFve caf\xC3\xA9 \xE2\x82\xAC"
      "5";
  CHECK(detokenize(tokenize(text, Tokenization::chars), Tokenization::chars) == text);

  // Invalid sequences: stray continuation, overlong '/', surrogate, past U+10FFFF, truncated.
  CHECK(find_invalid_utf8("ok\xC3\xA9") == std::string_view::npos);
  CHECK(find_invalid_utf8("ab\x80") == 2);
  CHECK(find_invalid_utf8("\xC0\xAF") == 0);
  CHECK(find_invalid_utf8("x\xED\xA0\x80") == 1);
  CHECK(find_invalid_utf8("\xF4\x90\x80\x80") == 0);
  CHECK(find_invalid_utf8("abc\xE6\x97") == 3);
  CHECK(utf8_sequence_length("\xF0\x9F\x98\x80", 0) == 4);
  const std::string msg = error_of<ValueError>([] { tokenize("ab\xFFz", Tokenization::chars); });
  CHECK(contains(msg, "invalid UTF-8 at byte offset 2"));
}

TEST_CASE("tokenize words: split on whitespace runs, join with single spaces") {
  CHECK(tokenize("HH  AH0\tL OW1\n", Tokenization::words) == toks({"HH", "AH0", "L", "OW1"}));
  CHECK(tokenize("   ", Tokenization::words).empty());
  CHECK(detokenize(toks({"the", "cat"}), Tokenization::words) == "the cat");
  CHECK(detokenize(toks({"a", "b"}), Tokenization::chars) == "ab");
  CHECK(parse_tokenization("words") == Tokenization::words);
  CHECK(tokenization_name(Tokenization::chars) == "chars");
  CHECK(contains(error_of<ValueError>([] { parse_tokenization("bytes"); }), "chars, words"));
}

TEST_CASE("Vocab: specials, deterministic order, min_count and max_size") {
  const Vocab empty;
  CHECK(empty.size() == 4);
  CHECK(empty.token(Vocab::kPad) == "<pad>");
  CHECK(empty.token(Vocab::kBos) == "<s>");
  CHECK(empty.token(Vocab::kEos) == "</s>");
  CHECK(empty.token(Vocab::kUnk) == "<unk>");

  // Counts: b 3, a 3, c 2, d 1, and a literal "<unk>" that must not get a second id.
  const std::vector<std::vector<std::string>> seqs = {toks({"b", "a", "c"}), toks({"a", "b", "d"}),
                                                      toks({"c", "a", "b", "<unk>"})};
  const Vocab v = Vocab::build(seqs);
  CHECK(v.tokens() == toks({"<pad>", "<s>", "</s>", "<unk>", "a", "b", "c", "d"}));
  CHECK(v.id("a") == 4);
  CHECK(v.id("d") == 7);
  CHECK(v.id("zzz") == Vocab::kUnk);
  CHECK(v.id("<unk>") == Vocab::kUnk);
  CHECK(v.contains("c"));
  CHECK_FALSE(v.contains("zzz"));
  CHECK_THROWS_AS(v.token(8), IndexError);
  CHECK_THROWS_AS(v.token(-1), IndexError);

  // The order does not depend on the order of the input.
  std::vector<std::vector<std::string>> reversed(seqs.rbegin(), seqs.rend());
  for (auto& s : reversed) std::reverse(s.begin(), s.end());
  CHECK(Vocab::build(reversed) == v);

  CHECK(Vocab::build(seqs, 2).tokens() == toks({"<pad>", "<s>", "</s>", "<unk>", "a", "b", "c"}));
  CHECK(Vocab::build(seqs, 1, 5).tokens() == toks({"<pad>", "<s>", "</s>", "<unk>", "a"}));
  CHECK_THROWS_AS(Vocab::build(seqs, 1, 3), ValueError);

  CHECK(contains(error_of<ValueError>([] {
                   Vocab::from_tokens(toks({"<s>", "<pad>"}));
                 }),
                 "<pad> <s> </s> <unk>"));
  CHECK(contains(error_of<ValueError>([] {
                   Vocab::from_tokens(toks({"<pad>", "<s>", "</s>", "<unk>", "x", "x"}));
                 }),
                 "'x' appears twice (ids 4 and 5)"));
}

TEST_CASE("Vocab: encode maps unknowns to <unk>, decode stops at </s> and skips <pad>, <s>") {
  const Vocab v = Vocab::build({toks({"x", "y", "y"})});  // y=4, x=5
  CHECK(v.encode(toks({"y", "x", "q"})) == std::vector<std::int64_t>{4, 5, Vocab::kUnk});
  CHECK(v.decode({Vocab::kBos, 5, Vocab::kPad, 4, Vocab::kUnk, Vocab::kEos, 5, 4}) ==
        toks({"x", "y", "<unk>"}));
  CHECK(v.decode({}).empty());
  CHECK_THROWS_AS(v.decode({99}), IndexError);
}

TEST_CASE("Vocab: save and load as text and JSON") {
  TempDir dir;
  // A space and non-ASCII characters are ordinary tokens, as chars tokenization makes them.
  const Vocab v = Vocab::build({tokenize("caf\xC3\xA9 au lait", Tokenization::chars)});
  for (const char* name : {"v.txt", "v.json"}) {
    CAPTURE(name);
    v.save(dir.file(name));
    CHECK(Vocab::load(dir.file(name)) == v);
  }
  // One token a line, in id order.
  std::ifstream in(dir.file("v.txt"));
  std::string first;
  std::getline(in, first);
  CHECK(first == "<pad>");
  const auto j = nlohmann::json::parse(std::ifstream(dir.file("v.json")));
  CHECK(j["format"] == "seqgrad.vocab");
  CHECK(j["tokens"].size() == static_cast<std::size_t>(v.size()));

  const Vocab with_newline = Vocab::from_tokens(toks({"<pad>", "<s>", "</s>", "<unk>", "\n"}));
  CHECK(contains(error_of<ValueError>([&] { with_newline.save(dir.file("n.txt")); }), ".json"));
  with_newline.save(dir.file("n.json"));
  CHECK(Vocab::load(dir.file("n.json")) == with_newline);

  CHECK(contains(error_of<RuntimeError>([&] { Vocab::load(dir.file("missing.txt")); }),
                 "missing.txt"));
  const std::string dup = dir.write("dup.txt", "<pad>\n<s>\n</s>\n<unk>\na\nb\na\n");
  CHECK(contains(error_of<RuntimeError>([&] { Vocab::load(dup); }),
                 "dup.txt:7: token 'a' already on line 5"));
  const std::string blank = dir.write("blank.txt", "<pad>\n<s>\n\n");
  CHECK(contains(error_of<RuntimeError>([&] { Vocab::load(blank); }), "blank.txt:3: empty line"));
  const std::string bad_json = dir.write("bad.json", "{\"tokens\": [1, 2]}");
  CHECK(contains(error_of<RuntimeError>([&] { Vocab::load(bad_json); }), "bad.json"));
}

// ---------------------------------------------------------------------------------------------
// data: Example and the TSV reader

TEST_CASE("read_tsv: merges targets of a repeated source in first-seen order") {
  TempDir dir;
  const std::string path = dir.write("g2p.tsv",
                                     "\xEF\xBB\xBF"  // a byte order mark
                                     "read\tR IY D\r\n"
                                     "\n"
                                     "caf\xC3\xA9\tK AE F EY\n"
                                     "   \n"
                                     "read\tR EH D\n"
                                     "read\tR IY D\n"  // an exact repeat is dropped
                                     "a b\t x y \n");  // fields are not trimmed
  const std::vector<Example> ex = read_tsv(path);
  REQUIRE(ex.size() == 3);
  CHECK(ex[0] == Example{"read", {"R IY D", "R EH D"}});
  CHECK(ex[1] == Example{"caf\xC3\xA9", {"K AE F EY"}});
  CHECK(ex[2] == Example{"a b", {" x y "}});
  CHECK(read_tsv(dir.write("empty.tsv", "")).empty());

  // write_tsv writes one line per target; reading it back gives the same Examples.
  write_tsv(dir.file("out.tsv"), ex);
  CHECK(read_tsv(dir.file("out.tsv")) == ex);
  CHECK_THROWS_AS(write_tsv(dir.file("bad.tsv"), {Example{"a\tb", {"c"}}}), DataError);
}

TEST_CASE("one_per_target: a training pair for every reference, in order") {
  const std::vector<Example> ex{
      {"read", {"R IY D", "R EH D"}}, {"cat", {"K AE T"}}, {"a", {"AH", "EY"}}};
  const std::vector<Example> want{{"read", {"R IY D"}},
                                  {"read", {"R EH D"}},
                                  {"cat", {"K AE T"}},
                                  {"a", {"AH"}},
                                  {"a", {"EY"}}};
  CHECK(one_per_target(ex) == want);
  CHECK(one_per_target({}).empty());
}

TEST_CASE("read_tsv: a malformed line is reported with file and line number") {
  TempDir dir;
  struct Case {
    const char* text;
    const char* expected;  // after "read_tsv: <path>:"
  };
  const Case cases[] = {
      {"ab\tAB\n\nno tab here\n", "3: no tab"},
      {"ab\tAB\ta\tb\n", "1: more than one tab"},
      {"ok\tOK\n\tX\n", "2: empty source"},
      {"ok\tOK\nx\t\r\n", "2: empty target"},
      {"ok\tOK\nok\tOK\nbad\xC3(\tX\n", "3: invalid UTF-8 at byte 4"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const std::string path = dir.write("bad.tsv", c.text);
    const std::string msg = error_of<DataError>([&] { read_tsv(path); });
    CHECK(contains(msg, fmt::format("read_tsv: {}:{}", path, c.expected)));
  }
  // DataError is a RuntimeError, so callers can catch either.
  CHECK_THROWS_AS(read_tsv(dir.write("bad.tsv", "x\n")), RuntimeError);
  const std::string missing = dir.file("nope.tsv");
  CHECK(error_of<DataError>([&] { read_tsv(missing); }) ==
        fmt::format("read_tsv: {}: no such file", missing));
  CHECK(contains(error_of<DataError>([&] { parse_tsv("a\tb\nc", "inline"); }),
                 "read_tsv: inline:2: no tab"));
}

// ---------------------------------------------------------------------------------------------
// tasks: generated data

TEST_CASE("sampling: unbiased integers and a portable shuffle") {
  Generator gen(5);
  std::vector<int> seen(6, 0);
  for (int i = 0; i < 6000; ++i) ++seen[static_cast<std::size_t>(uniform_int(gen, 0, 5))];
  for (int n : seen) CHECK((n > 850 && n < 1150));
  CHECK_THROWS_AS(uniform_int(gen, 3, 2), ValueError);
  std::vector<int> a = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<int> b = a;
  Generator g1(11), g2(11);
  shuffle(a, g1);
  shuffle(b, g2);
  CHECK(a == b);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(derive_seed(1, 0) != derive_seed(1, 1));
  CHECK(derive_seed(1, 0) != derive_seed(2, 0));
}

TEST_CASE("tasks: copy, reverse and sort are right and fixed by the seed") {
  for (const char* name : {"copy", "reverse", "sort"}) {
    CAPTURE(name);
    const auto ex = make_task(name, 300, 42, 2, 6);
    REQUIRE(ex.size() == 300);
    CHECK(ex == make_task(name, 300, 42, 2, 6));
    CHECK(ex != make_task(name, 300, 43, 2, 6));
    std::set<std::size_t> lengths;
    for (const auto& e : ex) {
      REQUIRE(e.targets.size() == 1);
      std::string expected = e.source;
      if (std::string(name) == "reverse") std::reverse(expected.begin(), expected.end());
      if (std::string(name) == "sort") std::sort(expected.begin(), expected.end());
      CHECK(e.targets[0] == expected);
      CHECK(e.source.find_first_not_of(kLowercase) == std::string::npos);
      lengths.insert(e.source.size());
    }
    CHECK(lengths == std::set<std::size_t>{2, 3, 4, 5, 6});
  }
  // Regression anchors: Generator is reproducible across machines, so these never change
  // (checked against an independent Python xoshiro256** + rejection sampling).
  const auto anchor = make_task("copy", 3, 42, 3, 10);
  CHECK(anchor[0].source == "grncgenkl");
  CHECK(anchor[1].source == "zmen");
  CHECK(anchor[2].source == "pmnkv");

  // Digits, and sorting by alphabet position for a non-ASCII alphabet ("c" < "b" < "a" here).
  for (const auto& e : make_task("copy", 50, 1, 1, 4, kDigits)) {
    CHECK(e.source.find_first_not_of(kDigits) == std::string::npos);
  }
  const std::string greek = "\xCE\xB1\xCE\xB2\xCE\xB3";  // alpha beta gamma
  for (const auto& e : make_task("sort", 50, 1, 1, 4, greek)) {
    std::vector<std::string> t = tokenize(e.targets[0], Tokenization::chars);
    CHECK(std::is_sorted(t.begin(), t.end()));  // UTF-8 byte order matches Greek order here
    CHECK(tokenize(e.source, Tokenization::chars).size() == t.size());
  }
  const auto rev = make_task("sort", 30, 3, 1, 5, "cba");
  for (const auto& e : rev) {
    std::string expected = e.source;
    std::sort(expected.begin(), expected.end(), std::greater<>());
    CHECK(e.targets[0] == expected);
  }
}

TEST_CASE("tasks: argument errors") {
  const std::string msg = error_of<ValueError>([] { make_task("copyy", 1, 0); });
  CHECK(contains(msg, "unknown task 'copyy'"));
  CHECK(contains(msg, "copy, reverse, sort, dates"));
  CHECK(contains(error_of<ValueError>([] { make_task("copy", 1, 0, 5, 4); }),
                 "bad length range [5, 4]"));
  CHECK_THROWS_AS(make_task("copy", 1, 0, 0, 4), ValueError);
  CHECK(contains(error_of<ValueError>([] { make_task("copy", 1, 0, 1, 4, "aba"); }), "twice"));
  CHECK_THROWS_AS(make_task("copy", 1, 0, 1, 4, ""), ValueError);
  CHECK(task_names() == toks({"copy", "reverse", "sort", "dates"}));
}

TEST_CASE("tasks: dates carry the right weekday and map to ISO") {
  CHECK(weekday_of(1998, 3, 3) == 2);    // a Tuesday
  CHECK(weekday_of(2000, 2, 29) == 2);   // a Tuesday, in a leap year divisible by 400
  CHECK(weekday_of(1969, 7, 20) == 0);   // the Moon landing, a Sunday
  CHECK(weekday_of(1950, 1, 1) == 0);    // first day of the range, a Sunday
  CHECK(weekday_of(2049, 12, 31) == 5);  // last day of the range, a Friday
  CHECK_THROWS_AS(weekday_of(1999, 2, 29), ValueError);

  CHECK(format_date(1998, 3, 3, 0) == "tuesday, march 3 1998");
  CHECK(format_date(1998, 3, 3, 1) == "march 3, 1998");
  CHECK(format_date(1998, 3, 3, 2) == "3 mar 1998");
  CHECK(format_date(1998, 3, 3, 3) == "03/03/98");
  CHECK(format_date(1998, 3, 3, 4) == "tue, 03 mar 1998");
  CHECK(format_date(1998, 3, 3, 5) == "the 3rd of march 1998");
  CHECK(format_date(2011, 11, 11, 5) == "the 11th of november 2011");
  CHECK(format_date(2022, 12, 22, 5) == "the 22nd of december 2022");
  CHECK(format_date(2001, 1, 31, 5) == "the 31st of january 2001");
  CHECK(format_date(2005, 9, 5, 3) == "09/05/05");
  CHECK_THROWS_AS(format_date(1998, 3, 3, kDateFormatCount), ValueError);

  const auto ex = make_task("dates", 400, 9);
  CHECK(ex == make_task("dates", 400, 9));
  std::set<int> formats;
  for (const auto& e : ex) {
    REQUIRE(e.targets.size() == 1);
    const std::string& iso = e.targets[0];
    REQUIRE(iso.size() == 10);
    const int y = std::stoi(iso.substr(0, 4));
    const int m = std::stoi(iso.substr(5, 2));
    const int d = std::stoi(iso.substr(8, 2));
    CHECK((y >= 1950 && y <= 2049));
    CHECK(iso == fmt::format("{:04}-{:02}-{:02}", y, m, d));
    // The source is one of the formats of exactly this date (weekday included).
    int found = -1;
    for (int f = 0; f < kDateFormatCount; ++f) {
      if (format_date(y, m, d, f) == e.source) found = f;
    }
    CHECK(found >= 0);
    formats.insert(found);
  }
  CHECK(formats.size() == static_cast<std::size_t>(kDateFormatCount));
}

TEST_CASE("tasks: splits keep test sources out of train and valid") {
  const DataSplits s = make_task_splits("copy", {600, 40, 40}, 7, 1, 3, "abcde");  // 155 sources
  CHECK(s.train.size() == 600);
  CHECK(s.valid.size() == 40);
  CHECK(s.test.size() == 40);
  std::set<std::string> test_src, valid_src;
  for (const auto& e : s.test) test_src.insert(e.source);
  for (const auto& e : s.valid) valid_src.insert(e.source);
  CHECK(test_src.size() == 40);  // distinct within the split
  CHECK(valid_src.size() == 40);
  for (const auto& e : s.valid) CHECK_FALSE(test_src.contains(e.source));
  for (const auto& e : s.train) {
    CHECK_FALSE(test_src.contains(e.source));
    CHECK_FALSE(valid_src.contains(e.source));
  }
  // Same seed, same splits; the test split does not depend on the other sizes.
  CHECK(make_task_splits("copy", {600, 40, 40}, 7, 1, 3, "abcde").train == s.train);
  CHECK(make_task_splits("copy", {10, 5, 40}, 7, 1, 3, "abcde").test == s.test);
  CHECK(make_task_splits("copy", {10, 5, 40}, 8, 1, 3, "abcde").test != s.test);

  const DataSplits dates = make_task_splits("dates", {300, 50, 50}, 1);
  CHECK(dates.train.size() == 300);
  for (const auto& e : dates.train) {
    for (const auto& t : dates.test) CHECK(e.source != t.source);
  }
  // Too few distinct sources: 2 + 4 = 6 possible, 10 asked for.
  CHECK(contains(error_of<ValueError>([] {
                   make_task_splits("copy", {1, 1, 10}, 0, 1, 2, "ab");
                 }),
                 "fresh test sources"));
}

// ---------------------------------------------------------------------------------------------
// g2p: CMUdict

TEST_CASE("g2p: FNV-1a and the split are fixed functions of the word") {
  // Published FNV-1a 64 test vectors.
  CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
  // Computed once (by an independent Python implementation); must never change.
  CHECK(g2p_split("read") == Split::train);       // h % 100 = 1
  CHECK(g2p_split("hello") == Split::valid);      // 91
  CHECK(g2p_split("a") == Split::test);           // 96
  CHECK(g2p_split("zurich") == Split::test);      // 98
  CHECK(g2p_split("zebra") == Split::train);      // 87
  CHECK(g2p_split("xylophone") == Split::train);  // 9
  CHECK(split_name(Split::valid) == "valid");

  const std::vector<Example> words = {{"read", {"R IY D"}},
                                      {"a", {"AH"}},
                                      {"hello", {"HH AH L OW"}},
                                      {"zebra", {"Z IY B R AH"}},
                                      {"zurich", {"Z UH R IH K"}}};
  const DataSplits s = split_g2p(words);
  CHECK(s.train == std::vector<Example>{words[0], words[3]});
  CHECK(s.valid == std::vector<Example>{words[2]});
  CHECK(s.test == std::vector<Example>{words[1], words[4]});
}

TEST_CASE("g2p: an inline dictionary, with alternatives, comments and errors") {
  TempDir dir;
  const std::string path = dir.write("mini.dict",
                                     ";;; a comment line\n"
                                     "read R IY D\n"
                                     "\n"
                                     "# another comment\n"
                                     "a AH\n"
                                     "read(2) R EH D\n"
                                     "a(2)  EY\r\n"  // two spaces and CRLF are tolerated
                                     "#hash-mark HH AE SH # an inline comment\n"
                                     "read(3) R IY D\n");  // a repeat: dropped
  const std::vector<Example> ex = read_cmudict(path);
  REQUIRE(ex.size() == 3);
  CHECK(ex[0] == Example{"read", {"R IY D", "R EH D"}});
  CHECK(ex[1] == Example{"a", {"AH", "EY"}});
  CHECK(ex[2] == Example{"#hash-mark", {"HH AE SH"}});
  // Source by characters, target by phonemes.
  CHECK(tokenize(ex[0].source, Tokenization::chars).size() == 4);
  CHECK(tokenize(ex[0].targets[1], Tokenization::words) == toks({"R", "EH", "D"}));

  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"a AH\nlonely\n", "2: 'lonely' has no phonemes"},
      {"a AH\nb B\nc(x) K\n", "3: bad word 'c(x)'"},
      {"(2) K\n", "1: bad word '(2)'"},
      {"c(2 K\n", "1: bad word 'c(2'"},
      {"a AH\n\xC3\xA9\xE2 EY\n", "2: invalid UTF-8 at byte 3"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    const std::string bad = dir.write("bad.dict", c.text);
    CHECK(contains(error_of<DataError>([&] { read_cmudict(bad); }),
                   fmt::format("read_cmudict: {}:{}", bad, c.expected)));
  }
  CHECK(contains(error_of<DataError>([&] { read_cmudict(dir.file("none.dict")); }),
                 "none.dict: no such file"));
}

TEST_CASE("g2p: the real CMUdict, when scripts/fetch-cmudict has fetched it") {
  const std::string path = std::string(SEQGRAD_SOURCE_DIR) + "/" + std::string(kCmudictPath);
  if (!fs::exists(path)) {
    MESSAGE("skipped: " << path << " is absent (run scripts/fetch-cmudict)");
    return;
  }
  std::ifstream in(path);
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  CHECK(lines == 134723);

  const std::vector<Example> words = read_cmudict(path);
  CHECK(words.size() == 125945);
  std::size_t pronunciations = 0;
  std::set<std::string> phonemes;
  for (const auto& w : words) {
    pronunciations += w.targets.size();
    for (const auto& t : w.targets) {
      for (auto& p : tokenize(t, Tokenization::words)) phonemes.insert(std::move(p));
    }
  }
  CHECK(pronunciations == 134723);  // no line repeats another
  CHECK(phonemes.size() == 39);
  const DataSplits s = split_g2p(words);
  CHECK(s.train.size() == 113277);
  CHECK(s.valid.size() == 6286);
  CHECK(s.test.size() == 6382);
}

// ---------------------------------------------------------------------------------------------
// metrics

TEST_CASE("metrics: edit distance") {
  CHECK(edit_distance(tokenize("kitten", Tokenization::chars),
                      tokenize("sitting", Tokenization::chars)) == 3);
  CHECK(edit_distance(toks({}), toks({"a", "b"})) == 2);
  CHECK(edit_distance(toks({"a", "b"}), toks({})) == 2);
  CHECK(edit_distance(toks({"x", "y"}), toks({"x", "y"})) == 0);
  CHECK(edit_distance(toks({"a", "b", "c"}), toks({"c", "b", "a"})) == 2);
  CHECK(edit_distance(std::vector<std::int64_t>{1, 2, 3, 4},
                      std::vector<std::int64_t>{2, 3, 4, 5}) == 2);
}

TEST_CASE("metrics: exact match, WER, PER and token accuracy with several references") {
  const std::vector<TokenSeq> preds = {
      toks({"a", "b", "c"}),  // equals its only reference
      toks({"a", "x", "c"}),  // 2 edits to either reference: the first one counts (length 4)
      toks({"k"}),            // equals the second reference
      toks({}),               // nothing predicted
  };
  const std::vector<std::vector<TokenSeq>> refs = {
      {toks({"a", "b", "c"})},
      {toks({"a", "b", "c", "d"}), toks({"a", "x", "c", "d", "e"})},
      {toks({"p", "q"}), toks({"k"})},
      {toks({"m", "n"})},
  };
  const Scores s = score(preds, refs);
  CHECK(s.examples == 4);
  CHECK(s.exact == 2);
  CHECK(s.edits == 4);              // 0 + 2 + 0 + 2
  CHECK(s.reference_tokens == 10);  // 3 + 4 + 1 + 2
  CHECK(s.matched_tokens == 6);     // 3 + 2 + 1 + 0
  CHECK(s.exact_match == doctest::Approx(0.5));
  CHECK(s.wer == doctest::Approx(0.5));
  CHECK(s.per == doctest::Approx(0.4));
  CHECK(s.token_accuracy == doctest::Approx(0.6));

  const nlohmann::json j = s.to_json();
  for (const char* key : {"exact_match", "token_accuracy", "wer", "per"}) CHECK(j.contains(key));
  CHECK(j["per"].get<double>() == doctest::Approx(0.4));

  // The string form tokenizes predictions and Example targets.
  const std::vector<Example> ex = {{"read", {"R IY D", "R EH D"}}, {"cat", {"K AE T"}}};
  const Scores g = score(std::vector<std::string>{"R EH D", "K AH T"}, ex, Tokenization::words);
  CHECK(g.exact_match == doctest::Approx(0.5));
  CHECK(g.per == doctest::Approx(1.0 / 6.0));

  CHECK_THROWS_AS(score(preds, {refs[0]}), ValueError);
  CHECK_THROWS_AS(score(std::vector<TokenSeq>{}, {}), ValueError);
  CHECK(contains(error_of<ValueError>([] { score({toks({"a"})}, {{}}); }), "example 0"));
}

TEST_CASE("metrics: perplexity") {
  CHECK(perplexity(0.0) == doctest::Approx(1.0));
  CHECK(perplexity(std::log(40.0)) == doctest::Approx(40.0));
  CHECK(perplexity(3.0 * std::log(2.0), 3) == doctest::Approx(2.0));
  CHECK_THROWS_AS(perplexity(1.0, 0), ValueError);
}

// ---------------------------------------------------------------------------------------------
// batch

TEST_CASE("batch: shapes, padding, <s> / </s> and <unk>") {
  const std::vector<Example> train = {{"abc", {"x y"}}, {"a", {"y"}}, {"bb", {"x x z"}}};
  const Vocab src_vocab = build_source_vocab(train, Tokenization::chars);
  const Vocab tgt_vocab = build_target_vocab(train, Tokenization::words);
  CHECK(src_vocab.tokens() == toks({"<pad>", "<s>", "</s>", "<unk>", "b", "a", "c"}));
  CHECK(tgt_vocab.tokens() == toks({"<pad>", "<s>", "</s>", "<unk>", "x", "y", "z"}));

  // A second example with several references trains on the first; "q" and "w" are unknown.
  std::vector<Example> ex = train;
  ex.push_back({"aqc", {"y w", "z"}});
  BatcherOptions opt;
  opt.batch_size = 3;
  opt.target_tokenization = Tokenization::words;
  const Batcher batcher(ex, src_vocab, tgt_vocab, opt);
  const auto batches = batcher.eval_batches();
  REQUIRE(batches.size() == 2);
  const Batch& b = batches[0];
  CHECK(b.size() == 3);
  CHECK(b.example_index == std::vector<std::size_t>{0, 1, 2});
  CHECK(b.src.dtype() == DType::i64);
  CHECK(b.src.shape() == Shape{3, 3});
  CHECK(b.tgt_in.shape() == Shape{3, 4});  // longest target (3) + 1
  CHECK(b.tgt_out.shape() == Shape{3, 4});
  CHECK(b.src_lengths == std::vector<std::int64_t>{3, 1, 2});
  CHECK(row(b.src, 0) == std::vector<std::int64_t>{5, 4, 6});
  CHECK(row(b.src, 1) == std::vector<std::int64_t>{5, 0, 0});
  CHECK(row(b.tgt_in, 0) == std::vector<std::int64_t>{1, 4, 5, 0});   // <s> x y <pad>
  CHECK(row(b.tgt_out, 0) == std::vector<std::int64_t>{4, 5, 2, 0});  // x y </s> <pad>
  CHECK(row(b.tgt_in, 2) == std::vector<std::int64_t>{1, 4, 4, 6});
  CHECK(row(b.tgt_out, 2) == std::vector<std::int64_t>{4, 4, 6, 2});
  CHECK(b.target_tokens() == 3 + 2 + 4);

  const Batch& last = batches[1];
  CHECK(last.size() == 1);
  CHECK(last.example_index == std::vector<std::size_t>{3});
  CHECK(row(last.src, 0) == std::vector<std::int64_t>{5, Vocab::kUnk, 6});
  CHECK(row(last.tgt_out, 0) == std::vector<std::int64_t>{5, Vocab::kUnk, 2});
  CHECK(batcher.examples()[3].targets.size() == 2);  // all references kept for scoring

  // Rows come in the order asked for.
  const Batch picked = batcher.make_batch({2, 0});
  CHECK(picked.src_lengths == std::vector<std::int64_t>{2, 3});
  CHECK(row(picked.src, 0) == std::vector<std::int64_t>{4, 4, 0});
  CHECK_THROWS_AS(batcher.make_batch({7}), IndexError);
  CHECK_THROWS_AS(batcher.make_batch({}), ValueError);

  BatcherOptions bad = opt;
  bad.batch_size = 0;
  CHECK_THROWS_AS(Batcher(ex, src_vocab, tgt_vocab, bad), ValueError);
  CHECK(contains(error_of<ValueError>([&] {
                   Batcher(std::vector<Example>{{"a", {"   "}}}, src_vocab, tgt_vocab, opt);
                 }),
                 "empty target after words tokenization"));
}

TEST_CASE("batch: training buckets by source length and shuffles per epoch, reproducibly") {
  const auto ex = make_task("copy", 1000, 3, 1, 40);
  const Vocab v = build_source_vocab(ex, Tokenization::chars);
  BatcherOptions opt;
  opt.batch_size = 16;
  opt.seed = 5;
  const Batcher bucketed(ex, v, v, opt);
  opt.bucket_batches = 1;
  const Batcher plain(ex, v, v, opt);

  const auto padding = [](const Batcher& batcher, std::uint64_t epoch) {
    std::int64_t pads = 0;
    for (const auto& idx : batcher.epoch_plan(epoch)) {
      std::size_t longest = 0;
      for (auto i : idx) longest = std::max(longest, batcher.source_ids(i).size());
      for (auto i : idx) pads += static_cast<std::int64_t>(longest - batcher.source_ids(i).size());
    }
    return pads;
  };
  CHECK(padding(bucketed, 0) * 10 < padding(plain, 0));

  const auto plan0 = bucketed.epoch_plan(0);
  const auto plan1 = bucketed.epoch_plan(1);
  CHECK(plan0.size() == 63);  // ceil(1000 / 16)
  CHECK(plan0 != plan1);
  CHECK(plan1 == Batcher(ex, v, v, bucketed.options()).epoch_plan(1));  // a function of seed, epoch
  // Every example exactly once per epoch, in batches of at most 16.
  std::vector<std::size_t> all;
  for (const auto& idx : plan0) {
    CHECK(idx.size() <= 16);
    all.insert(all.end(), idx.begin(), idx.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::size_t> expected(1000);
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = i;
  CHECK(all == expected);
  // The batches are not in length order (the batch order is shuffled).
  std::vector<std::size_t> first_len;
  for (const auto& idx : plan0) first_len.push_back(bucketed.source_ids(idx[0]).size());
  CHECK_FALSE(std::is_sorted(first_len.begin(), first_len.end()));

  const auto batches = bucketed.train_batches(0);
  REQUIRE(batches.size() == plan0.size());
  CHECK(batches[0].example_index == plan0[0]);
  // Evaluation keeps the order of the examples.
  std::size_t next = 0;
  for (const auto& b : bucketed.eval_batches()) {
    for (auto i : b.example_index) CHECK(i == next++);
  }
  CHECK(next == 1000);
}

// ---------------------------------------------------------------------------------------------
// degenerate data (issue 11): empty files, no examples, over-long sequences, broken vocabularies

TEST_CASE("read_tsv_nonempty: an empty or all-blank file is an error naming it") {
  TempDir dir;
  const std::string empty = dir.write("empty.tsv", "");
  CHECK(error_of<DataError>([&] { read_tsv_nonempty(empty); }) ==
        fmt::format("read_tsv: {}: no examples: the file is empty", empty));
  const std::string bom = dir.write("bom.tsv", "\xEF\xBB\xBF");
  CHECK(contains(error_of<DataError>([&] { read_tsv_nonempty(bom); }), "the file is empty"));
  const std::string one = dir.write("one.tsv", "   \n");
  CHECK(contains(error_of<DataError>([&] { read_tsv_nonempty(one); }), "its only line is blank"));
  const std::string blank = dir.write("blank.tsv", "\n \t\n\r\n");
  CHECK(error_of<DataError>([&] { read_tsv_nonempty(blank); }) ==
        fmt::format("read_tsv: {}: no examples: all its 3 lines are blank", blank));
  const std::string ok = dir.write("ok.tsv", "\nab\tba\n");
  CHECK(read_tsv_nonempty(ok) == read_tsv(ok));
  // Line errors still come first, with their line.
  const std::string bad = dir.write("bad.tsv", "\nno tab\n");
  CHECK(contains(error_of<DataError>([&] { read_tsv_nonempty(bad); }), bad + ":2: no tab"));
}

TEST_CASE("check_examples: no examples, or a sequence longer than a model takes") {
  CHECK(error_of<DataError>([] {
          check_examples({}, "task copy, valid split", Tokenization::chars, Tokenization::chars);
        }) == "task copy, valid split: no examples");
  const std::string at_limit(kMaxSequenceTokens, 'a');
  CHECK_NOTHROW(
      check_examples({{at_limit, {at_limit}}}, "f.tsv", Tokenization::chars, Tokenization::chars));
  const std::vector<Example> long_source = {{"ab", {"ba"}}, {at_limit + "b", {"x"}}};
  CHECK(contains(
      error_of<DataError>(
          [&] { check_examples(long_source, "f.tsv", Tokenization::chars, Tokenization::chars); }),
      "f.tsv: example 2 (\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"): its source has 1001 tokens "
      "(chars tokenization), more than the 1000 a model takes"));
  // Any reference target counts, in its own tokenization: 1001 characters are one word.
  const std::vector<Example> long_target = {{"ab", {"ba", at_limit + "c"}}};
  CHECK(contains(error_of<DataError>([&] {
                   check_examples(long_target, "g.tsv", Tokenization::chars, Tokenization::chars);
                 }),
                 "g.tsv: example 1 (\"ab\"): its target has 1001 tokens"));
  CHECK_NOTHROW(check_examples(long_target, "g.tsv", Tokenization::chars, Tokenization::words));
}

TEST_CASE("Batcher: no examples is an error (a training loop over no batches never ends)") {
  const Vocab v;
  CHECK(contains(error_of<ValueError>([&] { Batcher(std::vector<Example>{}, v, v); }),
                 "Batcher: no examples"));
}

TEST_CASE("Vocab::load: an empty, cut-short or wrongly typed file names the file") {
  TempDir dir;
  struct Case {
    const char* name;
    const char* text;
    const char* expected;  // after "Vocab::load: <path>: "
  };
  const Case cases[] = {
      {"empty.json", "", "the file is empty"},
      {"empty.txt", "", "the file is empty"},
      {"cut.json", "{\"format\": \"seqgrad.vocab\", \"version\": 1, \"tokens\": [\"<pad>\"",
       "not valid JSON (cut short?)"},
      {"array.json", "[\"<pad>\", \"<s>\"]", "Vocab::from_json: not a vocabulary"},
      {"string.json", "\"seqgrad.vocab\"", "Vocab::from_json: not a vocabulary"},
      {"format.json", "{\"format\": 1, \"version\": 1, \"tokens\": []}",
       "Vocab::from_json: not a vocabulary"},
      {"tokens.json", "{\"format\": \"seqgrad.vocab\", \"version\": 1, \"tokens\": 3}",
       "Vocab::from_json: \"tokens\" must be an array of strings"},
      {"short.json", "{\"format\": \"seqgrad.vocab\", \"version\": 1, \"tokens\": [\"<pad>\"]}",
       "Vocab::from_tokens: the first tokens must be the specials"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir.write(c.name, c.text);
    const std::string msg = error_of<RuntimeError>([&] { Vocab::load(path); });
    CHECK(contains(msg, fmt::format("Vocab::load: {}: {}", path, c.expected)));
  }
}
