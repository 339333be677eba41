#include "migrations/render.h"

#include <fmt/format.h>
#include <unistd.h>

#include <ostream>

#include "dynamo/redact.h"
#include "migrations/history.h"
#include "migrations/json_writer.h"
#include "migrations/lease.h"
#include "pipeline/progress.h"

namespace dynamorph::migrations {
namespace {

// "~12 s (at the dry run's read rate), 1250 RCU + 8000 WCU, $0.0052 on demand"
std::string estimate_text(const Estimate& e, double read_s) {
  std::string basis;
  if (e.limited_by == "max_wcu")
    basis = "limited by max_wcu";
  else if (e.limited_by == "max_rcu")
    basis = "limited by max_rcu";
  else
    basis = "at the measured read rate; writes are not timed in a dry run (`dynamorph bench "
            "write` measures them)";
  std::string out = fmt::format("full run ~{} ({}), {:.0f} RCU + {:.0f} WCU, ${:.4f} on demand",
                                format_seconds(e.full_run_s), basis, e.rcu, e.wcu,
                                e.cost_usd_on_demand);
  if (read_s >= 0) out += fmt::format("; the dry run read for {}", format_seconds(read_s));
  return out;
}

JsonObject estimate_json(const Estimate& e) {
  JsonObject o;
  o.integer("table_items", e.table_items)
      .number("full_run_s", e.full_run_s, 1)
      .number("rcu", e.rcu, 1)
      .number("wcu", e.wcu, 1)
      .number("cost_usd_on_demand", e.cost_usd_on_demand, 9)
      .string("limited_by", e.limited_by);
  return o;
}


using pipeline::format_counters_json;
using pipeline::format_counters_text;

JsonObject cost_json(const CheckpointCost& c) {
  JsonObject o;
  o.integer("writes", c.writes).integer("transactions", c.transactions).number("wcu", c.wcu, 1);
  return o;
}

JsonObject schema_json(const ModelSchema& s) {
  JsonArray entities;
  for (const auto& e : s.entities) {
    JsonObject keys, attributes, o;
    for (const auto& [a, pattern] : e.keys) keys.string(a, pattern);
    for (const auto& [a, type] : e.attributes) attributes.string(a, type_word(type));
    o.string("name", e.name);
    if (!e.table.empty()) o.string("table", e.table);
    if (!e.description.empty()) o.string("description", e.description);
    o.object("keys", keys).object("attributes", attributes);
    entities.object(o);
  }
  JsonObject o;
  if (!s.description.empty()) o.string("description", s.description);
  o.raw("entities", entities.str());
  return o;
}

// "Order in app (PK USER#<user_id>, SK ORDER#<order_id>)"
std::string entity_text(const SchemaEntity& e) {
  std::string keys;
  for (const auto& [a, pattern] : e.keys)
    keys += fmt::format("{}{} {}", keys.empty() ? "" : ", ", a, pattern);
  return fmt::format("{}{} ({})", e.name, e.table.empty() ? "" : " in " + e.table, keys);
}

}  // namespace

Renderer::Renderer(const GlobalOptions& options, std::ostream& out, std::ostream& err)
    : options_(options), out_(out), err_(err) {}

void Renderer::info(const std::string& line) {
  if (options_.verbosity >= 0 && !options_.json) out_ << dynamo::redact(line) << "\n" << std::flush;
}

void Renderer::result(const std::string& line) {
  if (!options_.json) out_ << dynamo::redact(line) << "\n" << std::flush;
}

void Renderer::detail(const std::string& line) {
  if (options_.verbosity > 0 && !options_.json) out_ << dynamo::redact(line) << "\n" << std::flush;
}

void Renderer::warning(const std::string& line) {
  err_ << "warning: " << dynamo::redact(line) << "\n";
}

std::function<void(const pipeline::ProgressEvent&)> Renderer::progress(const Migration& m) const {
  if (options_.verbosity < 0) return {};
  pipeline::ProgressStyle style;
  style.json = options_.json;
  style.tty = ::isatty(STDERR_FILENO) != 0;
  style.label = fmt::format("{} {}", m.version, m.name);
  return pipeline::make_progress_printer(style, out_, err_);
}

// ---- status -------------------------------------------------------------------------------

void Renderer::status_header() {
  if (!options_.json)
    out_ << fmt::format("{:<16} {:<28} {:<8} {:<25} {}\n", "VERSION", "NAME", "STATE", "WHEN",
                        "COUNTERS");
}

void Renderer::status_row(const StatusRow& r) {
  if (options_.json) {
    JsonObject o;
    o.integer("version", r.version)
        .string("name", r.name)
        .string("state", r.word)
        .string_or_null("when", r.when)
        .string_or_null("file", r.file)
        .string_or_null("checksum", r.checksum)
        .string_or_null("recorded_checksum", r.recorded_checksum)
        .integer("step", r.step)
        .raw("counters", format_counters_json(r.counters))
        .object("checkpoints", cost_json(r.checkpoints))
        .string("note", dynamo::redact(r.note));
    if (r.dead_letters > 0) {
      JsonObject d;
      d.integer("items", r.dead_letters).string("file", r.dead_letter_file);
      o.object("dead_letters", d);
    }
    if (r.schema) o.object("schema", schema_json(*r.schema));
    if (!r.workers.empty()) {
      JsonObject ws;
      for (const auto& [owner, share] : r.workers) {
        JsonObject w;
        w.integer("segments", share.segments)
            .integer("scanned", share.scanned)
            .integer("written", share.written);
        ws.object(owner, w);
      }
      o.object("workers", ws);
    }
    if (r.follow) {
      JsonObject f;
      f.integer("step", r.follow->step).integer("applied", r.follow->applied);
      if (r.follow->lag_s)
        f.number("lag_s", *r.follow->lag_s, 3);
      else
        f.null("lag_s");
      o.object("follow", f);
    }
    out_ << o.str() << "\n";
    return;
  }
  std::string counters = format_counters_text(r.counters);
  if (r.checkpoints.writes > 0) {
    std::string cp =
        fmt::format("checkpoints {} writes, {:.0f} WCU", r.checkpoints.writes, r.checkpoints.wcu);
    counters = counters == "-" ? cp : counters + "; " + cp;
  }
  if (r.follow) {
    counters += fmt::format("; follow step {}: lag {}, {} changes applied", r.follow->step,
                            r.follow->lag_s ? fmt::format("{:.1f} s", *r.follow->lag_s) : "?",
                            r.follow->applied);
  }
  std::string note = r.note;
  if (r.dead_letters > 0)
    note += fmt::format("{}{} dead letter{} in {}: after a fix, `dynamorph up --retry-dead-letters`",
                        note.empty() ? "" : "; ", r.dead_letters, r.dead_letters == 1 ? "" : "s",
                        r.dead_letter_file);
  const std::string when = r.when.value_or("");
  out_ << fmt::format("{:<16} {:<28} {:<8} {:<25} {}{}\n", r.version, r.name, r.word,
                      when.empty() ? "-" : when, counters,
                      note.empty() ? "" : "  (" + note + ")");
}

void Renderer::status_lock(const LockRecord& lock, bool expired) {
  if (!options_.json)
    out_ << fmt::format("lock: held by {}{}\n", describe_lock(lock), expired ? " (expired)" : "");
}

// ---- up and down --------------------------------------------------------------------------

void Renderer::version_start(const Migration& m, Direction direction, const VersionRecord& rec,
                             bool resumed) {
  const auto steps = steps_of(m, direction).size();
  const char* verb = direction == Direction::Up ? "applying" : "reverting";
  if (!resumed)
    info(fmt::format("{} {} {} ({})", verb, m.version, m.name, m.file));
  else if (rec.step >= static_cast<int>(steps))
    info(fmt::format("finishing {} {} ({}): every step is done; clearing its checkpoints",
                     m.version, m.name, m.file));
  else
    info(fmt::format("{} {} {} ({}): resuming at step {} of {}", verb, m.version, m.name, m.file,
                     rec.step + 1, steps));
  if (m.schema)
    for (const auto& e : m.schema->entities) info(fmt::format("  schema: {}", entity_text(e)));
  if (options_.json) {
    JsonObject o;
    o.string("event", "version_start")
        .integer("version", m.version)
        .string("name", m.name)
        .string("direction", to_string(direction))
        .integer("step", rec.step);
    out_ << o.str() << "\n";
  }
}

void Renderer::step_start(std::size_t index, std::size_t count, const Step& step) {
  info(fmt::format("  step {}/{}: {}", index + 1, count, step.describe()));
}

void Renderer::version_done(const Migration& m, Direction direction, const VersionRecord& rec) {
  result(fmt::format("  {} {} {}", direction == Direction::Up ? "applied" : "reverted", m.version,
                     m.name));
  if (options_.json) {
    JsonObject o;
    o.string("event", "version_done")
        .integer("version", m.version)
        .string("direction", to_string(direction))
        .raw("counters", format_counters_json(rec.counters));
    out_ << o.str() << "\n";
  }
}

// ---- dry runs -----------------------------------------------------------------------------

std::ostream& Renderer::plan_text() {
  if (options_.json) {
    discard_.str({});
    return discard_;
  }
  return out_;
}

void Renderer::dry_run_empty() { plan_text() << "dry run: nothing to do\n"; }

void Renderer::dry_run_version(const Migration& m, Direction direction) {
  plan_text() << fmt::format("dry run: would {} {} {} ({})\n",
                             direction == Direction::Up ? "apply" : "revert", m.version, m.name,
                             m.file);
}

void Renderer::dry_run_step_start(std::size_t index, std::size_t count, const Step& step) {
  plan_text() << fmt::format("  step {}/{}: {} ({})\n", index + 1, count, step.describe(),
                             step.where);
}

void Renderer::dry_run_schema(const ModelSchema& schema) {
  for (const auto& e : schema.entities)
    plan_text() << fmt::format("  schema: {}\n", entity_text(e));
}

void Renderer::dry_run_note(const std::string& line) { plan_text() << "    " << line << "\n"; }

void Renderer::dry_run_warning(const std::string& line) {
  plan_text() << "    warning: " << line << "\n";
}

void Renderer::dry_run_step(const DryRunStep& d) {
  const auto& c = d.counters;
  const auto& cp = d.checkpoints;
  std::ostream& text = plan_text();
  text << fmt::format("    scanned {}, matched {}\n", c.scanned, c.matched);
  std::string indexes;
  for (const auto& [name, wcu] : d.index_wcu)
    indexes += fmt::format("{}{} {:.0f}", indexes.empty() ? " (of which global indexes: " : ", ",
                           name, wcu);
  if (!indexes.empty()) indexes += ")";
  text << fmt::format(
      "    would write: {} puts, {} updates, {} deletes, {} transactions; estimated {:.0f} "
      "WCU{} by DynamoDB's metering rules\n",
      c.puts, c.updates, c.deletes, c.transactions, d.estimated_wcu, indexes);
  text << fmt::format(
      "    checkpoints: at most {} writes (one per page, fewer when pages come faster than "
      "one per segment per second) and {} deletes when done; at most {:.0f} WCU\n",
      cp.writes, cp.deletes, cp.wcu);
  if (d.sampled) {
    const auto& sm = *d.sampled;
    text << fmt::format(
        "    sampled {} of {} segments ({:g}%, {} items read): the counts above are extrapolated "
        "to the whole table; scanned {:.0f} ± {:.0f}, matched {:.0f} ± {:.0f} (99% interval)\n",
        sm.segments_read, sm.segments_total, sm.percent, sm.items_read, sm.scanned.value,
        sm.scanned.plus_minus,
        sm.matched.value, sm.matched.plus_minus);
  }
  text << "    estimate: " << estimate_text(d.estimate, d.read_s) << "\n";
  if (d.journal_bytes)
    text << fmt::format("    journal: about {} bytes ({} before-images, gzip)\n", *d.journal_bytes,
                        d.journal_records.value_or(0));
  for (const auto& sample : d.samples) {
    text << "    - before: " << dynamo::to_debug_string(sample.before) << "\n";
    text << "      after:  "
         << (sample.after ? dynamo::to_debug_string(*sample.after) : "(deleted)") << "\n";
  }
  if (options_.json) {
    JsonObject checkpoints;
    checkpoints.integer("max_writes", cp.writes)
        .integer("deletes", cp.deletes)
        .number("max_wcu", cp.wcu, 0);
    JsonObject o;
    o.string("event", "dry_run_step")
        .integer("version", d.version)
        .integer("step", d.index)
        .raw("counters", format_counters_json(c))
        .number("estimated_wcu", d.estimated_wcu, 0);
    JsonObject by_index;
    for (const auto& [name, wcu] : d.index_wcu) by_index.number(name, wcu, 0);
    o.object("estimated_index_wcu", by_index)
        .object("checkpoints", checkpoints)
        .object("estimate", estimate_json(d.estimate));
    if (d.sampled) {
      const auto& sm = *d.sampled;
      JsonObject sample;
      sample.integer("segments_read", sm.segments_read)
          .integer("segments_total", sm.segments_total)
          .number("percent", sm.percent, 2)
          .integer("items_read", sm.items_read)
          .number("scanned", sm.scanned.value, 0)
          .number("scanned_plus_minus", sm.scanned.plus_minus, 0)
          .number("matched", sm.matched.value, 0)
          .number("matched_plus_minus", sm.matched.plus_minus, 0);
      o.object("sample", sample);
    }
    if (d.journal_bytes) {
      JsonObject j;
      j.integer("bytes", *d.journal_bytes).integer("records", d.journal_records.value_or(0));
      o.object("journal", j);
    }
    out_ << o.str() << "\n";
  }
}

void Renderer::dry_run_total(const Estimate& total, const Prices& prices) {
  plan_text() << fmt::format(
      "dry run estimate for everything above: {}; prices: {} on demand as of {} (dynamorph.yaml "
      "pricing: to change)\n",
      estimate_text(total, -1), prices.region, prices.as_of);
  if (options_.json) {
    JsonObject o;
    o.string("event", "dry_run_estimate")
        .object("estimate", estimate_json(total))
        .string("prices_region", prices.region)
        .string("prices_as_of", prices.as_of);
    out_ << o.str() << "\n";
  }
}

void Renderer::dry_run_end(bool would_fail) {
  plan_text() << "dry run: nothing was written\n";
  // Also with --json: the exit code says it, and the reason belongs on stderr.
  if (would_fail)
    err_ << "dynamorph: dry run: the real run would be refused where the warnings above say (exit 2)\n";
}

}  // namespace dynamorph::migrations
