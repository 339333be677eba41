#include "stages/update_sink.h"

#include "stages/write_support.h"

namespace dynamorph::stages {
namespace {

class UpdateState final : public SinkState {
 public:
  explicit UpdateState(const ItemProcessor& p) : p_(p) {}

  void add(const dynamo::Item& scanned, Decision&& d, std::vector<WriteOp>& out,
           int round) override {
    if (d.kind == Decision::Kind::Delete) {
      out.push_back(guarded_delete(p_, scanned, round));
      return;
    }
    WriteOp op;
    op.scanned.push_back(scanned);
    op.item_count = 1;
    op.conflict_round = round;
    if (d.kind == Decision::Kind::Update) {
      dynamo::UpdateItemRequest u;
      u.table = p_.target_table();
      u.key = *p_.target_key(scanned);
      u.update = update_expression(scanned, d.new_item);
      u.condition = guard_condition(p_, scanned, false);
      op.request = UpdateWrite{std::move(u)};
      op.updates = 1;
      op.add_cost(write_cost(p_, &scanned, &d.new_item));
    } else {  // a copy into another table: the whole item
      op.add_cost(write_cost(p_, nullptr, &d.new_item));
      op.request = PutWrite{{p_.target_table(), std::move(d.new_item), {}}};
      op.puts = 1;
    }
    out.push_back(std::move(op));
  }
  void flush(std::vector<WriteOp>&) override {}

 private:
  const ItemProcessor& p_;
};

class UpdateSink final : public Sink {
 public:
  using Sink::Sink;
  std::unique_ptr<SinkState> make_page_state() const override {
    return std::make_unique<UpdateState>(processor_);
  }
  void send(dynamo::Client& client, WriteOp& op,
            std::function<void(WriteAnswer)> done) const override {
    send_write_request(client, op, std::move(done));
  }
  Verdict classify(const WriteOp& op, const WriteAnswer& a, int max_rounds) const override {
    return single_verdict(processor_, op, a, max_rounds);
  }
};

}  // namespace

std::unique_ptr<Sink> make_update_sink(const ItemProcessor& processor) {
  return std::make_unique<UpdateSink>(processor);
}

}  // namespace dynamorph::stages
