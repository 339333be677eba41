#include "stages/transact_sink.h"

#include "stages/write_support.h"

namespace dynamorph::stages {
namespace {

using dynamo::TransactAction;

// Transactions hold at most this many actions: DynamoDB allows 100, DynamoDB Local 10, and a
// small group keeps one conflict from cancelling many items' writes.
constexpr int kTransactActions = 10;

class TransactState final : public SinkState {
 public:
  explicit TransactState(const ItemProcessor& p) : p_(p) {}

  void add(const dynamo::Item& scanned, Decision&& d, std::vector<WriteOp>& out,
           int round) override {
    // Each item's actions stay in one transaction.
    std::vector<TransactAction> actions;
    int puts = 0, updates = 0, deletes = 0;
    WriteCost cost;
    auto put = [&](dynamo::Item&& item) {
      TransactAction a;
      a.kind = TransactAction::Kind::Put;
      a.table = p_.target_table();
      cost += write_cost(p_, replaced(p_, scanned, item), &item, 2);
      a.item = std::move(item);
      actions.push_back(std::move(a));
      ++puts;
    };
    auto remove_scanned = [&](const std::string& table) {
      TransactAction a;
      a.kind = TransactAction::Kind::Delete;
      a.table = table;
      a.item = p_.source_key(scanned);
      a.condition = guard_condition(p_, scanned, true);
      actions.push_back(std::move(a));
      ++deletes;
      cost += write_cost(p_, &scanned, nullptr, 2);
    };
    if (d.kind == Decision::Kind::Update) {
      TransactAction a;
      a.kind = TransactAction::Kind::Update;
      a.table = p_.target_table();
      a.item = *p_.target_key(scanned);
      a.update = update_expression(scanned, d.new_item);
      a.condition = guard_condition(p_, scanned, false);
      actions.push_back(std::move(a));
      updates = 1;
      cost = write_cost(p_, &scanned, &d.new_item, 2);
    } else if (d.kind == Decision::Kind::Delete) {
      remove_scanned(p_.source().name);
    } else {
      if (d.kind == Decision::Kind::Many) {
        for (auto& item : d.items) put(std::move(item));
      } else {
        put(std::move(d.new_item));
      }
      if (d.key_changed) remove_scanned(p_.target_table());
    }
    if (!open_.scanned.empty() &&
        (static_cast<int>(open_actions().size() + actions.size()) > kTransactActions ||
         open_.conflict_round != round)) {
      flush(out);
    }
    open_.conflict_round = round;
    auto& t = std::get<TransactWrite>(open_.request);
    int owner = static_cast<int>(open_.scanned.size());
    open_.scanned.push_back(scanned);
    for (auto& a : actions) {
      t.actions.push_back(std::move(a));
      t.action_owner.push_back(owner);
    }
    ++open_.item_count;
    open_.puts += puts;
    open_.updates += updates;
    open_.deletes += deletes;
    open_.add_cost(cost);
  }

  void flush(std::vector<WriteOp>& out) override {
    if (open_actions().empty()) return;
    out.push_back(std::move(open_));
    open_ = empty_op();
  }

 private:
  std::vector<TransactAction>& open_actions() {
    return std::get<TransactWrite>(open_.request).actions;
  }

  static WriteOp empty_op() {
    WriteOp op;
    op.request = TransactWrite{};
    return op;
  }

  const ItemProcessor& p_;
  WriteOp open_ = empty_op();
};

class TransactSink final : public Sink {
 public:
  using Sink::Sink;
  std::unique_ptr<SinkState> make_page_state() const override {
    return std::make_unique<TransactState>(processor_);
  }
  void send(dynamo::Client& client, WriteOp& op,
            std::function<void(WriteAnswer)> done) const override {
    send_write_request(client, op, std::move(done));
  }

  Verdict classify(const WriteOp& op, const WriteAnswer& a, int max_rounds) const override {
    if (!a.error) return batch_verdict(processor_, op, a);
    const auto& t = std::get<TransactWrite>(op.request);
    if (a.error->conditional_check_failed()) {
      // Re-read the items whose condition failed; the others' actions are sent again.
      std::vector<bool> conflicted(op.scanned.size(), false);
      const auto& reasons = a.error->cancellation_reasons;
      for (std::size_t i = 0; i < reasons.size() && i < t.action_owner.size(); ++i) {
        if (reasons[i] == "ConditionalCheckFailed")
          conflicted[static_cast<std::size_t>(t.action_owner[i])] = true;
      }
      Verdict v;
      WriteOp resend;
      TransactWrite again;
      resend.conflict_round = op.conflict_round;
      for (std::size_t i = 0; i < op.scanned.size(); ++i) {
        if (conflicted[i]) {
          ++v.conflicts;
          if (op.conflict_round >= max_rounds) {
            ++v.failed;
            if (v.error.empty())
              v.error = still_conflicting(processor_, op.scanned[i], op.conflict_round);
          } else {
            v.reread.push_back(static_cast<int>(i));
          }
          continue;
        }
        int owner = static_cast<int>(resend.scanned.size());
        resend.scanned.push_back(op.scanned[i]);
        ++resend.item_count;
        for (std::size_t k = 0; k < t.actions.size(); ++k) {
          if (t.action_owner[k] != static_cast<int>(i)) continue;
          again.actions.push_back(t.actions[k]);
          again.action_owner.push_back(owner);
        }
      }
      if (!again.actions.empty()) {
        resend.request = std::move(again);
        v.resend = std::move(resend);
      }
      return v;
    }
    if (a.error->transient_cancellation() && op.conflict_round < max_rounds) {
      // Cancelled for another transaction on the same item, or capacity: nothing of it was
      // applied, so the same actions go again (a new token: it is a new attempt).
      Verdict v;
      v.retries = 1;
      v.resend = op;
      ++v.resend->conflict_round;
      return v;
    }
    return batch_verdict(processor_, op, a);
  }
};

}  // namespace

std::unique_ptr<Sink> make_transact_sink(const ItemProcessor& processor) {
  return std::make_unique<TransactSink>(processor);
}

}  // namespace dynamorph::stages
