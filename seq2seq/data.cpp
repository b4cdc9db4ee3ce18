// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// The TSV reader and writer, and the merging of several targets for one source into an Example.
#include "seq2seq/data.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "seq2seq/vocab.h"

namespace seqgrad {

namespace {

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\v\f\r") == std::string_view::npos;
}

}  // namespace

void ExampleMerger::add(std::string_view source, std::string_view target) {
  const auto [it, inserted] = index_.try_emplace(std::string(source), examples_.size());
  if (inserted) {
    examples_.push_back(Example{std::string(source), {std::string(target)}});
    return;
  }
  auto& targets = examples_[it->second].targets;
  if (std::find(targets.begin(), targets.end(), target) == targets.end()) {
    targets.emplace_back(target);
  }
}

std::vector<Example> ExampleMerger::take() {
  index_.clear();
  return std::move(examples_);
}

std::vector<Example> one_per_target(const std::vector<Example>& examples) {
  std::vector<Example> out;
  for (const Example& e : examples) {
    for (const std::string& t : e.targets) out.push_back(Example{e.source, {t}});
  }
  return out;
}

std::string read_file(const std::string& path, std::string_view caller) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw DataError(fmt::format("{}: {}: no such file", caller, path));
  }
  if (std::filesystem::is_directory(path, ec)) {
    throw DataError(fmt::format("{}: {}: is a directory, not a file", caller, path));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  if (in) buffer << in.rdbuf();
  if (!in || in.bad()) throw DataError(fmt::format("{}: {}: cannot read the file", caller, path));
  return buffer.str();
}

void fail_line(std::string_view caller, std::string_view name, std::size_t line_no,
               std::string_view what) {
  throw DataError(fmt::format("{}: {}:{}: {}", caller, name, line_no, what));
}

void for_each_line(std::string_view text, std::string_view caller, std::string_view name,
                   const std::function<void(std::string_view line, std::size_t line_no)>& fn) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte order mark
  std::size_t line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (const std::size_t bad = find_invalid_utf8(line); bad != std::string_view::npos) {
      fail_line(caller, name, line_no,
                fmt::format("invalid UTF-8 at byte {} of the line", bad + 1));
    }
    fn(line, line_no);
  }
}

std::vector<Example> parse_tsv(std::string_view text, std::string_view name) {
  ExampleMerger merger;
  for_each_line(text, "read_tsv", name, [&](std::string_view line, std::size_t line_no) {
    if (is_blank(line)) return;
    const auto fail = [&](std::string_view what) { fail_line("read_tsv", name, line_no, what); };
    const std::size_t tab = line.find('\t');
    if (tab == std::string_view::npos) fail("no tab; expected source<TAB>target");
    if (line.find('\t', tab + 1) != std::string_view::npos) {
      fail("more than one tab; expected source<TAB>target (tabs inside a field are not allowed)");
    }
    const std::string_view source = line.substr(0, tab);
    const std::string_view target = line.substr(tab + 1);
    if (source.empty()) fail("empty source before the tab");
    if (target.empty()) fail("empty target after the tab");
    merger.add(source, target);
  });
  return merger.take();
}

std::vector<Example> read_tsv(const std::string& path) {
  return parse_tsv(read_file(path, "read_tsv"), path);
}

std::vector<Example> read_tsv_nonempty(const std::string& path) {
  const std::string text = read_file(path, "read_tsv");
  std::vector<Example> examples = parse_tsv(text, path);
  if (!examples.empty()) return examples;
  std::string_view body = text;
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  if (body.empty())
    throw DataError(fmt::format("read_tsv: {}: no examples: the file is empty", path));
  const auto lines = std::count(body.begin(), body.end(), '\n') + (body.ends_with('\n') ? 0 : 1);
  throw DataError(fmt::format("read_tsv: {}: no examples: {}", path,
                              lines == 1 ? std::string("its only line is blank")
                                         : fmt::format("all its {} lines are blank", lines)));
}

namespace {

// The first `n` code points of a valid UTF-8 string, with "..." when it is longer.
std::string preview(const std::string& text, std::size_t n = 30) {
  std::size_t pos = 0;
  for (std::size_t k = 0; k < n && pos < text.size(); ++k) {
    pos += std::max<std::size_t>(1, utf8_sequence_length(text, pos));
  }
  return pos < text.size() ? text.substr(0, pos) + "..." : text;
}

void check_length(const std::string& text, Tokenization mode, std::string_view name,
                  std::size_t index, const std::string& source, std::string_view role) {
  const std::size_t n = tokenize(text, mode).size();
  if (n <= kMaxSequenceTokens) return;
  throw DataError(fmt::format(
      "{}: example {} (\"{}\"): its {} has {} tokens ({} tokenization), more than the {} a model "
      "takes; HINT: split or drop such lines",
      name, index + 1, preview(source), role, n, tokenization_name(mode), kMaxSequenceTokens));
}

}  // namespace

void check_examples(const std::vector<Example>& examples, std::string_view name,
                    Tokenization source, Tokenization target) {
  if (examples.empty()) throw DataError(fmt::format("{}: no examples", name));
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const Example& ex = examples[i];
    check_length(ex.source, source, name, i, ex.source, "source");
    for (const auto& t : ex.targets) check_length(t, target, name, i, ex.source, "target");
  }
}

void write_tsv(const std::string& path, const std::vector<Example>& examples) {
  std::string text;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const Example& ex = examples[i];
    for (const auto& target : ex.targets) {
      for (const std::string* field : {&ex.source, &target}) {
        if (field->empty() || field->find_first_of("\t\r\n") != std::string::npos) {
          throw DataError(fmt::format(
              "write_tsv: {}: example {} has an empty field or one with a tab or line break: "
              "\"{}\"",
              path, i, *field));
        }
      }
      text += ex.source;
      text += '\t';
      text += target;
      text += '\n';
    }
  }
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw DataError(fmt::format("write_tsv: {}: cannot write the file", path));
}

}  // namespace seqgrad
