// The time of one MPI_Allreduce (sum) of a float32 buffer the size of a model's gradient, as
// `seqgrad train` makes once a step under mpirun: min and median of REPS, each after a barrier.
//   mpirun -np 2 build/bench_allreduce 2259371 50      (the G2P recurrent model's parameters)
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long count = argc > 1 ? std::atol(argv[1]) : 2259371;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 50;
  std::vector<float> values(static_cast<std::size_t>(count), 1.0f);
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    times.push_back(MPI_Wtime() - start);
  }
  std::sort(times.begin(), times.end());
  if (rank == 0) {
    std::printf(
        "allreduce of %ld floats (%.1f MB) over %d processes: min %.2f ms, median %.2f ms "
        "(%d reps)\n",
        count, 4e-6 * static_cast<double>(count), size, 1e3 * times.front(),
        1e3 * times[times.size() / 2], reps);
  }
  MPI_Finalize();
  return 0;
}
