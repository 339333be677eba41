// Lua transforms through the pipeline against DynamoDB Local: the five patterns written in Lua
// give, item for item, the table their expression versions give; a JSON string attribute
// parsed into a map on a few thousand items; fan-out of one item into three in a new table; a
// runtime error stops the run with the checkpoint covering only written pages, and the fixed
// script resumes it, each item changed exactly once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/pipeline/lua_support.h"

using namespace dynamorph;
using namespace dynamorph::test;
using pipeline::RunResult;
using ::testing::HasSubstr;

namespace {

class LuaPipeline : public ::testing::Test {
 protected:
  void SetUp() override { client_ = make_client(); }
  void TearDown() override {
    for (const auto& t : tables_) drop_table(*client_, t);
  }
  std::string table_with(const DataSet& d) {
    std::string t = unique_name("lua");
    create_simple_table(*client_, t);
    tables_.push_back(t);
    seed(*client_, t, d);
    return t;
  }
  RunResult run(const stages::StepSpec& spec, pipeline::RunOptions o = options()) {
    auto store = pipeline::null_checkpoint_store();
    return pipeline::run_pipeline(*client_, spec, *store, o);
  }

  std::unique_ptr<dynamo::Client> client_;
  std::vector<std::string> tables_;
};

struct Pattern {
  const char* name;
  std::function<void(stages::StepSpec&)> expression;  // the expression version
  std::function<void(stages::StepSpec&)> lua;         // the Lua version
};

// The same data, once through the expression step and once through the Lua step: the two
// tables must be the same item for item, and the writes the same.
TEST_F(LuaPipeline, TheFivePatternsGiveWhatTheirExpressionsGive) {
  const DataSet data = make_dataset(300);
  const std::vector<Pattern> patterns = {
      {"add a field with a default to one entity type (update mode)",
       [](stages::StepSpec& s) {
         s.names = {{"#st", "status"}};
         s.values = {{":profile", S("PROFILE")}, {":active", S("active")}};
         s.where = ex("SK = :profile");
         s.transform.push_back({ex("SET #st = if_not_exists(#st, :active)"), {}, {}});
         s.write.mode = stages::WriteMode::Update;
       },
       [](stages::StepSpec& s) {
         s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  if item.SK ~= "PROFILE" then return nil end
  item.status = item.status or "active"
  return item
end)LUA"));
         s.write.mode = stages::WriteMode::Update;
       }},
      {"lowercase usernames (batch)",
       [](stages::StepSpec& s) {
         s.values = {{":profile", S("PROFILE")}};
         s.source.page_size = 37;
         s.where = ex("SK = :profile AND username <> lower(username)");
         s.transform.push_back({ex("SET username = lower(username), migratedAt = :now"), {}, {}});
       },
       [](stages::StepSpec& s) {
         s.source.page_size = 37;
         s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  if item.SK ~= "PROFILE" or item.username == ctx.lower(item.username) then return nil end
  item.username = ctx.lower(item.username)
  item.migratedAt = ctx.now
  return item
end)LUA"));
       }},
      {"change the sort key format (delete + put, transact)",
       [](stages::StepSpec& s) {
         s.values = {{":photo", S("PHOTO#")}};
         s.source.page_size = 25;
         s.where = ex("begins_with(SK, :photo)");
         s.transform.push_back({ex("SET SK = concat('PHOTO#', to_string(epoch_ms(createdAt)), "
                                   "'#', strip_prefix(SK, 'PHOTO#'))"),
                                {},
                                {}});
         s.write.mode = stages::WriteMode::Transact;
         s.write.version_attribute = "_v";
       },
       [](stages::StepSpec& s) {
         s.source.page_size = 25;
         s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  local id = item.SK:match("^PHOTO#(.*)")
  if not id then return nil end
  item.SK = "PHOTO#" .. ctx.epoch_ms(item.createdAt) .. "#" .. id
  return item
end)LUA"));
         s.write.mode = stages::WriteMode::Transact;
         s.write.version_attribute = "_v";
       }},
      {"delete an entity type",
       [](stages::StepSpec& s) {
         s.values = {{":photo", S("PHOTO#")}};
         s.source.filter = ex("begins_with(SK, :photo)");
         s.write.mode = stages::WriteMode::Delete;
       },
       [](stages::StepSpec& s) {
         s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  if item.SK:find("^PHOTO#") then return dynamorph.delete end
  return nil
end)LUA"));
       }},
      {"createdAt if missing plus updatedAt, over many pages (update mode)",
       [](stages::StepSpec& s) {
         s.values = {{":profile", S("PROFILE")}};
         s.source.page_size = 20;
         s.where = ex("SK = :profile");
         s.transform.push_back(
             {ex("SET createdAt = if_not_exists(createdAt, :now), updatedAt = :now"), {}, {}});
         s.write.mode = stages::WriteMode::Update;
       },
       [](stages::StepSpec& s) {
         s.source.page_size = 20;
         s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  if item.SK ~= "PROFILE" then return nil end
  item.createdAt = item.createdAt or ctx.now
  item.updatedAt = ctx.now
  return item
end)LUA"));
         s.write.mode = stages::WriteMode::Update;
       }},
  };
  for (const auto& p : patterns) {
    SCOPED_TRACE(p.name);
    const std::string a = table_with(data), b = table_with(data);
    auto se = step(a);
    p.expression(se);
    auto sl = step(b);
    p.lua(sl);
    RunResult re = run(se), rl = run(sl);
    ASSERT_EQ(re.status, RunResult::Status::Done) << re.error;
    ASSERT_EQ(rl.status, RunResult::Status::Done) << rl.error;
    const auto ta = read_table(*client_, a), tb = read_table(*client_, b);
    EXPECT_NE(ta, data.items) << "the pattern changed nothing";
    expect_same(ta, tb);
    EXPECT_EQ(re.counters.written, rl.counters.written);
    EXPECT_EQ(re.counters.puts, rl.counters.puts);
    EXPECT_EQ(re.counters.updates, rl.counters.updates);
    EXPECT_EQ(re.counters.deletes, rl.counters.deletes);
  }
}

TEST_F(LuaPipeline, JsonStringParsedIntoAMapOnEveryProfile) {
  const DataSet data = dataset_with_prefs(1800);  // 1,800 profiles + 1,200 photos
  const std::string t = table_with(data);
  auto s = step(t);
  s.transform.push_back(lua_step(prefs_job_lua(), "lua/prefs.lua"));
  s.write.version_attribute = "_v";
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  EXPECT_EQ(r.counters.scanned, static_cast<std::int64_t>(data.items.size()));
  EXPECT_EQ(r.counters.written, 1800);
  expect_same(after_prefs_job(data, options().version), read_table(*client_, t));
  // Run again: every profile is at this version already, nothing is written.
  RunResult again = run(s);
  ASSERT_EQ(again.status, RunResult::Status::Done) << again.error;
  EXPECT_EQ(again.counters.written, 0);
  expect_same(after_prefs_job(data, options().version), read_table(*client_, t));
}

TEST_F(LuaPipeline, FanOutOneItemIntoThreeInANewTable) {
  const DataSet data = make_dataset(200);
  const std::string source = table_with(data);
  const std::string target = unique_name("lua_fan");
  create_simple_table(*client_, target);
  tables_.push_back(target);
  auto s = step(source);
  s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  if item.SK ~= "PROFILE" then return nil end
  local user = item.PK:sub(6)
  return dynamorph.many{
    {PK = "NAME#" .. ctx.lower(item.username), SK = item.PK},
    {PK = item.PK, SK = "VISITS", visits = item.visits},
    {PK = item.PK, SK = "PROFILE", username = item.username, user = user,
     status = item.status or dynamorph.null},
  }
end)LUA"));
  s.write.table = target;
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  std::map<std::string, Item> expected;
  int profiles = 0;
  for (const auto& [k, item] : data.items) {
    if (item.find("SK")->as<std::string>() != "PROFILE") continue;
    ++profiles;
    const std::string pk = item.find("PK")->as<std::string>();
    std::string name = item.find("username")->as<std::string>();
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::vector<Item> three = {
        Item{{"PK", S("NAME#" + name)}, {"SK", S(pk)}},
        Item{{"PK", S(pk)}, {"SK", S("VISITS")}, {"visits", *item.find("visits")}},
        Item{{"PK", S(pk)},
             {"SK", S("PROFILE")},
             {"username", *item.find("username")},
             {"user", S(pk.substr(5))},
             {"status",
              item.find("status") ? *item.find("status") : AttributeValue(dynamo::Null{})}}};
    for (auto& i : three) expected[DataSet::key_of(i)] = i;
  }
  EXPECT_EQ(r.counters.puts, 3 * profiles);
  expect_same(expected, read_table(*client_, target));
  expect_same(data.items, read_table(*client_, source));  // a copy never touches its source
}

// A script that fails on one item stops the run (exit 1 for the CLI): the message names the
// file, the line and the item's key; the checkpoint covers only pages fully written, so after
// the script is fixed the run resumes, and version_attribute keeps every change exactly once.
TEST_F(LuaPipeline, RuntimeErrorStopsThenTheFixedScriptResumes) {
  const DataSet data = dataset_with_prefs(600);
  const std::string t = table_with(data);
  const auto path = std::filesystem::temp_directory_path() / (t + ".ckpt");
  std::filesystem::remove(path);
  auto s = step(t);
  s.source.page_size = 40;
  s.write.version_attribute = "_v";
  // Fails on the last user; the other segments may write everything else before it.
  s.transform.push_back(lua_step(std::string(kLuaJsonDecoder) + R"LUA(
function transform(item, ctx)
  if item.PK == "USER#1599" then
    local broken = nil
    return broken.field
  end
  if item.SK ~= "PROFILE" then return nil end
  item.prefs = decode(item.prefs_json)
  item.prefs_json = nil
  item.visits = item.visits + 1
  return item
end
)LUA",
                                 "lua/prefs.lua"));
  auto o = options(4);
  {
    auto store = pipeline::file_checkpoint_store(path.string());
    RunResult r = pipeline::run_pipeline(*client_, s, *store, o);
    ASSERT_EQ(r.status, RunResult::Status::Failed);
    EXPECT_THAT(r.error, HasSubstr(R"(item {"PK":{"S":"USER#1599"},"SK":{"S":"PROFILE"}}: lua )"
                                   "lua/prefs.lua: lua/prefs.lua:"));
    EXPECT_THAT(r.error, HasSubstr(": attempt to index a nil value (local 'broken')"));
    EXPECT_EQ(r.error.find('\n'), std::string::npos);
  }
  // The checkpoint holds only pages whose writes all landed: items it covers are all done.
  auto cp = pipeline::file_checkpoint_store(path.string())->load();
  ASSERT_TRUE(cp);
  const auto now = read_table(*client_, t);
  const auto done = after_prefs_job(data, o.version);
  std::int64_t changed = 0;
  for (const auto& [k, item] : now) {
    if (item == done.at(k) && item.find("SK")->as<std::string>() == "PROFILE")
      ++changed;
    else
      EXPECT_EQ(item, data.items.at(k)) << k << " half done";
  }
  std::int64_t checkpointed = 0;
  for (const auto& seg : cp->segments) checkpointed += seg.counters.written;
  EXPECT_GE(changed, checkpointed);

  // Fixed: the same step resumes from the checkpoint.
  s.transform.back() = lua_step(prefs_job_lua(), "lua/prefs.lua");
  auto store = pipeline::file_checkpoint_store(path.string());
  RunResult r = pipeline::run_pipeline(*client_, s, *store, o);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(done, read_table(*client_, t));
  std::filesystem::remove(path);
}

TEST_F(LuaPipeline, AKeyChangeInUpdateModeIsRefusedPerItem) {
  const DataSet data = make_dataset(30);
  const std::string t = table_with(data);
  auto s = step(t);
  s.transform.push_back(lua_step(R"LUA(
function transform(item, ctx)
  if item.SK == "PROFILE" then item.SK = "PROFILE#2" end
  return item
end)LUA"));
  s.write.mode = stages::WriteMode::Update;
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Failed);
  EXPECT_THAT(r.error,
              HasSubstr("the transform changed its key, which mode 'update' cannot write"));
}

}  // namespace
