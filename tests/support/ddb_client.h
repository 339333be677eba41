// A dynamo::Client for tests, pointed at the fixture's DynamoDB Local (or any endpoint), plus
// small helpers to make and drop tables. Thread-safe as Client is.
#pragma once

#include <memory>
#include <string>

#include "dynamo/client.h"

namespace dynamorph::test {

std::unique_ptr<dynamo::Client> make_client(const std::string& endpoint = {},
                                            dynamo::RetryPolicy retry = {});

// Creates an on-demand table with key PK (S) [and SK (S)] and waits until it is ACTIVE.
void create_simple_table(dynamo::Client& client, const std::string& table, bool with_sort_key = true);
void drop_table(dynamo::Client& client, const std::string& table);

// Every item of the table (consistent, paged Scan).
std::vector<dynamo::Item> scan_all(dynamo::Client& client, const std::string& table);

// Shorthands for items in tests.
dynamo::AttributeValue S(std::string s);
dynamo::AttributeValue N(std::string_view text);

}  // namespace dynamorph::test
