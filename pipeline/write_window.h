// The write requests of a run in flight: at most `capacity` at a time, sent in the order they
// came. Thread-safe.
//
// Why not a limiter_node in the flow graph. An answer comes on the client's I/O thread; through
// the graph it would wake a TBB worker to count it and to forward the next request, a few
// microseconds of work after which the worker spins and yields before it sleeps. At about 4,000
// BatchWriteItem answers per 100,000 items that was the largest share of the client's CPU. Here
// the answer's thread frees the slot and sends the next waiting request itself, and only a
// completed page goes back into the graph.
//
// A job pushed while a slot is free is sent at once, on the pushing thread. Sends never nest: a
// send that completes at once (a stopping run abandons its job, and the abandon frees the slot
// from inside the send) leaves the slot to the loop already sending, so that a queue of
// thousands drains in one loop, not in a recursion as deep as the queue.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

namespace dynamorph::pipeline {

template <class Job>
class WriteWindow {
 public:
  // `send` must not throw; it takes the slot, which release() gives back once the job is done.
  WriteWindow(std::size_t capacity, std::function<void(Job&&)> send)
      : capacity_(capacity < 1 ? 1 : capacity), send_(std::move(send)) {}

  void push(Job job) {
    std::unique_lock lock(mutex_);
    waiting_.push_back(std::move(job));
    pump(lock);
  }
  // One job is done (answered or abandoned): its slot goes to the oldest waiting job.
  void release() {
    std::unique_lock lock(mutex_);
    --in_flight_;
    pump(lock);
  }

  std::size_t in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }
  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_.size();
  }

 private:
  void pump(std::unique_lock<std::mutex>& lock) {
    if (sending_) return;  // that loop sees the slot
    sending_ = true;
    while (in_flight_ < capacity_ && !waiting_.empty()) {
      Job job = std::move(waiting_.front());
      waiting_.pop_front();
      ++in_flight_;
      lock.unlock();
      send_(std::move(job));
      lock.lock();
    }
    sending_ = false;
  }

  const std::size_t capacity_;
  const std::function<void(Job&&)> send_;
  mutable std::mutex mutex_;
  std::deque<Job> waiting_;
  std::size_t in_flight_ = 0;
  bool sending_ = false;  // a thread is in pump()'s loop
};

}  // namespace dynamorph::pipeline
