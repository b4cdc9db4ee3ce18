// seqgrad: train, evaluate and use attention encoder-decoders from the command line.
//   seqgrad train --task reverse --out runs/reverse
//   seqgrad eval --model runs/reverse --json
//   echo hello | seqgrad translate --model runs/reverse --show-attention
//   seqgrad attention --model runs/reverse --input hello --svg hello.svg
#include <fmt/format.h>

#include "apps/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"seqgrad: sequence-to-sequence models with attention, on a from-scratch autodiff"};
  app.require_subcommand(1);
  seqgrad::app::add_train_command(app);
  seqgrad::app::add_eval_command(app);
  seqgrad::app::add_translate_command(app);
  seqgrad::app::add_attention_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "seqgrad: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
