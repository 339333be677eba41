#include "stages/delete_sink.h"

#include "stages/write_support.h"

namespace dynamorph::stages {
namespace {

// With guard: unchanged, each delete is conditioned on the whole scanned item.
class GuardedDeleteState final : public SinkState {
 public:
  explicit GuardedDeleteState(const ItemProcessor& p) : p_(p) {}
  void add(const dynamo::Item& scanned, Decision&&, std::vector<WriteOp>& out, int round) override {
    out.push_back(guarded_delete(p_, scanned, round));
  }
  void flush(std::vector<WriteOp>&) override {}

 private:
  const ItemProcessor& p_;
};

class DeleteSink final : public Sink {
 public:
  using Sink::Sink;
  std::unique_ptr<SinkState> make_page_state() const override {
    if (processor_.guarded()) return std::make_unique<GuardedDeleteState>(processor_);
    return make_batch_page_state(processor_);
  }
  void send(dynamo::Client& client, WriteOp& op,
            std::function<void(WriteAnswer)> done) const override {
    send_write_request(client, op, std::move(done));
  }
  Verdict classify(const WriteOp& op, const WriteAnswer& a, int max_rounds) const override {
    return single_verdict(processor_, op, a, max_rounds);  // a batch never fails a condition
  }
};

}  // namespace

std::unique_ptr<Sink> make_delete_sink(const ItemProcessor& processor) {
  return std::make_unique<DeleteSink>(processor);
}

}  // namespace dynamorph::stages
