// libFuzzer target for the DynamoDB Streams response parsers (dynamo/streams.*).
//
// Input: one mode byte, then the body. Mode % 4: 0 GetRecords, 1 DescribeStream,
// 2 GetShardIterator, 3 compare_sequence of the two lines of the body. A parser may only throw
// dynamorph::Error; compare_sequence must be a total order that agrees with the numbers the
// digit strings spell.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/streams.h"
#include "fuzz/fuzz_support.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::dynamo;

constexpr const char* kTarget = "streams_fuzz";

int sign(int x) { return (x > 0) - (x < 0); }

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// The order of two digit strings as numbers, the slow obvious way.
int numeric_order(std::string_view a, std::string_view b) {
  const auto strip = [](std::string_view s) {
    const std::size_t nz = s.find_first_not_of('0');
    return nz == std::string_view::npos ? std::string_view() : s.substr(nz);
  };
  a = strip(a);
  b = strip(b);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return sign(a.compare(b));
}

void check_sequences(fuzz::Input& in) {
  const std::string_view a = in.field('\n');
  const std::string_view b = in.field('\n');
  const int ab = sign(compare_sequence(a, b));
  if (ab != -sign(compare_sequence(b, a))) fuzz::finding(kTarget, "compare_sequence is not antisymmetric");
  if (compare_sequence(a, a) != 0) fuzz::finding(kTarget, "compare_sequence(a, a) is not 0");
  if (all_digits(a) && all_digits(b) && ab != numeric_order(a, b))
    fuzz::finding(kTarget, "compare_sequence disagrees with the numbers");
}

void parse(int mode, std::string body) {
  pad_for_parsing(body);
  try {
    if (mode == 0) {
      RecordsPage page = parse_get_records(body);
      for (const StreamRecord& r : page.records) {
        (void)to_debug_string(r.keys);
        if (r.new_image) (void)to_debug_string(*r.new_image);
        if (r.old_image) (void)to_debug_string(*r.old_image);
      }
    } else if (mode == 1) {
      auto [description, last_shard] = parse_describe_stream(body);
      for (const StreamShard& s : description.shards) (void)s.closed();
    } else {
      (void)parse_shard_iterator(body);
    }
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const int mode = in.byte() % 4;
  if (mode == 3) {
    check_sequences(in);
  } else {
    parse(mode, std::string(in.rest()));
  }
  return 0;
}
