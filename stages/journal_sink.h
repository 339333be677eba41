// The journal as a Sink wrapper: around any write mode's sink, it records the before-image of
// every item a page's writes change (journal.h) and sends none of the page's writes before that
// record is durable. Since the pipeline saves a page's checkpoint only after its writes are
// acknowledged, no checkpoint ever covers a change without its before-image, and a crash at any
// point leaves, for every change made, its record.
//
// Per page: add() computes the records of each decision and passes the decision on; flush()
// gzips the page's records (CPU, on the TBB worker) and hands them to the journal's writer
// threads, and tags every op of the page with that pending file (WriteOp::wrapper_state). send()
// of a tagged op waits, without blocking, until the file is stored: the writer thread that
// stored it sends the op (the inner sink's send only hands it to the client). A file that cannot
// be stored fails the page's ops, and so the run, before anything of the page is written.
//
// A resumed run appends: pages are named by partition, sequence and run, and the records of the
// pages that the checkpoints do not cover yet (written before the crash, their writes perhaps
// sent) are read at start; a record the resumed run would write again, identical (same key,
// before-image and written hash), is left out.
//
// Without a store (dry runs) nothing is written: the records are built and compressed only to
// count them. Threading: the wrapper is immutable after construction, except for its writer,
// which is internally synchronized.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "stages/journal.h"
#include "stages/sink.h"

namespace dynamorph::stages {

struct JournalStats {
  std::atomic<std::int64_t> records{0};  // records made (kept or counted)
  std::atomic<std::int64_t> bytes{0};    // compressed bytes
  std::atomic<std::int64_t> files{0};
  std::atomic<std::int64_t> deduplicated{0};  // records a resumed run found written already
};

struct JournalTarget {
  std::shared_ptr<JournalStore> store;  // null: count only (dry run)
  std::string step_prefix;              // journal_step_prefix(...)
  // Pages the checkpoints cover, per partition (a resumed step); absent: none.
  std::map<int, std::int64_t> committed_pages;
  std::shared_ptr<JournalStats> stats;  // may be null
  int writer_threads = 2;
};

// The wrapper for RunOptions::wrap_sink. The wrapped sink's construction (on the planning
// thread) writes the step's manifest and reads the records of uncommitted pages; it throws
// dynamorph::Error when the store cannot be read or written.
SinkWrapper journal_sink_wrapper(JournalTarget target);

// Calls `record` with each record one decision makes (in-place steps: the scanned item is the
// before-image; a copy's target items did not exist before). The views die with the call.
void journal_records(const ItemProcessor& p, const dynamo::Item& scanned, const Decision& d,
                     const std::function<void(const JournalRecordView&)>& record);

}  // namespace dynamorph::stages
