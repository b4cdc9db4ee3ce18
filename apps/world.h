// The processes one seqgrad command runs in. Launched by mpirun (in a build with Open MPI) they
// are the MPI job, and `seqgrad train` is data-parallel over them; otherwise this process alone.
#pragma once

#include <string>

#include "seq2seq/collective.h"

namespace seqgrad::app {

// Joins the MPI job when mpirun started this process (MPI_Init_thread, MPI_THREAD_FUNNELED:
// only the main thread calls MPI); leaves it (MPI_Finalize) when destroyed. One per process.
class World {
 public:
  World(int& argc, char**& argv);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;
};

// The group of this command's processes: the MPI job while a World has joined one, else this
// process alone.
Collective& world();

// Reports a failure on stderr; in a group of several processes as "seqgrad: error (rank R of
// N): ...", after which it ends every process of the job (MPI_Abort), so that none is left
// waiting for this one in a collective operation. Returns only in a group of one.
void report_error(const std::string& what);

}  // namespace seqgrad::app
