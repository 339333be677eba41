#include "stages/none_sink.h"

#include "stages/write_support.h"

namespace dynamorph::stages {
namespace {

class NoneSink final : public Sink {
 public:
  using Sink::Sink;
  std::unique_ptr<SinkState> make_page_state() const override {
    return make_batch_page_state(processor_);
  }
  bool sends() const override { return false; }
  void send(dynamo::Client&, WriteOp&, std::function<void(WriteAnswer)> done) const override {
    done(WriteAnswer{});  // never called by the pipeline (sends() is false); harmless if it is
  }
  Verdict classify(const WriteOp& op, const WriteAnswer&, int) const override {
    Verdict v;
    v.written = op.item_count;
    return v;
  }
};

}  // namespace

std::unique_ptr<Sink> make_none_sink(const ItemProcessor& processor) {
  return std::make_unique<NoneSink>(processor);
}

}  // namespace dynamorph::stages
