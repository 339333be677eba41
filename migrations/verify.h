// `dynamorph verify`: re-checks what a version's pipeline steps did, writing nothing. An in-place
// step is run again as a dry run: the items that still match `where` and that its transforms
// would still change (with version_attribute: those below the version) are pending. A copy reads
// the target (a parallel scan, keeping each key and a hash of its item) and then runs the step as
// a dry run, comparing what it would write with what is there: missing, different, and extra
// (target items no source item makes). Main thread; the scans run on the pipeline or on threads
// of their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "migrations/migration_file.h"
#include "migrations/step_run.h"

namespace dynamorph::migrations {

struct VerifyStep {
  std::int64_t version = 0;
  int step = 0;                                        // 1-based, in `up`
  std::string where;                                   // file:line
  bool copy = false;                                   // a write into another table
  std::string source;                                  // what was read
  std::string target;                                  // the table written
  std::int64_t checked = 0;                            // source items read
  std::int64_t pending = 0;                            // in place: still to change
  std::int64_t missing = 0, extra = 0, different = 0;  // copies
  std::vector<std::string> differences;                // the first 5: key and attribute diff
  std::int64_t issues() const { return pending + missing + extra + different; }
};

class Verifier {
 public:
  explicit Verifier(StepContext context) : ctx_(context) {}
  // One result per pipeline step of `m`'s `up`. Throws StepFailed when a step cannot be read.
  std::vector<VerifyStep> verify(const Migration& m);

 private:
  VerifyStep in_place(const Migration& m, int index, const Step& step,
                      const stages::StepSpec& spec);
  VerifyStep copy(const Migration& m, int index, const Step& step, const stages::StepSpec& spec);
  StepContext ctx_;
};

// "name: "Bob" → "bob"; tier: (absent) → "gold"": the attributes in which two items differ.
std::string attribute_diff(const dynamo::Item& before, const std::optional<dynamo::Item>& after);

}  // namespace dynamorph::migrations
