// libFuzzer harness: the run configuration's two library halves, ModelConfig::from_json and
// TrainOptions::from_json, on JSON parsed from the input (invalid JSON is an expected, caught
// parse_error). A run directory's config.json holds them under "model" and "train"; any other
// document is handed to both whole. A configuration that loads must survive its own round trip:
// from_json(to_json(c)) writes the same JSON again.
#include <nlohmann/json.hpp>

#include "seq2seq/model.h"
#include "seq2seq/trainer.h"
#include "tests/fuzz/harness.h"

namespace {

const nlohmann::json& part(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) ? j[key] : j;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  seqgrad::fuzz::expect_typed_errors([&] {
    const auto j = nlohmann::json::parse(seqgrad::fuzz::as_text(data, size));
    seqgrad::fuzz::expect_typed_errors([&] {
      const auto model = seqgrad::ModelConfig::from_json(part(j, "model"));
      FUZZ_CHECK(seqgrad::ModelConfig::from_json(model.to_json()).to_json() == model.to_json());
    });
    seqgrad::fuzz::expect_typed_errors([&] {
      const auto train = seqgrad::TrainOptions::from_json(part(j, "train"));
      FUZZ_CHECK(seqgrad::TrainOptions::from_json(train.to_json()).to_json() == train.to_json());
    });
  });
  return 0;
}
