// libFuzzer harness: parse_tsv. What it returns must be what data.h promises: one Example per
// distinct source, each with at least one distinct target, no field empty or holding a tab or
// a line feed, all valid UTF-8.
#include <set>
#include <string>

#include "seq2seq/data.h"
#include "seq2seq/vocab.h"
#include "tests/fuzz/harness.h"

namespace {

void check_field(std::string_view field) {
  FUZZ_CHECK(!field.empty());
  FUZZ_CHECK(field.find_first_of("\t\n") == std::string_view::npos);
  FUZZ_CHECK(seqgrad::find_invalid_utf8(field) == std::string_view::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  seqgrad::fuzz::expect_typed_errors([&] {
    const auto examples = seqgrad::parse_tsv(seqgrad::fuzz::as_text(data, size), "fuzz.tsv");
    std::set<std::string> sources;
    for (const auto& ex : examples) {
      check_field(ex.source);
      FUZZ_CHECK(sources.insert(ex.source).second);
      FUZZ_CHECK(!ex.targets.empty());
      std::set<std::string> targets;
      for (const auto& t : ex.targets) {
        check_field(t);
        FUZZ_CHECK(targets.insert(t).second);
      }
    }
  });
  return 0;
}
