// The processes one training run is spread over, and the few collective operations the trainer
// needs from them (an allreduce of gradients and losses, a broadcast of the random state, a
// gather of validation results). The library knows only this interface: the seqgrad command
// implements it over MPI when built with Open MPI (apps/world.cpp), so the installed library
// needs no MPI. single_process() is the group of one, where every operation is the identity.
//
// Every operation is collective: each process of the group must call it, in the same order,
// with spans of the same length; it returns when all have.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace seqgrad {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;  // in [0, size())
  virtual int size() const = 0;
  // In place: each element becomes the sum (or the maximum) of that element over the group.
  virtual void sum(std::span<float> values) = 0;
  virtual void sum(std::span<double> values) = 0;
  virtual void max(std::span<double> values) = 0;
  // In place: every process gets rank 0's values.
  virtual void broadcast(std::span<std::uint64_t> values) = 0;
  // Every process's text, in rank order, on every process.
  virtual std::vector<std::string> gather(const std::string& mine) = 0;
  // Returns when every process has called it.
  virtual void barrier() = 0;
};

// The group of this process alone.
Collective& single_process();

}  // namespace seqgrad
