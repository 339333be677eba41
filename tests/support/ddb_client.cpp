#include "tests/support/ddb_client.h"

#include <stdexcept>

#include "dynamo/credentials.h"
#include "tests/support/test_env.h"

namespace dynamorph::test {

std::unique_ptr<dynamo::Client> make_client(const std::string& endpoint, dynamo::RetryPolicy retry) {
  dynamo::ClientOptions o;
  o.endpoint = endpoint.empty() ? ddb_endpoint() : endpoint;
  o.region = "us-east-1";
  dynamo::CredentialSources sources;
  sources.explicit_credentials = dynamo::Credentials{"dynamorphtest", "dynamorphtest", "", std::nullopt};
  o.credentials = dynamo::default_credentials_chain(sources);
  o.retry = retry;
  return std::make_unique<dynamo::Client>(std::move(o));
}

void create_simple_table(dynamo::Client& client, const std::string& table, bool with_sort_key) {
  dynamo::CreateTableRequest r;
  r.table = table;
  r.partition_key = {"PK", dynamo::AttrType::S};
  if (with_sort_key) r.sort_key = dynamo::KeyAttribute{"SK", dynamo::AttrType::S};
  auto c = client.create_table(r);
  if (!c) throw std::runtime_error(c.error().to_string());
  auto a = client.wait_until_active(table, std::chrono::seconds(60));
  if (!a) throw std::runtime_error(a.error().to_string());
}

void drop_table(dynamo::Client& client, const std::string& table) {
  auto r = client.delete_table(table);
  (void)r;  // absent already is fine
}

std::vector<dynamo::Item> scan_all(dynamo::Client& client, const std::string& table) {
  std::vector<dynamo::Item> all;
  dynamo::ScanRequest r;
  r.table = table;
  r.consistent_read = true;
  while (true) {
    auto p = client.scan(r);
    if (!p) throw std::runtime_error(p.error().to_string());
    for (auto& i : p.value().items) all.push_back(std::move(i));
    if (!p.value().last_evaluated_key) break;
    r.exclusive_start_key = std::move(p.value().last_evaluated_key);
  }
  return all;
}

dynamo::AttributeValue S(std::string s) { return dynamo::AttributeValue(std::move(s)); }
dynamo::AttributeValue N(std::string_view text) { return dynamo::AttributeValue::number(text); }

}  // namespace dynamorph::test
