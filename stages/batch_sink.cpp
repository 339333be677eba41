#include "stages/batch_sink.h"

#include "stages/write_support.h"

namespace dynamorph::stages {
namespace {

class BatchSink final : public Sink {
 public:
  using Sink::Sink;
  std::unique_ptr<SinkState> make_page_state() const override {
    return make_batch_page_state(processor_);
  }
  void send(dynamo::Client& client, WriteOp& op,
            std::function<void(WriteAnswer)> done) const override {
    send_write_request(client, op, std::move(done));
  }
  Verdict classify(const WriteOp& op, const WriteAnswer& a, int) const override {
    return batch_verdict(processor_, op, a);
  }
};

}  // namespace

std::unique_ptr<Sink> make_batch_sink(const ItemProcessor& processor) {
  return std::make_unique<BatchSink>(processor);
}

}  // namespace dynamorph::stages
