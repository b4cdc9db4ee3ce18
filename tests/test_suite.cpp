// The suite itself: ctest learns each doctest case's name from doctest_discover_tests, which
// splits names at ';' (a CMake list). A case named "a; b" became two ctest entries that match no
// case, so ctest reported it passed without running it. Every case name here must be free of ';'.
#include <doctest/doctest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The names of every TEST_CASE... ("name" in `text`. (No std::regex: GCC 12 warns inside it
// under the sanitizer build's flags.)
std::vector<std::string> case_names(const std::string& text) {
  std::vector<std::string> names;
  for (std::size_t at = text.find("TEST_CASE"); at != std::string::npos;
       at = text.find("TEST_CASE", at + 1)) {
    std::size_t i = at + 9;
    while (i < text.size() && (std::isupper(static_cast<unsigned char>(text[i])) || text[i] == '_'))
      ++i;
    if (text.compare(i, 2, "(\"") != 0) continue;
    const std::size_t end = text.find('"', i + 2);
    if (end == std::string::npos) break;
    names.push_back(text.substr(i + 2, end - i - 2));
  }
  return names;
}

TEST_CASE("suite: no test case name holds a semicolon (ctest would skip the case)") {
  int cases = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           std::filesystem::path(SEQGRAD_SOURCE_DIR) / "tests")) {
    if (e.path().extension() != ".cpp") continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    for (const std::string& name : case_names(text.str())) {
      ++cases;
      CAPTURE(e.path().filename().string());
      CAPTURE(name);
      CHECK(name.find(';') == std::string::npos);
    }
  }
  CHECK(cases > 200);
}

}  // namespace
