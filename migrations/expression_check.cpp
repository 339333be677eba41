#include "migrations/expression_check.h"

#include <fmt/format.h>

#include <cctype>
#include <set>

#include "dynamo/errors.h"
#ifdef DYNAMORPH_HAVE_EXPRESSIONS
#include "dynamo/expression.h"
#endif

namespace dynamorph::migrations {
namespace {

using Used = std::set<std::string, std::less<>>;

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Placeholder tokens (#name, :value) outside single-quoted literals; an undefined one is an
// error at its column.
void scan_placeholders(const stages::Expression& e, const stages::StepSpec& spec, Used& names,
                       Used& values) {
  const std::string& t = e.text;
  bool quoted = false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '\'') {
      quoted = !quoted;
      continue;
    }
    if (quoted || (c != '#' && c != ':')) continue;
    std::size_t j = i + 1;
    while (j < t.size() && word_char(t[j])) ++j;
    if (j == i + 1)
      throw UsageError(
          fmt::format("{}: column {}: '{}' must be followed by a name", e.label, i + 1, c));
    std::string token = t.substr(i, j - i);
    if (c == '#') {
      if (!spec.names.contains(token))
        throw UsageError(
            fmt::format("{}: column {}: {} is not defined in names", e.label, i + 1, token));
      names.insert(token);
    } else {
      if (!spec.values.contains(token))
        throw UsageError(
            fmt::format("{}: column {}: {} is not defined in values", e.label, i + 1, token));
      values.insert(token);
    }
    i = j - 1;
  }
}

}  // namespace

bool expression_engine_available() {
#ifdef DYNAMORPH_HAVE_EXPRESSIONS
  return true;
#else
  return false;
#endif
}

void check_step_expressions(stages::StepSpec& spec, const std::string& where,
                            bool now_is_automatic) {
  bool now_used = false;
#ifdef DYNAMORPH_HAVE_EXPRESSIONS
  namespace expr = dynamo::expr;
  expr::Placeholders ph{spec.names, spec.values};
  expr::PlaceholderUsage usage;
  if (!spec.source.filter.empty())
    expr::Condition::compile(spec.source.filter.text, ph, expr::Dialect::Server,
                             spec.source.filter.label, &usage);
  if (!spec.source.query_key.empty())
    expr::Condition::compile(spec.source.query_key.text, ph, expr::Dialect::Server,
                             spec.source.query_key.label, &usage);
  if (!spec.where.empty())
    expr::Condition::compile(spec.where.text, ph, expr::Dialect::Client, spec.where.label, &usage);
  for (const auto& t : spec.transform)
    if (!t.update.empty())
      expr::Update::compile(t.update.text, ph, expr::Dialect::Client, t.update.label, &usage);
  expr::Placeholders declared = ph;
  if (now_is_automatic) {
    declared.values.erase(":now");
    expr::Placeholders only_now;
    only_now.values.emplace(":now", spec.values.at(":now"));
    try {
      usage.check_all_used(only_now, where);
      now_used = true;
    } catch (const UsageError&) {
      now_used = false;  // the probe's way of saying ":now" was never used
    }
  }
  usage.check_all_used(declared, where);
#else
  // HOOK(expression engine): until dynamo/expression.cpp is in the build, only placeholders are
  // checked here; syntax errors surface when the pipeline compiles the step.
  Used names, values;
  auto scan = [&](const stages::Expression& e) {
    if (!e.empty()) scan_placeholders(e, spec, names, values);
  };
  scan(spec.source.filter);
  scan(spec.source.query_key);
  scan(spec.where);
  for (const auto& t : spec.transform) scan(t.update);
  now_used = values.contains(":now");
  std::vector<std::string> unused;
  for (const auto& [k, v] : spec.names)
    if (!names.contains(k)) unused.push_back(k);
  if (!unused.empty())
    throw UsageError(fmt::format("{}: names: {} not used by any expression of this step", where,
                                 fmt::join(unused, ", ")));
  for (const auto& [k, v] : spec.values)
    if (!values.contains(k) && !(now_is_automatic && k == ":now")) unused.push_back(k);
  if (!unused.empty())
    throw UsageError(fmt::format("{}: values: {} not used by any expression of this step", where,
                                 fmt::join(unused, ", ")));
#endif
  if (now_is_automatic && !now_used) spec.values.erase(":now");
}

}  // namespace dynamorph::migrations
