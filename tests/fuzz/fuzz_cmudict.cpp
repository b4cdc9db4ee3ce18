// libFuzzer harness: parse_cmudict. What it returns must be what g2p.h promises: one Example per
// distinct word (variant markers stripped), each with at least one distinct pronunciation of
// phonemes joined by single spaces, all valid UTF-8; the hash split must accept every word.
#include <set>
#include <string>

#include "seq2seq/g2p.h"
#include "seq2seq/vocab.h"
#include "tests/fuzz/harness.h"

namespace {

void check_word(std::string_view word) {
  FUZZ_CHECK(!word.empty());
  FUZZ_CHECK(word.find_first_of(" \t\n(") == std::string_view::npos);
  FUZZ_CHECK(seqgrad::find_invalid_utf8(word) == std::string_view::npos);
}

void check_pronunciation(std::string_view phonemes) {
  FUZZ_CHECK(!phonemes.empty());
  FUZZ_CHECK(phonemes.front() != ' ' && phonemes.back() != ' ');
  FUZZ_CHECK(phonemes.find("  ") == std::string_view::npos);
  FUZZ_CHECK(phonemes.find_first_of("\t\n") == std::string_view::npos);
  FUZZ_CHECK(phonemes.front() != '#' && phonemes.find(" #") == std::string_view::npos);
  FUZZ_CHECK(seqgrad::find_invalid_utf8(phonemes) == std::string_view::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  seqgrad::fuzz::expect_typed_errors([&] {
    const auto words = seqgrad::parse_cmudict(seqgrad::fuzz::as_text(data, size), "fuzz.dict");
    std::set<std::string> seen;
    for (const auto& ex : words) {
      check_word(ex.source);
      FUZZ_CHECK(seen.insert(ex.source).second);
      FUZZ_CHECK(!ex.targets.empty());
      std::set<std::string> targets;
      for (const auto& t : ex.targets) {
        check_pronunciation(t);
        FUZZ_CHECK(targets.insert(t).second);
      }
    }
    const auto splits = seqgrad::split_g2p(words);
    FUZZ_CHECK(splits.train.size() + splits.valid.size() + splits.test.size() == words.size());
  });
  return 0;
}
