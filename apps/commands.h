// The seqgrad subcommands, one file each; main.cpp wires them to the command line.
#pragma once

#include <CLI/CLI.hpp>

namespace seqgrad::app {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_translate_command(CLI::App& app);
void add_attention_command(CLI::App& app);
void add_explain_command(CLI::App& app);
void add_graph_command(CLI::App& app);

}  // namespace seqgrad::app
