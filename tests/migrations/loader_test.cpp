// Migration file and dynamorph.yaml loading: types, defaults, namespaces and file:line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dynamo/errors.h"
#include "migrations/checksum.h"
#include "migrations/config.h"
#include "migrations/migration_file.h"
#include "migrations/run_settings.h"

namespace dynamorph::migrations {
namespace {

LoadOptions opts() { return LoadOptions{"ns-", "2026-11-22T10:15:00.000Z", {}}; }

Migration parse(const std::string& text, const std::string& file = "7_x.yaml") {
  return parse_migration(text, "migrations/" + file, file, opts());
}

std::string error_of(const std::string& text, const std::string& file = "7_x.yaml") {
  try {
    parse(text, file);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Loader, FullFile) {
  auto m = parse(R"Y(version: 7
name: normalize
up:
  - create_table:
      table: posts
      partition_key: id:string
      sort_key: created_at:number
      billing: { read: 5, write: 5 }
      gsi:
        - { partition_key: updated_at:string }
      lsi:
        - { sort_key: title:S, projection: keys_only }
      ttl: expires_at
      stream: new_and_old_images
  - add_gsi: { table: posts, name: by_author, partition_key: author:string, projection: [a, b] }
  - delete_gsi: { table: posts, name: by_author }
  - update_ttl: { table: posts, attribute: exp }
  - delete_table: { table: old_posts }
  - pipeline:
      values: { ":user": "USER#", ":n": 5, ":t": true, ":typed": {N: "5.50"}, ":ss": {SS: [a, b]}, ":b": {B: aGVsbG8=}, ":l": [1, x], ":q": "42" }
      names: { "#n": name }
      source: { table: app, segments: 4, filter: "begins_with(PK, :user)", page_size: 100 }
      where: "#n <> :q AND a = :n AND b = :t AND c = :typed AND d = :ss AND e = :b AND f = :l"
      transform:
        - update: "SET migratedAt = :now"
      write: { mode: update, guard: unchanged, version_attribute: _v }
down:
  - delete_table: { table: posts }
)Y");
  EXPECT_EQ(m.version, 7);
  EXPECT_EQ(m.name, "normalize");
  EXPECT_EQ(m.checksum.size(), 64u);
  ASSERT_EQ(m.up.size(), 6u);
  const auto& ct = std::get<CreateTableStep>(m.up[0].body);
  EXPECT_EQ(ct.request.table, "ns-posts");
  EXPECT_EQ(ct.request.sort_key->type, dynamo::AttrType::N);
  EXPECT_EQ(ct.request.global_indexes.at(0).name, "updated_at-index");
  EXPECT_EQ(ct.request.global_indexes.at(0).throughput->read, 5);
  EXPECT_EQ(ct.request.local_indexes.at(0).name, "title-index");
  EXPECT_EQ(ct.request.local_indexes.at(0).partition_key.name, "id");
  EXPECT_EQ(*ct.ttl_attribute, "expires_at");
  EXPECT_EQ(*ct.request.stream_view_type, "NEW_AND_OLD_IMAGES");
  EXPECT_EQ(m.up[0].where, "migrations/7_x.yaml:4");
  const auto& gsi = std::get<AddGsiStep>(m.up[1].body);
  EXPECT_EQ(gsi.index.projection.kind, dynamo::Projection::Kind::Include);
  const auto& p = std::get<PipelineStep>(m.up[5].body).spec;
  EXPECT_EQ(p.source.table, "ns-app");
  EXPECT_EQ(p.source.segments, 4);
  EXPECT_EQ(p.values.at(":user").as<std::string>(), "USER#");
  EXPECT_EQ(p.values.at(":n").as<dynamo::Number>().text(), "5");
  EXPECT_EQ(p.values.at(":q").as<std::string>(), "42");
  EXPECT_TRUE(p.values.at(":t").as<bool>());
  EXPECT_EQ(p.values.at(":typed").as<dynamo::Number>().text(), "5.5");
  EXPECT_EQ(p.values.at(":ss").type(), dynamo::AttrType::SS);
  EXPECT_EQ(p.values.at(":b").as<dynamo::Binary>().bytes, "hello");
  EXPECT_EQ(p.values.at(":l").type(), dynamo::AttrType::L);
  EXPECT_EQ(p.values.at(":now").as<std::string>(), "2026-11-22T10:15:00.000Z");
  EXPECT_EQ(p.where.label, "migrations/7_x.yaml:23: where");
  EXPECT_EQ(p.write.mode, stages::WriteMode::Update);
  EXPECT_EQ(p.write.guard, stages::Guard::Unchanged);
  ASSERT_TRUE(m.down);
  EXPECT_EQ(m.down->size(), 1u);
}

TEST(Loader, PlainScalarsThatAreNotNumbersStayStrings) {
  auto m = parse(
      "version: 7\nup:\n  - pipeline:\n      values: { \":d\": 2024-01-01, \":h\": 0x1F, \":e\": "
      "1e3, \":z\": ~ }\n"
      "      source: { table: t }\n      where: \"a = :d AND b = :h AND c = :e AND d = :z\"\n");
  const auto& v = std::get<PipelineStep>(m.up[0].body).spec.values;
  EXPECT_EQ(v.at(":d").as<std::string>(), "2024-01-01");
  EXPECT_EQ(v.at(":h").as<std::string>(), "0x1F");
  EXPECT_EQ(v.at(":e").type(), dynamo::AttrType::N);
  EXPECT_EQ(v.at(":z").type(), dynamo::AttrType::NUL);
  auto e = error_of(
      "version: 7\nup:\n  - pipeline:\n      values: { \":big\": "
      "123456789012345678901234567890123456789012 }\n"
      "      source: { table: t }\n      where: \"a = :big\"\n");
  EXPECT_EQ(e.rfind("migrations/7_x.yaml:4: '1234", 0), 0u) << e;
}

TEST(Loader, NowOnlyWhenUsed) {
  auto m =
      parse("version: 7\nup:\n  - pipeline:\n      source: { table: t }\n      where: \"a = b\"\n");
  EXPECT_FALSE(std::get<PipelineStep>(m.up[0].body).spec.values.contains(":now"));
  EXPECT_EQ(m.name, "x");
  EXPECT_FALSE(m.down);
}

constexpr const char* kOrders = R"Y(version: 7
name: orders
schema:
  description: Orders become their own entity, under their user
  entities:
    - name: Order
      table: app
      keys: { PK: "USER#<user_id>", SK: "ORDER#<created_at>#<order_id>" }
      attributes: { user_id: string, order_id: string, created_at: S, total: number, lines: list }
    - name: OrderByStatus
      description: the orders of one status, newest first
      keys: { GSI1PK: "STATUS#<status>", GSI1SK: "<created_at>" }
      attributes: { status: string, created_at: string }
down: []
)Y";

TEST(Loader, SchemaBlockWithoutStepsIsAVersion) {
  auto m = parse(kOrders);
  EXPECT_TRUE(m.up.empty());
  ASSERT_TRUE(m.down);
  EXPECT_TRUE(m.down->empty());
  ASSERT_TRUE(m.schema);
  EXPECT_EQ(m.schema->description, "Orders become their own entity, under their user");
  ASSERT_EQ(m.schema->entities.size(), 2u);
  const auto& order = m.schema->entities[0];
  EXPECT_EQ(order.name, "Order");
  EXPECT_EQ(order.table, "app");  // as written: it documents the model, not a deployment
  using KV = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(order.keys, (KV{{"PK", "USER#<user_id>"}, {"SK", "ORDER#<created_at>#<order_id>"}}));
  ASSERT_EQ(order.attributes.size(), 5u);
  EXPECT_EQ(order.attributes[2], std::make_pair(std::string("created_at"), dynamo::AttrType::S));
  EXPECT_EQ(order.attributes[4].second, dynamo::AttrType::L);
  EXPECT_EQ(m.schema->entities[1].description, "the orders of one status, newest first");
  EXPECT_EQ(m.schema->entities[1].table, "");
  // With steps as well.
  std::string with_step = kOrders;
  with_step.replace(with_step.find("down: []"), 8, "up:\n  - delete_table: { table: t }\n");
  auto both = parse(with_step);
  EXPECT_EQ(both.up.size(), 1u);
  EXPECT_TRUE(both.schema);
  EXPECT_FALSE(parse("version: 7\nup:\n  - delete_table: { table: t }\n").schema);
}

TEST(Loader, DownIrreversible) {
  const std::string up = "version: 7\nup:\n  - delete_table: { table: t }\n";
  auto declared = parse(up + "down: irreversible\n");
  EXPECT_TRUE(declared.irreversible);
  EXPECT_FALSE(declared.down);
  auto nothing = parse(up + "down: []\n");
  EXPECT_FALSE(nothing.irreversible);
  ASSERT_TRUE(nothing.down);
  EXPECT_TRUE(nothing.down->empty());
  EXPECT_FALSE(parse(up).irreversible);
  EXPECT_EQ(error_of(up + "down: irreversable\n"),
            "migrations/7_x.yaml:4: down: expected a list of steps, [] (nothing to undo) or "
            "irreversible, got 'irreversable'");
}

TEST(Loader, SchemaErrorsNameFileAndLine) {
  auto with = [](const std::string& entity) {
    return error_of("version: 7\nschema:\n  entities:\n    - " + entity + "\n");
  };
  EXPECT_EQ(with("{ name: A, keys: { PK: \"U#<id>\" }, attributes: { id: text } }"),
            "migrations/7_x.yaml:4: entity A.attributes.id: unknown type 'text' (string number "
            "binary boolean null map list string_set number_set binary_set, or S N B …)");
  EXPECT_EQ(with("{ name: A, keys: { PK: \"U#<id>\" } }"),
            "migrations/7_x.yaml:4: entity A.keys.PK: <id> is not among the entity's attributes");
  EXPECT_EQ(with("{ name: A, keys: { PK: \"U#<id\" }, attributes: { id: S } }"),
            "migrations/7_x.yaml:4: entity A.keys.PK: '<' at 3 is not closed by '>'");
  EXPECT_EQ(with("{ name: A, keys: { PK: \"U#<>\" } }"),
            "migrations/7_x.yaml:4: entity A.keys.PK: '<>' at 3 names no attribute");
  EXPECT_EQ(with("{ name: A, attributes: { id: S } }"),
            "migrations/7_x.yaml:4: entity A: 'keys' is required (attribute: pattern)");
  EXPECT_EQ(with("{ name: A, keys: { PK: x }, indexes: {} }"),
            "migrations/7_x.yaml:4: unknown key 'indexes' in schema.entities[0] (expected one of: "
            "attributes, description, keys, name, table)");
  EXPECT_EQ(with("{ keys: { PK: x } }"),
            "migrations/7_x.yaml:4: schema.entities[0]: 'name' is required");
  EXPECT_EQ(error_of("version: 7\nschema:\n  entities:\n    - { name: A, keys: { PK: x } }\n"
                     "    - { name: A, keys: { PK: y } }\n"),
            "migrations/7_x.yaml:5: schema: entity A is described twice");
  EXPECT_EQ(error_of("version: 7\nschema:\n  entities: []\n"),
            "migrations/7_x.yaml:3: schema.entities: expected a list of at least one entity");
  EXPECT_EQ(error_of("version: 7\nschema:\n  models: []\n"),
            "migrations/7_x.yaml:3: unknown key 'models' in schema (expected one of: description, "
            "entities)");
  EXPECT_EQ(error_of("version: 7\nschema: orders\n"),
            "migrations/7_x.yaml:2: schema: expected a map with description and entities");
}

TEST(Loader, SuggestsTheNearestKeyAndChecksNames) {
  EXPECT_EQ(error_of("version: 7\nup:\n  - pipeline:\n      source: { table: app }\n"
                     "      trasnform: []\n"),
            "migrations/7_x.yaml:5: unknown key 'trasnform' in pipeline (did you mean "
            "'transform'? expected one of: max_item_errors, names, on_item_error, source, "
            "transform, values, where, write)");
  const std::string long_name(253, 'x');  // 256 characters with the namespace "ns-"
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: " + long_name + " }\n"),
            "migrations/7_x.yaml:3: delete_table.table: 'ns-" + long_name +
                "' (with the namespace) is 256 characters long; a table name has 3 to 255");
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: \"my table\" }\n"),
            "migrations/7_x.yaml:3: delete_table.table: 'ns-my table' (with the namespace) has "
            "' '; a table name has only letters, digits, '_', '-' and '.'");
  EXPECT_EQ(error_of("version: 7\nup:\n  - add_gsi: { table: app, name: \"by/email\", "
                     "partition_key: email:string }\n"),
            "migrations/7_x.yaml:3: add_gsi.name: 'by/email' has '/'; an index name has only "
            "letters, digits, '_', '-' and '.'");
}

TEST(Loader, ErrorsNameFileAndLine) {
  EXPECT_EQ(error_of("version: 7\nup:\n  - create_table: { table: t, partition_key: id:strin }\n"),
            "migrations/7_x.yaml:3: partition_key: key type must be string, number or binary (S, "
            "N, B), got 'strin'");
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: t }\nbogus: 1\n"),
            "migrations/7_x.yaml:4: unknown key 'bogus' in a migration file (expected one of: "
            "description, down, "
            "max_rcu, max_wcu, name, schema, segments, up, version)");
  EXPECT_EQ(error_of("version: 8\nup:\n  - delete_table: { table: t }\n"),
            "migrations/7_x.yaml:1: version: 8 does not match the file name's 7");
  EXPECT_EQ(error_of("version: 7\nup: []\n"),
            "migrations/7_x.yaml:2: up: a migration needs at least one step");
  EXPECT_EQ(error_of("version: 7\nup:\n  - drop_table: { table: t }\n"),
            "migrations/7_x.yaml:3: unknown key 'drop_table' in a step (expected one of: add_gsi, "
            "create_table, "
            "delete_gsi, delete_table, enable_stream, pipeline, update_ttl)");
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: t }\n  - delete_table: [\n"),
            error_of("version: 7\nup:\n  - delete_table: { table: t }\n  - delete_table: [\n"));
  EXPECT_NE(error_of("version: 7\nup:\n  - delete_table: { table: t }\n  - delete_table: [\n")
                .find("migrations/7_x.yaml:"),
            std::string::npos);
  auto unused = error_of(
      "version: 7\nup:\n  - pipeline:\n      values: { \":x\": 1 }\n      source: { table: t }\n   "
      "   where: \"a = b\"\n");
  EXPECT_EQ(unused.rfind("migrations/7_x.yaml:3: values: ", 0), 0u) << unused;
  EXPECT_NE(unused.find(":x"), std::string::npos) << unused;
  EXPECT_EQ(error_of("version: 7\nup:\n  - pipeline:\n      source: { table: t }\n      write: { "
                     "mode: batch, guard: unchanged }\n"),
            "migrations/7_x.yaml:5: guard: unchanged is not possible with mode: batch (use update "
            "or transact)");
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: t }\ndown:\n  - pipeline:\n      "
                     "source: { table: t }\n"
                     "      write: { mode: update, version_attribute: _v }\n")
                .substr(0, 58),
            "migrations/7_x.yaml:7: version_attribute: not available in");
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: t }\n", "x.yaml"),
            "migrations/x.yaml: the file name must be <version>_<name>.yaml");
  EXPECT_EQ(error_of("version: 7\nversion: 7\nup:\n  - delete_table: { table: t }\n"),
            "migrations/7_x.yaml:2: 'version' appears twice");
  EXPECT_EQ(error_of("version: 7\nup:\n  - pipeline:\n      values: { \":n\": {N: \"abc\"} }\n     "
                     " source: { table: t }\n      where: \"a = :n\"\n")
                .substr(0, 47),
            "migrations/7_x.yaml:4: N: 'abc' is not a Dynamo");
}

// yaml-cpp's own words ("illegal map value") explained from the text around the error.
TEST(Loader, YamlSyntaxErrorsExplained) {
  const std::string head = "version: 7\nup:\n  - pipeline:\n      source: { table: t }\n";
  EXPECT_EQ(error_of("version: 7\nup:\n\t- delete_table: { table: t }\n"),
            "migrations/7_x.yaml:3:2: YAML forbids tabs in indentation: line 3 column 1 has a "
            "tab; indent with spaces (yaml-cpp: illegal block entry)");
  EXPECT_EQ(error_of(head + "      where: \"a = b\n      transform:\n        - update: \"SET a = "
                            "1\"\n"),
            "migrations/7_x.yaml:7:20: the double quote opened at line 5 column 14 is closed only "
            "on line 7, so YAML reads the lines between as one string; close it on line 5 "
            "(yaml-cpp: end of map not found)");
  EXPECT_EQ(error_of(head + "      where: 'a = b\n      transform:\n        - update: \"SET a = "
                            "1\"\n      write: {mode: 'batch'}\n"),
            "migrations/7_x.yaml:8:22: the single quote opened at line 5 column 14 is closed only "
            "on line 8, so YAML reads the lines between as one string; close it on line 5 "
            "(yaml-cpp: end of map not found)");
  EXPECT_EQ(error_of(head + "      values: [1, 2\n      where: x\n"),
            "migrations/7_x.yaml:6:12: the '[' opened at line 5 column 15 is never closed with ']' "
            "(yaml-cpp: end of sequence flow not found)");
  EXPECT_EQ(error_of(head + "      names: {#n: name}\n      where: x\n"),
            "migrations/7_x.yaml:7:1: the '{' opened at line 5 column 14 is never closed: the '#' "
            "at line 5 column 15 starts a comment that hides the rest of the line; quote names "
            "like \"#n\" (yaml-cpp: end of map flow not found)");
  EXPECT_EQ(error_of(head + "      transform:\n        - update: SET a = b, c: 1\n"),
            "migrations/7_x.yaml:6:31: line 6: the value of 'update' contains ': ', which YAML "
            "reads as a nested key; quote the whole value: update: \"SET a = b, c: 1\" "
            "(yaml-cpp: illegal map value)");
  EXPECT_EQ(error_of(head + "      where: @x = 1\n"),
            "migrations/7_x.yaml:5:14: line 5 column 14: a plain value cannot start with '@' "
            "(YAML reserves it); quote it: where: \"@x = 1\" (yaml-cpp: unknown token)");
  EXPECT_EQ(error_of(head + "      where: `x` = 1\n"),
            "migrations/7_x.yaml:5:14: line 5 column 14: a plain value cannot start with '`' "
            "(YAML reserves it); quote it: where: \"`x` = 1\" (yaml-cpp: unknown token)");
  EXPECT_EQ(error_of(head + "      where: %x = 1\n"),
            "migrations/7_x.yaml:5:14: line 5 column 14: a plain value cannot start with '%' "
            "(YAML reads it as a directive); quote it: where: \"%x = 1\" (yaml-cpp: unknown "
            "token)");
  EXPECT_EQ(error_of(head + "      values: { \":p\": *p }\n      where: \"a = :p\"\n"),
            "migrations/7_x.yaml:5:23: line 5 column 23: a plain value cannot start with '*' "
            "(YAML reads it as an alias); quote it: \"*p\" (yaml-cpp: the referenced anchor is "
            "not defined)");
  EXPECT_EQ(error_of(head + "      where: !attribute_exists(x)\n"),
            "migrations/7_x.yaml:5: line 5 column 14: a plain value cannot start with '!' (YAML "
            "reads it as a tag); quote it: where: \"!attribute_exists(x)\"");
  EXPECT_EQ(error_of(head + "      where: \"a\" = b\n"),
            "migrations/7_x.yaml:5:18: line 5: text follows the closing quote of the value of "
            "'where'; quote the whole value: where: '\"a\" = b' (yaml-cpp: end of map not found)");
  EXPECT_EQ(error_of("version: 7\nup:\n  - pipeline:\n      source:\n        table: t\n       "
                     "segments: 2\n"),
            "migrations/7_x.yaml:6:8: line 6 is indented 7 spaces, a depth no line above it uses "
            "(line 5 uses 8); indent the keys of one map, or the items of one list, by the same "
            "number of spaces (yaml-cpp: end of map not found)");
  EXPECT_EQ(error_of("version: 7\nup:\n  - delete_table: { table: t }\n   - delete_table: { "
                     "table: u }\n"),
            "migrations/7_x.yaml:4:4: line 4 is indented 3 spaces, a depth no line above it uses "
            "(line 3 uses 2); indent the keys of one map, or the items of one list, by the same "
            "number of spaces (yaml-cpp: end of sequence not found)");
  // Expressions with ':' but no ': ' are plain scalars YAML takes as they are.
  auto m = parse(head + "      where: a = :x\n      values: { \":x\": 1 }\n");
  EXPECT_EQ(m.up.size(), 1u);
  // Quotes inside a block scalar are text, not YAML quotes.
  auto b = parse(
      "version: 7\ndescription: |\n  'not closed, and {neither\n  \"is this\nup:\n  - "
      "delete_table: { table: t }\n");
  EXPECT_EQ(b.up.size(), 1u);
}

TEST(Loader, CleanupVersionAttributeIsItsOwnStep) {
  const std::string head =
      "version: 7\nup:\n  - pipeline:\n      source: { table: t, segments: 5 }\n      "
      "transform:\n        - update: \"SET a = :one\"\n      values: { \":one\": 1 }\n";
  auto m = parse(head +
                 "      write: { mode: update, version_attribute: _v, "
                 "cleanup_version_attribute: true }\n");
  ASSERT_EQ(m.up.size(), 2u);
  const auto& c = std::get<PipelineStep>(m.up[1].body);
  EXPECT_TRUE(c.cleanup);
  EXPECT_FALSE(std::get<PipelineStep>(m.up[0].body).cleanup);
  EXPECT_EQ(m.up[1].where, "migrations/7_x.yaml:3");
  EXPECT_EQ(m.up[1].describe(),
            "pipeline cleanup: REMOVE _v from the items of ns-t at this version");
  EXPECT_EQ(c.spec.source.table, "ns-t");
  EXPECT_EQ(c.spec.source.segments, 5);
  EXPECT_EQ(c.spec.where.text, "#cv = :cv");
  EXPECT_EQ(c.spec.source.filter.text, "#cv = :cv");
  EXPECT_EQ(c.spec.transform.at(0).update.text, "REMOVE #cv");
  EXPECT_EQ(c.spec.names.at("#cv"), "_v");
  EXPECT_EQ(c.spec.values.at(":cv").as<dynamo::Number>().text(), "7");
  EXPECT_EQ(c.spec.write.mode, stages::WriteMode::Update);
  EXPECT_EQ(c.spec.write.guard, stages::Guard::Unchanged);
  EXPECT_TRUE(c.spec.write.version_attribute.empty());
  EXPECT_EQ(parse(head + "      write: { mode: update, version_attribute: _v, "
                         "cleanup_version_attribute: false }\n")
                .up.size(),
            1u);
  EXPECT_EQ(error_of(head + "      write: { mode: update, cleanup_version_attribute: true }\n"),
            "migrations/7_x.yaml:8: cleanup_version_attribute: needs version_attribute (the "
            "attribute it removes)");
  EXPECT_EQ(error_of(head + "      write: { mode: none, version_attribute: _v, "
                            "cleanup_version_attribute: true }\n"),
            "migrations/7_x.yaml:8: cleanup_version_attribute: mode none leaves no attribute to "
            "remove");
}

TEST(Loader, FollowStream) {
  auto m = parse(R"Y(version: 7
up:
  - enable_stream: { table: app, view: new_and_old_images }
  - pipeline:
      source: { table: app, follow: stream, catch_up_lag: 2s }
      write: { table: copy }
)Y");
  ASSERT_EQ(m.up.size(), 2u);
  const auto& es = std::get<EnableStreamStep>(m.up[0].body);
  EXPECT_EQ(es.table, "ns-app");
  EXPECT_EQ(es.view, "NEW_AND_OLD_IMAGES");
  EXPECT_EQ(m.up[0].describe(), "enable_stream ns-app (NEW_AND_OLD_IMAGES)");
  const auto& spec = std::get<PipelineStep>(m.up[1].body).spec;
  EXPECT_TRUE(spec.source.follow_stream);
  EXPECT_DOUBLE_EQ(spec.source.catch_up_lag_s, 2.0);
  EXPECT_TRUE(is_follow_step(m.up[1]));
  EXPECT_EQ(m.up[1].describe(), "pipeline scan ns-app → ns-copy (batch, then follow its stream)");

  const std::string head = "version: 7\nup:\n";
  EXPECT_EQ(error_of(head + "  - enable_stream: { table: app, view: keys_only }\n"),
            "migrations/7_x.yaml:3: view: expected new_image or new_and_old_images (a copy that "
            "follows the stream needs the new image), got 'keys_only'");
  EXPECT_EQ(error_of(head + "  - pipeline:\n      source: { table: app, follow: stream }\n"),
            "migrations/7_x.yaml:4: follow: stream copies into another table (an in-place step "
            "has nothing to follow): set write.table to a new table");
  EXPECT_EQ(error_of(head + "  - pipeline:\n      source: { table: app, follow: scan }\n"
                            "      write: { table: c }\n"),
            "migrations/7_x.yaml:4: follow: expected stream, got 'scan'");
  EXPECT_EQ(error_of(head + "  - pipeline:\n      source: { table: app, follow: stream, query: "
                            "{ key: \"PK = :p\" } }\n      values: { \":p\": x }\n"
                            "      write: { table: c }\n"),
            "migrations/7_x.yaml:4: follow: stream backfills with a scan of the table; not with "
            "export, query or index");
  EXPECT_EQ(error_of(head + "  - pipeline:\n      source: { table: app, catch_up_lag: 5s }\n"),
            "migrations/7_x.yaml:4: catch_up_lag: only with follow: stream");
  const std::string step =
      "  - pipeline:\n      source: { table: app, follow: stream }\n      write: { table: c }\n";
  EXPECT_EQ(error_of(head + step + step),
            "migrations/7_x.yaml:3: up: at most one step of a version may follow: stream "
            "(`follow` replays it until cut-over)");
  EXPECT_EQ(error_of(head + "  - delete_table: { table: t }\ndown:\n" + step),
            "migrations/7_x.yaml:6: follow: not available in down steps");
}

TEST(Loader, UndefinedPlaceholderHasColumn) {
  auto e = error_of(
      "version: 7\nup:\n  - pipeline:\n      source: { table: t }\n      where: \"a = "
      ":missing\"\n");
  EXPECT_EQ(e.rfind("migrations/7_x.yaml:5: where: column 5:", 0), 0u) << e;
}

TEST(Checksum, LineEndingsDoNotMatter) {
  EXPECT_EQ(checksum("a\r\nb\r\n"), checksum("a\nb\n"));
  EXPECT_NE(checksum("a\nb\n"), checksum("a\nc\n"));
  EXPECT_EQ(checksum(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Config, OverlayAndErrors) {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / ("dynamorph_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto file = (dir / "dynamorph.yaml").string();
  std::ofstream(file) << "region: us-east-1\nnamespace: demo-dev-\nlock_ttl: 90s\n"
                         "defaults: { segments: 4, max_wcu: 10 }\n"
                         "environments:\n  prod: { region: eu-west-1, namespace: demo-prod-, "
                         "defaults: { max_wcu: 2000 } }\n";
  auto c = load_config(file, std::nullopt);
  EXPECT_EQ(c.table_namespace, "demo-dev-");
  EXPECT_EQ(c.lock_ttl, std::chrono::seconds(90));
  EXPECT_EQ(c.segments, 4);
  EXPECT_EQ(c.migrations_dir, (dir / "migrations").string());
  auto p = load_config(file, std::string("prod"));
  EXPECT_EQ(*p.region, "eu-west-1");
  EXPECT_EQ(p.table_namespace, "demo-prod-");
  EXPECT_EQ(p.max_wcu, 2000);
  EXPECT_EQ(p.segments, 4);
  try {
    load_config(file, std::string("qa"));
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), file + ":5: no environment 'qa' (defined: prod)");
  }
  std::ofstream(file) << "region: us-east-1\ndefaults:\n  segments: 4\n\tmax_wcu: 10\n";
  try {
    load_config(file, std::nullopt);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              file +
                  ":4:1: YAML forbids tabs in indentation: line 4 column 1 has a tab; indent "
                  "with spaces (yaml-cpp: illegal tab when looking for indentation)");
  }
  std::ofstream(file) << "region: us-east-1\nnamespace: \"demo-\nlock_ttl: 90s\n";
  try {
    load_config(file, std::nullopt);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              file +
                  ":2: the double quote opened at line 2 column 12 is never closed, so YAML "
                  "reads the rest of the file as one string; close it on line 2");
  }
  std::ofstream(file) << "region: us-east-1\nlock_ttl: forever\n";
  try {
    load_config(file, std::nullopt);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              file + ":2: lock_ttl: expected a duration like 30s, 5m or 1h, got 'forever'");
  }
  fs::remove_all(dir);
}

TEST(Config, SettingsOrderDefaultsOverlayFileFlags) {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / ("dynamorph_set_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto file = (dir / "dynamorph.yaml").string();
  std::ofstream(file) << "defaults: { segments: 4, max_wcu: 10, max_rcu: 20 }\n"
                         "environments:\n  prod: { defaults: { segments: 6, max_wcu: 100 } }\n";
  auto base = load_config(file, std::nullopt);
  auto prod = load_config(file, std::string("prod"));
  auto plain = parse("version: 7\nup:\n  - pipeline:\n      source: { table: t }\n");
  auto own = parse(
      "version: 7\nmax_wcu: 50\nsegments: 3\nup:\n  - pipeline:\n      source: { table: t, "
      "segments: 2 }\n");
  const auto& plain_step = std::get<PipelineStep>(plain.up[0].body).spec;
  const auto& own_step = std::get<PipelineStep>(own.up[0].body).spec;
  auto r = resolve_run_settings(base, plain, plain_step, {});
  EXPECT_EQ(r.segments, 4);
  EXPECT_EQ(r.max_wcu, 10);
  EXPECT_EQ(r.max_rcu, 20);
  r = resolve_run_settings(prod, plain, plain_step, {});
  EXPECT_EQ(r.segments, 6);
  EXPECT_EQ(r.max_wcu, 100);
  EXPECT_EQ(r.max_rcu, 20);
  r = resolve_run_settings(prod, own, own_step, {});
  EXPECT_EQ(r.segments, 2);  // the step's own, then the file's
  EXPECT_EQ(r.max_wcu, 50);
  r = resolve_run_settings(prod, own, own_step, SettingFlags{12, 0, std::nullopt});
  EXPECT_EQ(r.segments, 12);
  EXPECT_EQ(r.max_wcu, 0);  // a flag of 0 lifts the cap
  EXPECT_EQ(r.max_rcu, 20);
  fs::remove_all(dir);
}

TEST(Config, Durations) {
  EXPECT_EQ(parse_duration("1m30s"), std::chrono::seconds(90));
  EXPECT_EQ(parse_duration("500ms"), std::chrono::milliseconds(500));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("0s"));
  EXPECT_EQ(format_duration(std::chrono::minutes(5)), "5m");
}

}  // namespace
}  // namespace dynamorph::migrations
