#include "apps/world.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <span>

#include "tensor/errors.h"

#ifdef SEQGRAD_HAVE_MPI
#include <mpi.h>
#endif

namespace seqgrad::app {

namespace {

Collective* current = nullptr;  // the joined MPI job, while a World has one

#ifdef SEQGRAD_HAVE_MPI

// Whether a process manager started this process: Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE,
// PMIx-based launchers PMIX_RANK. A process started by hand stays a group of one (Open MPI's
// singleton start-up would spawn a daemon for nothing).
bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

// MPI counts are ints: a long span goes in pieces.
template <class T, class F>
void in_pieces(std::span<T> values, const F& call) {
  constexpr std::size_t kPiece = std::numeric_limits<int>::max() / 2;
  for (std::size_t at = 0; at < values.size(); at += kPiece) {
    call(values.data() + at, static_cast<int>(std::min(kPiece, values.size() - at)));
  }
}

// MPI_COMM_WORLD. MPI's default error handler (MPI_ERRORS_ARE_FATAL) ends the job on a failed
// call, so the calls' return codes need no checking here.
class MpiWorld final : public Collective {
 public:
  MpiWorld() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum(std::span<float> v) override { allreduce(v, MPI_FLOAT, MPI_SUM); }
  void sum(std::span<double> v) override { allreduce(v, MPI_DOUBLE, MPI_SUM); }
  void max(std::span<double> v) override { allreduce(v, MPI_DOUBLE, MPI_MAX); }
  void broadcast(std::span<std::uint64_t> v) override {
    in_pieces(v, [](std::uint64_t* p, int n) { MPI_Bcast(p, n, MPI_UINT64_T, 0, MPI_COMM_WORLD); });
  }
  std::vector<std::string> gather(const std::string& mine) override;
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

 private:
  template <class T>
  static void allreduce(std::span<T> v, MPI_Datatype type, MPI_Op op) {
    in_pieces(v, [&](T* p, int n) { MPI_Allreduce(MPI_IN_PLACE, p, n, type, op, MPI_COMM_WORLD); });
  }
  int rank_ = 0, size_ = 1;
};

std::vector<std::string> MpiWorld::gather(const std::string& mine) {
  if (mine.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw ValueError(fmt::format("gather: {} bytes from one process (at most 2 GiB)", mine.size()));
  }
  const int length = static_cast<int>(mine.size());
  std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(lengths.size(), 0);
  MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::size_t total = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    if (total > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
      throw ValueError("gather: more than 2 GiB in all");
    }
    offsets[r] = static_cast<int>(total);
    total += static_cast<std::size_t>(lengths[r]);
  }
  std::string all(total, '\0');
  MPI_Allgatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                 MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> texts;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    texts.push_back(
        all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(lengths[r])));
  }
  return texts;
}

#endif  // SEQGRAD_HAVE_MPI

}  // namespace

World::World(int& argc, char**& argv) {
#ifdef SEQGRAD_HAVE_MPI
  if (!launched_by_mpirun()) return;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  static MpiWorld job;
  current = &job;
#else
  (void)argc;
  (void)argv;
#endif
}

World::~World() {
#ifdef SEQGRAD_HAVE_MPI
  if (current != nullptr) MPI_Finalize();
  current = nullptr;
#endif
}

Collective& world() {
  return current != nullptr ? *current : single_process();
}

void report_error(const std::string& what) {
  const Collective& group = world();
  if (group.size() == 1) {
    fmt::print(stderr, "seqgrad: error: {}\n", what);
    return;
  }
  fmt::print(stderr, "seqgrad: error (rank {} of {}): {}\n", group.rank(), group.size(), what);
  std::fflush(stderr);
#ifdef SEQGRAD_HAVE_MPI
  MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::exit(1);
}

}  // namespace seqgrad::app
