#include "dynamo/write_fence.h"

#include <array>

namespace dynamorph::dynamo {
namespace {
thread_local const RequestScope* innermost = nullptr;
}  // namespace

bool WriteFence::admit(std::int64_t now_ms) {
  if (!allows(now_ms)) {
    refused_.fetch_add(1);
    return false;
  }
  std::int64_t prev = last_write_ms_.load();
  while (prev < now_ms && !last_write_ms_.compare_exchange_weak(prev, now_ms)) {
  }
  return true;
}

bool is_write_operation(std::string_view operation) {
  static constexpr std::array<std::string_view, 9> kWrites = {
      "BatchWriteItem", "PutItem",     "UpdateItem",  "DeleteItem",       "TransactWriteItems",
      "CreateTable",    "UpdateTable", "DeleteTable", "UpdateTimeToLive"};
  for (auto w : kWrites) {
    if (operation == w) return true;
  }
  return false;
}

RequestScope::RequestScope(bool exempt,
                           std::optional<std::chrono::steady_clock::time_point> deadline)
    : exempt_(exempt), deadline_(deadline), outer_(innermost) {
  if (!deadline_ && outer_) deadline_ = outer_->deadline_;  // an inner scope keeps the bound
  innermost = this;
}

RequestScope::~RequestScope() { innermost = outer_; }

const RequestScope* RequestScope::current() { return innermost; }

}  // namespace dynamorph::dynamo
