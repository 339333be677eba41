// libFuzzer target for the DynamoDB response codec (dynamo/requests.*, dynamo/json.*, the error
// parser of dynamo/client.*).
//
// Input: one mode byte, then the body. Mode % 10: 0 Scan/Query page, 1 BatchWriteItem,
// 2 Put/Update/Delete result, 3 GetItem, 4 BatchGetItem, 5 table description, 6 ListTables,
// 7 DescribeTimeToLive, 8 an error body (HTTP 400: __type, message, CancellationReasons),
// 9 one item in DynamoDB JSON, which must read back equal after writing it out again.
// A response parser may only throw dynamorph::Error; the error parser never throws.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/client.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/requests.h"
#include "fuzz/fuzz_support.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::dynamo;

constexpr const char* kTarget = "response_fuzz";

void check_error_body(const std::string& body) {
  HttpResponse response;
  response.status = 400;
  response.body = body;
  pad_for_parsing(response.body);
  response.request_id = "REQ";
  ServiceError e = parse_service_error("TransactWriteItems", response);
  (void)e.retryable();
  (void)e.throttling();
  (void)e.conditional_check_failed();
  (void)e.transient_cancellation();
  (void)e.clock_skew();
  if (e.to_string().find("TransactWriteItems") == std::string::npos)
    fuzz::finding(kTarget, "the error line does not name the operation");
}

void check_item_round_trip(const std::string& body) {
  Item item;
  try {
    item = parse_item(body);
  } catch (const Error&) {
    return;
  }
  std::string written;
  write_item(written, item);
  Item again;
  try {
    again = parse_item(written);
  } catch (const Error& e) {
    fuzz::finding(kTarget, std::string("a written item does not read back: ") + e.what());
  }
  if (!(again == item)) fuzz::finding(kTarget, "a written item reads back different");
}

void parse(int mode, const std::string& body) {
  try {
    switch (mode) {
      case 0: {
        Page page = parse_page(body);
        for (const Item& item : page.items) (void)item_size(item);
        break;
      }
      case 1: {
        BatchWriteResult r = parse_batch_write(body);
        std::string again;
        if (!r.unprocessed.empty()) write_batch_write(again, r.unprocessed);
        break;
      }
      case 2: (void)parse_write_result(body); break;
      case 3: (void)parse_get_item(body); break;
      case 4: (void)parse_batch_get(body, "t"); break;
      case 5: (void)parse_table_description(body); break;
      case 6: (void)parse_list_tables(body); break;
      default: (void)parse_describe_ttl(body); break;
    }
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const int mode = in.byte() % 10;
  std::string body(in.rest());
  if (mode == 8) {
    check_error_body(body);
    return 0;
  }
  pad_for_parsing(body);
  if (mode == 9) {
    check_item_round_trip(body);
  } else {
    parse(mode, body);
  }
  return 0;
}
