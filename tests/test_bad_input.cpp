// Degenerate input to the seqgrad command, run against the built binary as a user would: empty
// and all-blank data files, splits with no examples, over-long sequences, broken run-directory
// files (config.json, vocabularies) and bad lines on translate's standard input. Each must end
// in a clear error naming the file (and line), never a hang, a crash or a silent zero-step run.
//
// To add a case: put the bad file in a TempDir, run the command with run() and check the status
// and the message; every command runs under `timeout`, so a hang fails instead of blocking.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "python_runner.h"

namespace seqgrad {
namespace {

struct Run {
  int status;
  std::string out;  // standard output
  std::string err;  // standard error
};

Run run(const std::string& args, const std::string& stdin_text = "") {
  testing::TempDir tmp;
  std::ofstream(tmp.file("stdin"), std::ios::binary) << stdin_text;
  const std::string cmd = "timeout 120 " + std::string(SEQGRAD_CLI) + " " + args + " 2>" +
                          tmp.file("stderr") + " < " + tmp.file("stdin");
  Run r{0, "", ""};
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  r.status = pclose(pipe);
  std::ifstream err(tmp.file("stderr"), std::ios::binary);
  r.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return r;
}

// Whether the command printed `text` (on either stream).
bool has(const Run& r, const std::string& text) {
  return r.out.find(text) != std::string::npos || r.err.find(text) != std::string::npos;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A tiny trained run (two steps: its outputs are poor, which is all these tests need).
std::string tiny_run(const testing::TempDir& dir) {
  const std::string out = dir.file("run");
  const Run t =
      run("train --task reverse --min-len 3 --max-len 6 --train-size 200 --valid-size 10 "
          "--test-size 0 --embed 8 --hidden 8 --steps 2 --threads 1 --out " +
          out);
  CAPTURE(t.err);
  REQUIRE(t.status == 0);
  return out;
}

TEST_CASE("bad input: empty or all-blank data files and empty splits are errors naming them") {
  testing::TempDir dir;
  const std::string empty = dir.file("empty.tsv"), blank = dir.file("blank.tsv"),
                    ok = dir.file("ok.tsv");
  write(empty, "");
  write(blank, "\n  \n\t\n");
  write(ok, "abc\tcba\nxy\tyx\n");
  const std::string tail = " --steps 1 --threads 1 --out " + dir.file("out");
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {"--train " + empty + " --valid " + ok,
       "read_tsv: " + empty + ": no examples: the file is empty"},
      {"--train " + blank + " --valid " + ok,
       "read_tsv: " + blank + ": no examples: all its 3 lines are blank"},
      {"--train " + ok + " --valid " + empty, "read_tsv: " + empty + ": no examples"},
      {"--train " + ok + " --valid " + ok + " --test " + blank,
       "read_tsv: " + blank + ": no examples"},
      {"--task reverse --train-size 0", "--train-size 0: must be at least 1"},
      {"--task reverse --valid-size 0", "--valid-size 0: must be at least 1"},
      {"--task reverse --train-size -5", "--train-size -5: must be at least 1"},
      {"--task copy --min-len 0", "--min-len 0: must be at least 1"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const Run r = run("train " + c.args + tail);
    CAPTURE(r.out);
    CAPTURE(r.err);
    CHECK(r.status != 0);
    CHECK(has(r, "seqgrad: error: " + c.message));
  }
  // A dictionary of comments only, and one whose few words all fall outside the train split.
  const std::string comments = dir.file("comments.dict"), one = dir.file("one.dict");
  write(comments, ";;; a comment\n;;; another\n\n");
  write(one, "hello HH AH L OW\n");
  const Run c = run("train --task g2p --cmudict " + comments + tail);
  CHECK(c.status != 0);
  CHECK(has(c, "seqgrad: error: " + comments + ": no words (every line is blank or a comment)"));
  const Run w = run("train --task g2p --cmudict " + one + tail);
  CHECK(w.status != 0);
  CHECK(has(w, "seqgrad: error: " + one + " (train split of G2P): no examples"));

  const std::string model = tiny_run(dir);
  const Run e = run("eval --model " + model + " --data " + blank);
  CHECK(e.status != 0);
  CHECK(has(e, blank + ": no examples"));
  const Run t = run("eval --model " + model);  // trained with --test-size 0
  CHECK(t.status != 0);
  CHECK(has(t, "has no test split"));
}

TEST_CASE("bad input: sequences longer than a model takes are refused with the file") {
  testing::TempDir dir;
  const std::string ok = dir.file("ok.tsv"), long_src = dir.file("long.tsv");
  write(ok, "abc\tcba\n");
  write(long_src, "ab\tba\n" + std::string(1001, 'x') + "\ty\n");
  const Run r = run("train --train " + long_src + " --valid " + ok +
                    " --steps 1 --threads 1 --out " + dir.file("out"));
  CAPTURE(r.out);
  CHECK(r.status != 0);
  CHECK(has(r, long_src + ": example 2 (\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"): its source has "
                          "1001 tokens (chars tokenization), more than the 1000 a model takes"));
  const Run m = run("train --task copy --max-len 5000 --steps 1 --out " + dir.file("out"));
  CHECK(m.status != 0);
  CHECK(has(m, "--max-len 5000: longer than the 1000 tokens a model takes"));

  const std::string model = tiny_run(dir);
  const Run t = run("translate --model " + model, "abc\n" + std::string(1200, 'a') + "\ncba\n");
  CAPTURE(t.err);
  CHECK(t.status != 0);
  CHECK(has(t, "stdin:2: 1200 tokens (chars tokenization), more than the 1000 a model takes"));
  const Run a = run("attention --model " + model + " --svg " + dir.file("a.svg") + " --input " +
                    std::string(1001, 'a'));
  CHECK(a.status != 0);
  CHECK(has(a, "--input: 1001 tokens"));
}

TEST_CASE("bad input: a broken config.json or vocabulary names the file, for every command") {
  testing::TempDir dir;
  const std::string model = tiny_run(dir);
  struct Case {
    const char* file;
    std::string text, message;
  };
  const Case cases[] = {
      {"config.json", "", "config.json: the file is empty"},
      {"config.json", "{\"model\": {\"embed\": 8", "config.json: not valid JSON (cut short?)"},
      {"config.json", "[1, 2]", "config.json: a run configuration is a JSON object, not array"},
      {"config.json", "{\"model\": 3}", "config.json: \"model\" must be an object, not number 3"},
      {"source_vocab.json", "", "source_vocab.json: the file is empty"},
      {"target_vocab.json", "{\"format\": \"seqgrad.vocab\", \"version\": 1, \"tokens\": [",
       "target_vocab.json: not valid JSON (cut short?)"},
      {"target_vocab.json", "\"tokens\"", "target_vocab.json: Vocab::from_json: not a vocabulary"},
      {"source_vocab.json", "{\"format\": 7}",
       "source_vocab.json: Vocab::from_json: not a vocabulary"},
  };
  const std::string svg = " --svg " + dir.file("a.svg");
  for (const Case& c : cases) {
    CAPTURE(c.file);
    CAPTURE(c.text);
    const std::string bad = dir.file("bad");
    std::filesystem::remove_all(bad);
    std::filesystem::copy(model, bad);
    write(bad + "/" + c.file, c.text);
    for (const std::string& cmd : {"translate --model " + bad, "eval --model " + bad,
                                   "attention --input abc --model " + bad + svg}) {
      CAPTURE(cmd);
      const Run r = run(cmd, "abc\n");
      CAPTURE(r.out);
      CAPTURE(r.err);
      CHECK(r.status != 0);
      CHECK(has(r, "seqgrad: error: "));
      CHECK(has(r, c.message));
    }
    if (std::string(c.file) == "config.json") {
      const Run r = run("train --resume " + bad);
      CHECK(r.status != 0);
      CHECK(has(r, c.message));
    }
  }
  // A wrong type inside a section names the key.
  nlohmann::json config;
  std::ifstream(model + "/config.json") >> config;
  config["data"]["seed"] = -1;
  config["data"]["task"] = 5;
  const std::string bad = dir.file("bad2");
  std::filesystem::copy(model, bad);
  write(bad + "/config.json", config.dump());
  const Run r = run("eval --model " + bad);
  CHECK(r.status != 0);
  CHECK(has(r, "config.json: data.task must be a string, not number 5"));
}

TEST_CASE("bad input: an invalid UTF-8 line on translate's input is reported, the rest decode") {
  testing::TempDir dir;
  const std::string model = tiny_run(dir);
  const std::string input =
      "abc\nab\xFF\xFE"
      "c\nbca\n";
  const Run good = run("translate --model " + model + " --threads 1", "abc\nbca\n");
  REQUIRE(good.status == 0);
  std::istringstream good_lines(good.out);
  std::string first, second;
  std::getline(good_lines, first);
  std::getline(good_lines, second);

  const Run r = run("translate --model " + model + " --threads 2", input);
  CAPTURE(r.out);
  CHECK(r.status != 0);  // after every line is written
  CHECK(has(r,
            "seqgrad: error: stdin:2: invalid UTF-8 at byte 3 of the line; its output is left "
            "empty\n"));
  CHECK(has(r, "seqgrad: error: 1 of 3 input lines could not be translated (line 2)"));
  // The outputs stay aligned: line 1, an empty line, line 3.
  CHECK(r.out == first + "\n\n" + second + "\n");

  const Run j = run("translate --json --model " + model, input);
  CAPTURE(j.out);
  CAPTURE(j.err);
  std::vector<nlohmann::json> records;
  std::istringstream lines(j.out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.front() == '{') records.push_back(nlohmann::json::parse(line));
  }
  REQUIRE(records.size() == 3);
  CHECK(records[0].at("line") == 1);
  CHECK(records[0].at("source") == "abc");
  CHECK(records[0].at("output") == first);
  CHECK(records[0].contains("capped"));
  CHECK(records[1] ==
        nlohmann::json{{"line", 2}, {"error", "invalid UTF-8 at byte 3 of the line"}});
  CHECK(records[2].at("source") == "bca");
}

TEST_CASE("translate: a capped output is marked, and search options are checked") {
  testing::TempDir dir;
  const std::string model = tiny_run(dir);
  const auto records = [](const Run& r) {
    std::vector<nlohmann::json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.front() == '{') out.push_back(nlohmann::json::parse(line));
    }
    return out;
  };
  // Per source: the short line's cap is its own (2 x 3 + 10), not the long line's (2 x 40 + 10).
  const Run p = run("translate --json --model " + model, "abc\n" + std::string(40, 'a') + "\n");
  CAPTURE(p.out);
  CAPTURE(p.err);
  REQUIRE(p.status == 0);
  const auto per_source = records(p);
  REQUIRE(per_source.size() == 2);
  const std::size_t caps[] = {16, 90};
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    const std::string output = per_source[i].at("output");
    CHECK(output.size() <= caps[i]);
    const bool capped = per_source[i].at("capped");
    CHECK(capped == (output.size() == caps[i]));
    CHECK(has(p, fmt::format("stdin:{}: the output reached the cap of {} tokens", i + 1,
                             caps[i])) == capped);
  }
  // An explicit cap holds for every line; a capped output is marked and warned about.
  const Run j = run("translate --json --max-len 3 --threads 2 --model " + model, "abc\nabcdef\n");
  CAPTURE(j.out);
  CAPTURE(j.err);
  REQUIRE(j.status == 0);
  for (const auto& rec : records(j)) {
    const std::string output = rec.at("output");
    CHECK(output.size() <= 3);
    CHECK(rec.at("capped") == (output.size() == 3));
    if (rec.at("capped") == true) {
      CHECK(has(j, fmt::format("stdin:{}: the output reached the cap of 3 tokens without </s>",
                               rec.at("line").get<int>())));
    }
  }
  // Bad options are refused, naming them.
  const std::pair<std::string, std::string> refused[] = {
      {"translate --threads -1", "--threads -1: must be >= 0"},
      {"translate --max-len -2", "--max-len -2: must be >= 0"},
      {"translate --length-penalty -1", "--length-penalty -1: must be finite and >= 0"},
      {"eval --length-penalty nan", "--length-penalty nan: must be finite and >= 0"},
  };
  for (const auto& [args, message] : refused) {
    CAPTURE(args);
    const Run r = run(args + " --model " + model, "abc\n");
    CHECK(r.status != 0);
    CHECK(has(r, message));
  }
  const Run eval_json = run("eval --json --split valid --length-penalty 0.5 --model " + model, "");
  REQUIRE(eval_json.status == 0);
  CHECK(has(eval_json, "\"length_penalty\":0.5"));
}

}  // namespace
}  // namespace seqgrad
