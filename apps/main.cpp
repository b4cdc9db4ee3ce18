// seqgrad: train, evaluate and use attention encoder-decoders from the command line.
//   seqgrad train --task reverse --out runs/reverse
//   seqgrad eval --model runs/reverse --json
//   echo hello | seqgrad translate --model runs/reverse --show-attention
//   seqgrad attention --model runs/reverse --input hello --svg hello.svg
//   seqgrad explain --model runs/reverse --input hello --out hello.html
//   seqgrad graph --model runs/reverse --input hello --dot step.dot
//   mpirun -np 4 seqgrad train --task g2p --threads 1     (data-parallel over 4 processes)
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "apps/commands.h"
#include "apps/world.h"
#include "tensor/matmul.h"

namespace {
// On an AVX-512 CPU that Debian's OpenBLAS does not recognise, start again with its AVX-512
// kernels (see better_blas_core). OPENBLAS_CORETYPE set by the user is always kept.
void restart_with_better_blas(char** argv) {
  const std::string core = seqgrad::better_blas_core(
      seqgrad::blas_core_name(), std::getenv("OPENBLAS_CORETYPE"), seqgrad::cpu_has_avx512());
  if (core.empty()) return;
  if (setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached when exec failed: go on with the kernels already loaded.
  unsetenv("OPENBLAS_CORETYPE");
}

// Only train is data-parallel: any other command in a group of several processes is refused
// (its processes would each do the whole work, or write the same files at once).
void check_group_command(int argc, char** argv) {
  const seqgrad::Collective& group = seqgrad::app::world();
  if (group.size() == 1) return;
  std::string command;
  for (int i = 1; i < argc && command.empty(); ++i) {
    if (argv[i][0] != '-') command = argv[i];
  }
  if (command == "train") return;
  seqgrad::app::report_error(fmt::format(
      "seqgrad {} runs in one process; under mpirun only train is data-parallel (run it "
      "without mpirun, or with -np 1)",
      command.empty() ? std::string("without a command") : command));
}
}  // namespace

int main(int argc, char** argv) {
  restart_with_better_blas(argv);
  const seqgrad::app::World world(argc, argv);
  check_group_command(argc, argv);
  CLI::App app{"seqgrad: sequence-to-sequence models with attention, on a from-scratch autodiff"};
  app.require_subcommand(1);
  seqgrad::app::add_train_command(app);
  seqgrad::app::add_eval_command(app);
  seqgrad::app::add_translate_command(app);
  seqgrad::app::add_attention_command(app);
  seqgrad::app::add_explain_command(app);
  seqgrad::app::add_graph_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    seqgrad::app::report_error(e.what());
    return 1;
  }
  return 0;
}
