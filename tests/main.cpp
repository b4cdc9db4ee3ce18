// The doctest runner for the whole suite; test cases live in one file per module or op family.
//
// To add a test case:
//   1. Add a TEST_CASE to the file for its module (tests/test_<module>.cpp).
//   2. If you start a new file, list it in the root CMakeLists.txt's seqgrad_tests sources.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
