// The write window: how many requests are in flight, in which order they go, and that a send
// which completes at once does not recurse.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/write_window.h"

namespace dynamorph::pipeline {
namespace {

TEST(WriteWindow, SendsAtMostCapacityThenOneForEachRelease) {
  std::vector<int> sent;
  WriteWindow<int> w(3, [&](int&& job) { sent.push_back(job); });
  for (int i = 0; i < 7; ++i) w.push(i);
  EXPECT_EQ(sent, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(w.in_flight(), 3u);
  EXPECT_EQ(w.waiting(), 4u);
  w.release();
  EXPECT_EQ(sent, (std::vector<int>{0, 1, 2, 3}));
  w.release();
  w.release();
  EXPECT_EQ(sent, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(w.waiting(), 1u);
  for (int i = 0; i < 4; ++i) w.release();
  EXPECT_EQ(sent, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(w.in_flight(), 0u);
  EXPECT_EQ(w.waiting(), 0u);
  w.push(7);  // a free slot: sent at once
  EXPECT_EQ(sent.back(), 7);
  EXPECT_EQ(w.in_flight(), 1u);
}

TEST(WriteWindow, ACapacityOfZeroIsOne) {
  std::vector<int> sent;
  WriteWindow<int> w(0, [&](int&& job) { sent.push_back(job); });
  w.push(1);
  w.push(2);
  EXPECT_EQ(sent, (std::vector<int>{1}));
  w.release();
  EXPECT_EQ(sent, (std::vector<int>{1, 2}));
}

// A stopping run abandons every job inside its send, which releases the slot from there: a
// queue of 200,000 drains in order, in one loop, never nesting one send in another.
TEST(WriteWindow, SendsThatCompleteAtOnceDrainInOneLoopInOrder) {
  std::vector<int> sent;
  int depth = 0, deepest = 0;
  bool abandon = false;
  WriteWindow<int>* self = nullptr;
  WriteWindow<int> w(4, [&](int&& job) {
    ++depth;
    deepest = std::max(deepest, depth);
    sent.push_back(job);
    if (abandon) self->release();
    --depth;
  });
  self = &w;
  constexpr int kJobs = 200000;
  for (int i = 0; i < kJobs; ++i) w.push(i);  // 4 in flight, the rest waiting
  EXPECT_EQ(w.waiting(), static_cast<std::size_t>(kJobs - 4));
  abandon = true;
  w.release();  // one answer: from here on every send completes at once
  ASSERT_EQ(sent.size(), static_cast<std::size_t>(kJobs));
  for (int i = 0; i < kJobs; ++i) ASSERT_EQ(sent[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(deepest, 1);
  EXPECT_EQ(w.waiting(), 0u);
  EXPECT_EQ(w.in_flight(), 3u);  // the three first sends still await their answers
}

// Pushes from several threads and answers from another, as in a run (TBB workers push, the I/O
// thread answers): every job is sent once, never more than the capacity at a time.
TEST(WriteWindow, ManyThreadsNeverExceedTheCapacityAndLoseNothing) {
  constexpr int kThreads = 4, kEach = 20000;
  constexpr std::size_t kCapacity = 16;
  std::mutex mutex;
  std::vector<int> in_flight;  // sent, not yet answered
  std::vector<int> count(kThreads * kEach, 0);
  std::atomic<std::size_t> most{0};
  WriteWindow<int> w(kCapacity, [&](int&& job) {
    std::lock_guard lock(mutex);
    in_flight.push_back(job);
    ++count[static_cast<std::size_t>(job)];
    most = std::max(most.load(), in_flight.size());
  });
  std::atomic<int> pushers_done{0};
  std::thread answerer([&] {
    int answered = 0;
    while (answered < kThreads * kEach) {
      bool got = false;
      {
        std::lock_guard lock(mutex);
        if (!in_flight.empty()) {
          in_flight.erase(in_flight.begin());
          got = true;
        }
      }
      if (got) {
        w.release();
        ++answered;
      } else {
        std::this_thread::yield();
      }
    }
  });
  std::vector<std::thread> pushers;
  for (int t = 0; t < kThreads; ++t) {
    pushers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) w.push(t * kEach + i);
      ++pushers_done;
    });
  }
  for (auto& p : pushers) p.join();
  answerer.join();
  EXPECT_EQ(pushers_done.load(), kThreads);
  EXPECT_LE(most.load(), kCapacity);
  for (int n : count) ASSERT_EQ(n, 1);
  EXPECT_EQ(w.in_flight(), 0u);
  EXPECT_EQ(w.waiting(), 0u);
}

}  // namespace
}  // namespace dynamorph::pipeline
