// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Examples and the TSV reader. An Example is one source with every reference target it has
// (G2P words often have several pronunciations); a prediction counts as right when it matches any
// of them. Data files are UTF-8, `source<TAB>target` a line; a bad line is reported with its
// file and line number.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "seq2seq/vocab.h"
#include "tensor/errors.h"

namespace seqgrad {

// A data file that cannot be read or is malformed. The message starts with "file:line: " (or
// "file: " when no single line is at fault).
struct DataError : RuntimeError {
  using RuntimeError::RuntimeError;
};

struct Example {
  std::string source;
  std::vector<std::string> targets;  // at least one; the first is the one trained on
  bool operator==(const Example&) const = default;
};

struct DataSplits {
  std::vector<Example> train;
  std::vector<Example> valid;
  std::vector<Example> test;
};

// Reads `source<TAB>target` lines. Blank (empty or all-whitespace) lines are skipped, a UTF-8
// byte order mark and CRLF line ends are accepted, and fields are taken as they are (no
// trimming). Lines with the same source merge into one Example: targets in first-seen order,
// an exact repeat dropped; Examples come in the order their source first appears. Throws
// DataError for a missing or unreadable file and for a line with no tab, more than one tab, an
// empty source or target, or invalid UTF-8.
// Calls fn(line, line_no) for each line of UTF-8 text, line numbers from 1, with a leading byte
// order mark and each line's trailing '\r' removed. A line that is not valid UTF-8 throws
// DataError("<caller>: <name>:<line_no>: ...") before fn sees it.
void for_each_line(std::string_view text, std::string_view caller, std::string_view name,
                   const std::function<void(std::string_view line, std::size_t line_no)>& fn);
// Throws DataError("<caller>: <name>:<line_no>: <what>").
[[noreturn]] void fail_line(std::string_view caller, std::string_view name, std::size_t line_no,
                            std::string_view what);

std::vector<Example> read_tsv(const std::string& path);
// The same on text already in memory; `name` stands for the file in error messages.
std::vector<Example> parse_tsv(std::string_view text, std::string_view name);
// One line per (source, target) pair; DataError if a field holds a tab or line break.
void write_tsv(const std::string& path, const std::vector<Example>& examples);

// One Example per (source, target) pair, each with that one target: training on every reference
// instead of the first alone. Keeps the order (an example's targets stay side by side).
std::vector<Example> one_per_target(const std::vector<Example>& examples);

// Collects (source, target) pairs into Examples: a new source starts an Example, a known one
// gets the target appended unless it already has it. Shared by the TSV and CMUdict readers.
class ExampleMerger {
 public:
  void add(std::string_view source, std::string_view target);
  std::size_t size() const { return examples_.size(); }
  std::vector<Example> take();

 private:
  std::vector<Example> examples_;
  std::unordered_map<std::string, std::size_t> index_;  // source -> position in examples_
};

// The longest source or target, in tokens, that the commands take. The model itself has no
// hard limit, but time and memory grow with the length (decoding a source of S tokens may take
// 2S + 10 steps, each attending over all S), so a longer line is refused with an error instead
// of a run that seems to hang.
inline constexpr std::size_t kMaxSequenceTokens = 1000;

// Checks data a command is about to use: DataError "<name>: no examples ..." when `examples` is
// empty, and "<name>: example K (\"source\"): its source has N tokens, more than the ..." when
// a source or any target is longer than kMaxSequenceTokens with the given tokenizations.
// `name` is a file, or a description such as "task reverse, train split".
void check_examples(const std::vector<Example>& examples, std::string_view name,
                    Tokenization source, Tokenization target);
// read_tsv for data a command needs: as read_tsv, then DataError naming the file when it holds
// no example ("the file is empty", "its N lines are all blank").
std::vector<Example> read_tsv_nonempty(const std::string& path);

// Reads a whole file into a string; DataError naming the file when it is missing or unreadable.
std::string read_file(const std::string& path, std::string_view caller);

}  // namespace seqgrad
