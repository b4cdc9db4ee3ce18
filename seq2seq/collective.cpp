#include "seq2seq/collective.h"

namespace seqgrad {

namespace {

class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum(std::span<float>) override {}
  void sum(std::span<double>) override {}
  void max(std::span<double>) override {}
  void broadcast(std::span<std::uint64_t>) override {}
  std::vector<std::string> gather(const std::string& mine) override { return {mine}; }
  void barrier() override {}
};

}  // namespace

Collective& single_process() {
  static SingleProcess group;
  return group;
}

}  // namespace seqgrad
