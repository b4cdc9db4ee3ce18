// libFuzzer harness: Vocab::load, which reads only files, so each input is written to a scratch
// directory (one per process, removed at exit) and loaded twice: as a one-token-a-line text file
// and as a .json file. A vocabulary that loads must keep vocab.h's promises: the four specials
// first, no empty or repeated token, id and token inverse to each other, and a JSON round trip
// that gives it back.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "seq2seq/vocab.h"
#include "tests/fuzz/harness.h"

namespace {

std::filesystem::path scratch;

void remove_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
}

void check_vocab(const seqgrad::Vocab& v) {
  const auto& specials = seqgrad::Vocab::specials();
  FUZZ_CHECK(v.size() >= seqgrad::Vocab::kNumSpecials);
  for (std::size_t i = 0; i < specials.size(); ++i) FUZZ_CHECK(v.tokens()[i] == specials[i]);
  for (std::int64_t i = 0; i < v.size(); ++i) {
    FUZZ_CHECK(!v.token(i).empty());
    FUZZ_CHECK(v.id(v.token(i)) == i);
  }
  FUZZ_CHECK(seqgrad::Vocab::from_json(v.to_json()) == v);
}

void load_as(const std::string& path, std::string_view bytes) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    FUZZ_CHECK(static_cast<bool>(out));
  }
  seqgrad::fuzz::expect_typed_errors([&] { check_vocab(seqgrad::Vocab::load(path)); });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/seqgrad-fuzz-vocab.XXXXXX";
  FUZZ_CHECK(::mkdtemp(dir.data()) != nullptr);
  scratch = dir;
  std::atexit(remove_scratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = seqgrad::fuzz::as_text(data, size);
  load_as((scratch / "vocab.txt").string(), bytes);
  load_as((scratch / "vocab.json").string(), bytes);
  return 0;
}
