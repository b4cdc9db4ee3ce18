// The suite itself: ctest learns each doctest case's name from doctest_discover_tests, which
// splits names at ';' (a CMake list). A case named "a; b" became two ctest entries that match no
// case, so ctest reported it passed without running it. Every case name here must be free of ';'.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace {

TEST_CASE("suite: no test case name holds a semicolon (ctest would skip the case)") {
  const std::regex test_case(R"re(TEST_CASE[A-Z_]*\("([^"]*)")re");
  int cases = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           std::filesystem::path(SEQGRAD_SOURCE_DIR) / "tests")) {
    if (e.path().extension() != ".cpp") continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    for (auto it = std::sregex_iterator(s.begin(), s.end(), test_case);
         it != std::sregex_iterator(); ++it) {
      ++cases;
      const std::string name = (*it)[1].str();
      CAPTURE(e.path().filename().string());
      CAPTURE(name);
      CHECK(name.find(';') == std::string::npos);
    }
  }
  CHECK(cases > 200);
}

}  // namespace
