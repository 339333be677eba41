#include "migrations/history.h"

#include <fmt/format.h>

#include "migrations/errors.h"

namespace dynamorph::migrations {

const std::vector<Step>& steps_of(const Migration& m, Direction direction) {
  return direction == Direction::Up ? m.up : *m.down;
}

std::string short_sum(const std::string& checksum) { return checksum.substr(0, 12); }

History::History(std::vector<Migration> files) : files_(std::move(files)) {
  for (const auto& m : files_) by_version_[m.version] = &m;
}

const Migration* History::file(std::int64_t version) const {
  auto it = by_version_.find(version);
  return it == by_version_.end() ? nullptr : it->second;
}

void History::check(bool allow_down_in_progress, std::string_view state_table,
                    std::string_view migrations_dir,
                    const std::set<std::int64_t>& may_edit) const {
  for (const auto& [v, r] : records) {
    const Migration* m = file(v);
    if (!m)
      throw HistoryError(
          fmt::format("version {} ({}) is recorded as {} in {} but has no file in {}", v, r.name,
                      to_string(r.state), state_table, migrations_dir));
    // A failed version may be fixed (its script, say) and resumed; what ran is not applied.
    // The hint says the safe thing for each state: an applied version's edit may be accepted
    // (nothing runs again), a started one's never as applied (it has not finished).
    if (r.checksum != m->checksum && r.state == VersionState::Applied && may_edit.count(v))
      continue;
    if (r.checksum != m->checksum && r.state == VersionState::Applied)
      throw HistoryError(fmt::format(
          "{}: changed since it was applied (checksum {} → {}); restore the file, or, if the "
          "edit changes nothing that ran, record it with `dynamorph mark {} applied`",
          m->file, short_sum(r.checksum), short_sum(m->checksum), v));
    if (r.checksum != m->checksum && r.state != VersionState::Failed)
      throw HistoryError(fmt::format(
          "{}: changed since it was started (checksum {} → {}); restore the file to resume it, "
          "or run `dynamorph mark {} pending` to drop its progress and start it afresh with the "
          "new file (what it already wrote stays written)",
          m->file, short_sum(r.checksum), short_sum(m->checksum), v));
    if (!allow_down_in_progress && r.state != VersionState::Applied &&
        r.direction == Direction::Down)
      throw HistoryError(
          fmt::format("version {} ({}) stopped while being rolled back ({}); finish it with "
                      "`dynamorph down`, which resumes where it stopped",
                      v, m->file, to_string(r.state)));
  }
}

Plan History::up_plan(std::optional<std::int64_t> to) const {
  Plan plan;
  for (const auto& m : files_) {
    if (to && m.version > *to) break;
    auto r = records.find(m.version);
    if (r != records.end() && r->second.state == VersionState::Applied) continue;
    plan.push_back({&m, Direction::Up});
  }
  return plan;
}

Plan History::down_plan(std::optional<std::int64_t> to, std::optional<int> steps,
                        const std::optional<std::string>& journal) const {
  Plan plan;
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    const auto v = it->first;
    if (to && v <= *to) break;
    if (!to && static_cast<int>(plan.size()) >= steps.value_or(1)) break;
    plan.push_back({by_version_.at(v), Direction::Down});
  }
  std::vector<std::pair<const Migration*, std::string>> blockers;
  for (const auto& p : plan) {
    const Migration& m = *p.migration;
    if (m.irreversible)
      blockers.emplace_back(
          &m, fmt::format("version {} is declared irreversible (`down: irreversible`)", m.version));
    else if (!m.down && !journal)
      blockers.emplace_back(&m, fmt::format("version {} has no down steps and no journal "
                                            "(dynamorph.yaml sets no `journal:`)",
                                            m.version));
  }
  refuse_down(blockers);
  return plan;
}

void History::refuse_down(const std::vector<std::pair<const Migration*, std::string>>& blockers) {
  if (blockers.empty()) return;
  // Never "edit the file": an applied file's edit is drift, and it would not undo what ran.
  constexpr std::string_view hint =
      "undo what a version did with a new version whose up steps reverse it; give versions to "
      "come `down:` steps, or set `journal:` in dynamorph.yaml before running them";
  if (blockers.size() == 1)
    throw UsageError(fmt::format("{}: {}, so it cannot be rolled back (nothing was changed); {}",
                                 blockers[0].first->file, blockers[0].second, hint));
  std::string text =
      fmt::format("down: {} versions in the plan cannot be rolled back (nothing was changed):",
                  blockers.size());
  for (const auto& [m, why] : blockers) text += fmt::format("\n  {}: {}", m->file, why);
  text += fmt::format("\n{}", hint);
  throw UsageError(text);
}

std::int64_t History::newest_applied() const {
  std::int64_t n = -1;
  for (const auto& [v, r] : records)
    if (r.state == VersionState::Applied) n = std::max(n, v);
  return n;
}

}  // namespace dynamorph::migrations
