// seqgrad explain and seqgrad graph end to end: two tiny trained runs (with and without
// attention), the page they write read back as XML, the DOT graph of one decoder step.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "python_runner.h"

namespace seqgrad {
namespace {

int run(const std::string& args, std::string* out = nullptr) {
  FILE* pipe = popen((std::string(SEQGRAD_CLI) + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  std::string text;
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0;)
    text.append(buf.data(), n);
  if (out != nullptr) *out = text;
  return pclose(pipe);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr const char* kTiny =
    "train --task reverse --min-len 3 --max-len 6 --train-size 500 --valid-size 20 "
    "--test-size 20 --embed 8 --hidden 16 --batch-size 32 --steps 20 --threads 1 ";

TEST_CASE("cli: explain writes a well-formed page with both models, graph writes DOT") {
  testing::TempDir dir;
  std::string out;
  REQUIRE(run(std::string(kTiny) + "--out " + dir.file("att"), &out) == 0);
  REQUIRE(run(std::string(kTiny) + "--attention none --out " + dir.file("none"), &out) == 0);
  const std::string page = dir.file("page.html");
  CHECK(run("explain --model " + dir.file("att") + " --input abcd --target dcba --compare " +
                dir.file("none") + " --out " + page,
            &out) == 0);
  CAPTURE(out);
  CHECK(out.find("page written to") != std::string::npos);
  REQUIRE(testing::run_python("read_page.py", "'" + page + "' '" + dir.file("page.json") + "'") ==
          0);
  const auto got = nlohmann::json::parse(std::ifstream(dir.file("page.json")));
  const auto& figures = got.at("figures");
  for (const char* id :
       {"weights-0", "dweights-0", "dscores-0", "state-grad", "state-grad-compare"}) {
    CAPTURE(id);
    REQUIRE(figures.contains(id));
    CHECK(figures.at(id).size() == 5);  // d c b a </s>
    CHECK(figures.at(id).at(0).size() == 4);
  }
  CHECK(got.at("loss").size() == 5);

  // Without --target the model's own greedy output is explained.
  CHECK(run("explain --model " + dir.file("att") + " --input abc --out " + page, &out) == 0);
  CHECK(slurp(page).find("own greedy output") != std::string::npos);

  CHECK(run("graph --model " + dir.file("att") + " --input abcd --dot " + dir.file("step.dot"),
            &out) == 0);
  const std::string dot = slurp(dir.file("step.dot"));
  CHECK(dot.rfind("digraph seqgrad {", 0) == 0);
  CHECK(dot.find("cross_entropy (loss)") != std::string::npos);
  CHECK(dot.find("decoder.attention") != std::string::npos);  // named parameters
  CHECK(dot.find("|grad| =") != std::string::npos);

  // Bad input: a run without attention has no weights to draw, but explains; a missing run and
  // vocabularies that differ are errors.
  CHECK(run("explain --model " + dir.file("none") + " --input abcd --out " + page, &out) == 0);
  CHECK(run("explain --model " + dir.file("missing") + " --input abcd --out " + page, &out) != 0);
  CHECK(out.find("missing") != std::string::npos);
}

}  // namespace
}  // namespace seqgrad
