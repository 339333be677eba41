// mimalloc's settings for dynamorph's executables; linked into each executable that uses
// mimalloc (dynamorph_use_allocator in CMakeLists.txt).
//
// mimalloc returns freed memory to the OS 25 ms after it falls free. The job's memory turns
// over faster than that without being idle: a 1 MB Scan page is freed when its items are
// parsed and the next one takes the same spans a few milliseconds later, each time faulting
// them in again. Measured on the 100,000-item job: 27,000 page faults with the default, 7,500
// with a second, the ~30 MiB the job keeps touched once; about 4% of the client's CPU. Memory
// idle for a second still goes back. MIMALLOC_DECOMMIT_DELAY in the environment overrides it.
#include <mimalloc.h>

namespace {

// Before main: mimalloc reads its options lazily and keeps a default until the environment
// sets one, so this default applies unless MIMALLOC_DECOMMIT_DELAY was given.
const bool kDefaultsSet = [] {
  mi_option_set_default(mi_option_decommit_delay, 1000);
  return true;
}();

}  // namespace
