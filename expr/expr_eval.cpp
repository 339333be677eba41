#include "expr/expr_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

#include "dynamo/decimal.h"
#include "expr/expr_functions.h"

namespace dynamorph::expr::detail {
namespace {

// DynamoDB's ValidationException texts for updates that fail on an item.
constexpr std::string_view kMissingOperand =
    "The provided expression refers to an attribute that does not exist in the item";
constexpr std::string_view kWrongType =
    "An operand in the update expression has an incorrect data type";
constexpr std::string_view kInvalidPath =
    "The document path provided in the update expression is invalid for update";

// ---- numbers -----------------------------------------------------------------------------------

// A number's text split for comparison without allocation: sign, integer digits without leading
// zeros, fraction digits without trailing zeros. False for exponents or anything unusual.
struct PlainNumber {
  bool negative = false;
  std::string_view integer;
  std::string_view fraction;
  bool zero() const { return integer.empty() && fraction.empty(); }
};

bool split_plain(std::string_view s, PlainNumber& out) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) out.negative = s[i++] == '-';
  std::size_t int_begin = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  std::string_view integer = s.substr(int_begin, i - int_begin);
  std::string_view fraction;
  if (i < s.size() && s[i] == '.') {
    std::size_t f = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    fraction = s.substr(f, i - f);
  }
  if (i != s.size() || (integer.empty() && fraction.empty())) return false;
  while (!integer.empty() && integer.front() == '0') integer.remove_prefix(1);
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  out.integer = integer;
  out.fraction = fraction;
  if (out.zero()) out.negative = false;
  return true;
}

int sign_of(int c) { return (c > 0) - (c < 0); }

int compare_magnitude(const PlainNumber& a, const PlainNumber& b) {
  if (a.integer.size() != b.integer.size()) return a.integer.size() < b.integer.size() ? -1 : 1;
  if (int c = a.integer.compare(b.integer)) return sign_of(c);
  return sign_of(a.fraction.compare(b.fraction));
}

// ---- evaluation state --------------------------------------------------------------------------

enum class Failure : std::uint8_t { None, Missing, Error };

struct Env {
  Env(const Program& p, const Item& i, const EvalContext& c, bool u)
      : prog(p), item(i), ctx(c), update(u) {}
  const Program& prog;
  const Item& item;
  const EvalContext& ctx;
  bool update;  // updates report why an operand failed; conditions only see "missing"
  Failure failure = Failure::None;
  std::string message;

  void missing() {
    if (failure == Failure::None) failure = Failure::Missing;
  }
  template <class MakeMessage>
  void error(MakeMessage make) {
    if (failure == Failure::Error) return;
    failure = Failure::Error;
    if (update) message = make();
  }
  std::string failure_message() const {
    if (failure == Failure::Error) return message;
    return std::string(kMissingOperand);
  }
};

const AttributeValue* eval(Env& env, std::uint32_t index, AttributeValue& slot);

std::string_view type_word(const AttributeValue& v) { return type_tag(v.type()); }

AttributeValue integer_value(std::int64_t n) {
  return AttributeValue(Number::from_canonical(fmt::format("{}", n)));
}

// The argument's string, or nullptr after recording why not.
const std::string* string_arg(Env& env, const AttributeValue* v, Fn fn, std::size_t position) {
  if (!v) return nullptr;
  if (const auto* s = v->get_if<std::string>()) return s;
  env.error([&] {
    return fmt::format("{}() argument {} must be a string (S), got {}", function_name(fn), position,
                       type_word(*v));
  });
  return nullptr;
}

std::optional<std::int64_t> integer_arg(Env& env, const AttributeValue* v, Fn fn,
                                        std::size_t position) {
  if (!v) return std::nullopt;
  const auto* n = v->get_if<Number>();
  std::optional<std::int64_t> i = n ? n->value().to_int64() : std::nullopt;
  if (!i) {
    env.error([&] {
      return n ? fmt::format("{}() argument {} must be an integer, got {}", function_name(fn),
                             position, n->text())
               : fmt::format("{}() argument {} must be an integer (N), got {}", function_name(fn),
                             position, type_word(*v));
    });
  }
  return i;
}

std::int64_t value_size_of(const AttributeValue& v, bool& ok) {
  ok = true;
  switch (v.type()) {
    case AttrType::S: return static_cast<std::int64_t>(v.as<std::string>().size());
    case AttrType::B: return static_cast<std::int64_t>(v.as<Binary>().bytes.size());
    case AttrType::SS: return static_cast<std::int64_t>(v.as<StringSet>().size());
    case AttrType::NS: return static_cast<std::int64_t>(v.as<NumberSet>().size());
    case AttrType::BS: return static_cast<std::int64_t>(v.as<BinarySet>().size());
    case AttrType::L: return static_cast<std::int64_t>(v.as<List>().size());
    case AttrType::M: return static_cast<std::int64_t>(v.as<Map>().size());
    default: ok = false; return 0;
  }
}

const AttributeValue* call(Env& env, const OperandNode& n, AttributeValue& slot) {
  const std::uint32_t* args = env.prog.args.data() + n.ref;
  auto arg = [&](std::size_t i, AttributeValue& tmp) { return eval(env, args[i], tmp); };
  switch (n.fn) {
    case Fn::Size: {
      AttributeValue tmp;
      const AttributeValue* v = arg(0, tmp);
      if (!v) return nullptr;
      bool ok;
      std::int64_t size = value_size_of(*v, ok);
      if (!ok) {
        env.error([&] { return fmt::format("size() of a {} is not defined", type_word(*v)); });
        return nullptr;
      }
      slot = integer_value(size);
      return &slot;
    }
    case Fn::IfNotExists: {
      const OperandNode& path = env.prog.operands[args[0]];
      if (const AttributeValue* v = resolve(env.item, env.prog.paths[path.ref])) return v;
      return arg(1, slot);
    }
    case Fn::ListAppend: {
      AttributeValue a_tmp, b_tmp;
      const AttributeValue* a = arg(0, a_tmp);
      if (!a) return nullptr;
      const AttributeValue* b = arg(1, b_tmp);
      if (!b) return nullptr;
      if (!a->is<List>() || !b->is<List>()) {
        env.error([] { return std::string(kWrongType); });
        return nullptr;
      }
      List out;
      out.reserve(a->as<List>().size() + b->as<List>().size());
      out.insert(out.end(), a->as<List>().begin(), a->as<List>().end());
      out.insert(out.end(), b->as<List>().begin(), b->as<List>().end());
      slot = AttributeValue(std::move(out));
      return &slot;
    }
    case Fn::Lower:
    case Fn::Upper:
    case Fn::Trim: {
      AttributeValue tmp;
      const std::string* s = string_arg(env, arg(0, tmp), n.fn, 1);
      if (!s) return nullptr;
      std::string out;
      if (n.fn == Fn::Lower)
        append_lower(out, *s);
      else if (n.fn == Fn::Upper)
        append_upper(out, *s);
      else
        out = trim_ascii(*s);
      slot = AttributeValue(std::move(out));
      return &slot;
    }
    case Fn::Concat: {
      std::string out;
      AttributeValue tmp;
      for (std::uint32_t i = 0; i < n.count; ++i) {
        const std::string* s = string_arg(env, arg(i, tmp), n.fn, i + 1);
        if (!s) return nullptr;
        out += *s;
      }
      slot = AttributeValue(std::move(out));
      return &slot;
    }
    case Fn::Substr: {
      AttributeValue t0, t1, t2;
      const std::string* s = string_arg(env, arg(0, t0), n.fn, 1);
      if (!s) return nullptr;
      std::optional<std::int64_t> start = integer_arg(env, arg(1, t1), n.fn, 2);
      if (!start) return nullptr;
      std::optional<std::int64_t> len;
      if (n.count == 3) {
        len = integer_arg(env, arg(2, t2), n.fn, 3);
        if (!len) return nullptr;
      }
      if (*start < 1 || (len && *len < 0)) {
        env.error([&] {
          return *start < 1 ? fmt::format(
                                  "substr() start must be 1 or more (1 is the first "
                                  "character), got {}",
                                  *start)
                            : fmt::format("substr() length must not be negative, got {}", *len);
        });
        return nullptr;
      }
      std::optional<std::uint64_t> count;
      if (len) count = static_cast<std::uint64_t>(*len);
      slot = AttributeValue(
          std::string(utf8_slice(*s, static_cast<std::uint64_t>(*start - 1), count)));
      return &slot;
    }
    case Fn::Replace: {
      AttributeValue t0, t1, t2;
      const std::string* s = string_arg(env, arg(0, t0), n.fn, 1);
      if (!s) return nullptr;
      const std::string* from = string_arg(env, arg(1, t1), n.fn, 2);
      if (!from) return nullptr;
      const std::string* to = string_arg(env, arg(2, t2), n.fn, 3);
      if (!to) return nullptr;
      std::string out;
      append_replaced(out, *s, *from, *to);
      slot = AttributeValue(std::move(out));
      return &slot;
    }
    case Fn::StripPrefix: {
      AttributeValue t0, t1;
      const std::string* s = string_arg(env, arg(0, t0), n.fn, 1);
      if (!s) return nullptr;
      const std::string* p = string_arg(env, arg(1, t1), n.fn, 2);
      if (!p) return nullptr;
      std::string_view view(*s);
      if (view.substr(0, p->size()) == *p) view.remove_prefix(p->size());
      slot = AttributeValue(std::string(view));
      return &slot;
    }
    case Fn::SplitPart: {
      AttributeValue t0, t1, t2;
      const std::string* s = string_arg(env, arg(0, t0), n.fn, 1);
      if (!s) return nullptr;
      const std::string* sep = string_arg(env, arg(1, t1), n.fn, 2);
      if (!sep) return nullptr;
      std::optional<std::int64_t> field = integer_arg(env, arg(2, t2), n.fn, 3);
      if (!field) return nullptr;
      if (sep->empty() || *field == 0) {
        env.error([&] {
          return sep->empty() ? std::string("split_part(): the separator is empty")
                              : std::string(
                                    "split_part() field number must not be 0 (1 is the "
                                    "first field, -1 the last)");
        });
        return nullptr;
      }
      std::vector<std::string_view> parts;
      split_fields(parts, *s, *sep);
      auto count = static_cast<std::int64_t>(parts.size());
      std::int64_t at = *field > 0 ? *field - 1 : count + *field;
      slot = AttributeValue(at >= 0 && at < count ? std::string(parts[static_cast<std::size_t>(at)])
                                                  : std::string());
      return &slot;
    }
    case Fn::ToString: {
      AttributeValue tmp;
      const AttributeValue* v = arg(0, tmp);
      if (!v) return nullptr;
      if (v->is<std::string>()) return v == &tmp ? &(slot = std::move(tmp)) : v;
      if (const auto* num = v->get_if<Number>()) {
        slot = AttributeValue(num->value().to_string());  // canonical, whatever the item held
      } else if (const auto* b = v->get_if<bool>()) {
        slot = AttributeValue(std::string(*b ? "true" : "false"));
      } else {
        env.error([&] {
          return fmt::format("to_string() takes a string, number or boolean, got {}",
                             type_word(*v));
        });
        return nullptr;
      }
      return &slot;
    }
    case Fn::ToNumber: {
      AttributeValue tmp;
      const AttributeValue* v = arg(0, tmp);
      if (!v) return nullptr;
      if (v->is<Number>()) return v == &tmp ? &(slot = std::move(tmp)) : v;
      if (const auto* s = v->get_if<std::string>()) {
        std::string why;
        std::optional<Number> num = Number::parse(*s, &why);
        if (!num) {
          env.error([&] { return fmt::format("to_number(): {}", why); });
          return nullptr;
        }
        slot = AttributeValue(std::move(*num));
        return &slot;
      }
      env.error([&] {
        return fmt::format("to_number() takes a string or number, got {}", type_word(*v));
      });
      return nullptr;
    }
    case Fn::Now: slot = AttributeValue(env.ctx.now_iso); return &slot;
    case Fn::EpochMs: {
      AttributeValue tmp;
      const std::string* s = string_arg(env, arg(0, tmp), n.fn, 1);
      if (!s) return nullptr;
      std::optional<std::int64_t> ms = parse_epoch_ms(*s);
      if (!ms) {
        env.error([&] {
          return fmt::format("epoch_ms(): '{}' is not an ISO-8601 date or date-time", *s);
        });
        return nullptr;
      }
      slot = integer_value(*ms);
      return &slot;
    }
    case Fn::Uuid: slot = AttributeValue(make_uuid()); return &slot;
    case Fn::Ulid: slot = AttributeValue(make_ulid()); return &slot;
    case Fn::Coalesce: {
      for (std::uint32_t i = 0; i < n.count; ++i) {
        const AttributeValue* v = arg(i, slot);
        if (v && !v->is<Null>()) return v;
        if (!v && env.failure == Failure::Error) return nullptr;
        env.failure = Failure::None;  // missing or NULL: try the next one
      }
      env.missing();
      return nullptr;
    }
    default: return nullptr;  // condition functions never stand as operands
  }
}

const AttributeValue* arithmetic(Env& env, const OperandNode& n, AttributeValue& slot) {
  const std::uint32_t* args = env.prog.args.data() + n.ref;
  AttributeValue a_tmp, b_tmp;
  const AttributeValue* a = eval(env, args[0], a_tmp);
  if (!a) return nullptr;
  const AttributeValue* b = eval(env, args[1], b_tmp);
  if (!b) return nullptr;
  const auto* x = a->get_if<Number>();
  const auto* y = b->get_if<Number>();
  if (!x || !y) {
    env.error([] { return std::string(kWrongType); });
    return nullptr;
  }
  std::string why;
  std::optional<Decimal> r = n.kind == OperandKind::Plus
                                 ? Decimal::add(x->value(), y->value(), &why)
                                 : Decimal::subtract(x->value(), y->value(), &why);
  if (!r) {
    env.error([&] { return why; });
    return nullptr;
  }
  slot = AttributeValue(Number::from_decimal(*r));
  return &slot;
}

const AttributeValue* eval(Env& env, std::uint32_t index, AttributeValue& slot) {
  const OperandNode& n = env.prog.operands[index];
  switch (n.kind) {
    case OperandKind::Path: {
      const AttributeValue* v = resolve(env.item, env.prog.paths[n.ref]);
      if (!v) env.missing();
      return v;
    }
    case OperandKind::Constant: return &env.prog.constants[n.ref].value;
    case OperandKind::Call: return call(env, n, slot);
    case OperandKind::Plus:
    case OperandKind::Minus: return arithmetic(env, n, slot);
  }
  return nullptr;
}

// ---- conditions --------------------------------------------------------------------------------

bool compare(CmpOp op, const AttributeValue* l, const AttributeValue* r) {
  if (!l || !r) return op == CmpOp::Ne;
  switch (op) {
    case CmpOp::Eq: return values_equal(*l, *r);
    case CmpOp::Ne: return !values_equal(*l, *r);
    default: break;
  }
  std::optional<int> c = order_values(*l, *r);
  if (!c) return false;
  switch (op) {
    case CmpOp::Lt: return *c < 0;
    case CmpOp::Le: return *c <= 0;
    case CmpOp::Gt: return *c > 0;
    default: return *c >= 0;
  }
}

template <class T>
bool set_has(const std::vector<T>& set, const T& x) {
  return std::find(set.begin(), set.end(), x) != set.end();
}

bool contains(const AttributeValue& hay, const AttributeValue& needle) {
  switch (hay.type()) {
    case AttrType::S:
      return needle.is<std::string>() &&
             hay.as<std::string>().find(needle.as<std::string>()) != std::string::npos;
    case AttrType::B:
      return needle.is<Binary>() &&
             hay.as<Binary>().bytes.find(needle.as<Binary>().bytes) != std::string::npos;
    case AttrType::SS:
      return needle.is<std::string>() && set_has(hay.as<StringSet>(), needle.as<std::string>());
    case AttrType::BS:
      return needle.is<Binary>() && set_has(hay.as<BinarySet>(), needle.as<Binary>());
    case AttrType::NS:
      if (!needle.is<Number>()) return false;
      for (const Number& x : hay.as<NumberSet>()) {
        if (compare_numbers(x, needle.as<Number>()) == 0) return true;
      }
      return false;
    case AttrType::L:
      for (const AttributeValue& x : hay.as<List>()) {
        if (values_equal(x, needle)) return true;
      }
      return false;
    default: return false;
  }
}

bool begins_with(const AttributeValue& s, const AttributeValue& prefix) {
  if (s.is<std::string>() && prefix.is<std::string>()) {
    return std::string_view(s.as<std::string>()).substr(0, prefix.as<std::string>().size()) ==
           prefix.as<std::string>();
  }
  if (s.is<Binary>() && prefix.is<Binary>()) {
    return std::string_view(s.as<Binary>().bytes).substr(0, prefix.as<Binary>().bytes.size()) ==
           prefix.as<Binary>().bytes;
  }
  return false;
}

bool eval_condition(Env& env, std::uint32_t index) {
  const CondNode& n = env.prog.conds[index];
  switch (n.kind) {
    case CondKind::Or: return eval_condition(env, n.a) || eval_condition(env, n.b);
    case CondKind::And: return eval_condition(env, n.a) && eval_condition(env, n.b);
    case CondKind::Not: return !eval_condition(env, n.a);
    case CondKind::Compare: {
      AttributeValue ls, rs;
      const AttributeValue* l = eval(env, n.a, ls);
      const AttributeValue* r = eval(env, n.b, rs);
      return compare(n.op, l, r);
    }
    case CondKind::Between: {
      AttributeValue xs, lows, highs;
      const AttributeValue* x = eval(env, n.a, xs);
      const AttributeValue* low = eval(env, n.b, lows);
      const AttributeValue* high = eval(env, n.c, highs);
      if (!x || !low || !high) return false;
      std::optional<int> a = order_values(*low, *x);
      std::optional<int> b = order_values(*x, *high);
      return a && b && *a <= 0 && *b <= 0;
    }
    case CondKind::In: {
      AttributeValue xs, ys;
      const AttributeValue* x = eval(env, n.a, xs);
      if (!x) return false;
      for (std::uint32_t i = 0; i < n.count; ++i) {
        const AttributeValue* y = eval(env, env.prog.args[n.b + i], ys);
        if (y && values_equal(*x, *y)) return true;
      }
      return false;
    }
    case CondKind::Call: {
      const std::uint32_t* args = env.prog.args.data() + n.a;
      switch (n.fn) {
        case Fn::AttributeExists:
        case Fn::AttributeNotExists: {
          const OperandNode& p = env.prog.operands[args[0]];
          bool exists = resolve(env.item, env.prog.paths[p.ref]) != nullptr;
          return n.fn == Fn::AttributeExists ? exists : !exists;
        }
        case Fn::AttributeType: {
          AttributeValue vs, ts;
          const AttributeValue* v = eval(env, args[0], vs);
          const AttributeValue* t = eval(env, args[1], ts);
          return v && t && t->is<std::string>() && type_tag(v->type()) == t->as<std::string>();
        }
        case Fn::BeginsWith:
        case Fn::Contains: {
          AttributeValue as, bs;
          const AttributeValue* a = eval(env, args[0], as);
          const AttributeValue* b = eval(env, args[1], bs);
          if (!a || !b) return false;
          return n.fn == Fn::BeginsWith ? begins_with(*a, *b) : contains(*a, *b);
        }
        default: return false;
      }
    }
  }
  return false;
}

// ---- updates -----------------------------------------------------------------------------------

// Does the container the path's last element lives in exist, with the right kind?
bool parent_ok(const Item& item, const ResolvedPath& path) {
  const auto& e = path.elements;
  if (e.size() == 1) return true;
  const AttributeValue* parent = item.find(e[0].name);
  for (std::size_t i = 1; parent && i + 1 < e.size(); ++i) {
    if (e[i].index < 0) {
      const auto* m = parent->get_if<Map>();
      parent = m ? m->find(e[i].name) : nullptr;
    } else {
      const auto* l = parent->get_if<List>();
      parent = l && static_cast<std::size_t>(e[i].index) < l->size()
                   ? &(*l)[static_cast<std::size_t>(e[i].index)]
                   : nullptr;
    }
  }
  if (!parent) return false;
  return e.back().index < 0 ? parent->is<Map>() : parent->is<List>();
}

AttributeValue* resolve_parent_mut(Item& item, const ResolvedPath& path) {
  const auto& e = path.elements;
  AttributeValue* cur = item.find(e[0].name);
  for (std::size_t i = 1; cur && i + 1 < e.size(); ++i) {
    if (e[i].index < 0)
      cur = cur->as<Map>().find(e[i].name);
    else
      cur = &cur->as<List>()[static_cast<std::size_t>(e[i].index)];
  }
  return cur;
}

void write_at(Item& item, const ResolvedPath& path, AttributeValue value) {
  const PathElement& last = path.elements.back();
  if (path.elements.size() == 1) {
    item.set(last.name, std::move(value));
    return;
  }
  AttributeValue* parent = resolve_parent_mut(item, path);
  if (last.index < 0) {
    parent->as<Map>().set(last.name, std::move(value));
    return;
  }
  List& list = parent->as<List>();
  auto i = static_cast<std::size_t>(last.index);
  if (i < list.size())
    list[i] = std::move(value);
  else
    list.push_back(std::move(value));  // past the end appends, like DynamoDB
}

void remove_at(Item& item, const ResolvedPath& path) {
  const PathElement& last = path.elements.back();
  if (path.elements.size() == 1) {
    item.erase(last.name);
    return;
  }
  AttributeValue* parent = resolve_parent_mut(item, path);
  if (last.index < 0) {
    parent->as<Map>().erase(last.name);
    return;
  }
  List& list = parent->as<List>();
  list.erase(list.begin() + last.index);
}

int compare_paths(const ResolvedPath& a, const ResolvedPath& b) {
  std::size_t n = std::min(a.elements.size(), b.elements.size());
  for (std::size_t i = 0; i < n; ++i) {
    const PathElement& x = a.elements[i];
    const PathElement& y = b.elements[i];
    if (x.index >= 0 && y.index >= 0) {
      if (x.index != y.index) return x.index < y.index ? -1 : 1;
    } else if (x.index < 0 && y.index < 0) {
      if (int c = x.name.compare(y.name)) return c;
    } else {
      return x.index >= 0 ? -1 : 1;
    }
  }
  return a.elements.size() < b.elements.size() ? -1 : a.elements.size() > b.elements.size() ? 1 : 0;
}

template <class T, class Eq>
void set_union(std::vector<T>& into, const std::vector<T>& add, Eq eq) {
  for (const T& x : add) {
    if (std::none_of(into.begin(), into.end(), [&](const T& y) { return eq(x, y); }))
      into.push_back(x);
  }
}

template <class T, class Eq>
void set_difference(std::vector<T>& from, const std::vector<T>& remove, Eq eq) {
  from.erase(std::remove_if(from.begin(), from.end(),
                            [&](const T& y) {
                              return std::any_of(remove.begin(), remove.end(),
                                                 [&](const T& x) { return eq(x, y); });
                            }),
             from.end());
}

auto equal_numbers = [](const Number& a, const Number& b) { return compare_numbers(a, b) == 0; };
auto equal_plain = [](const auto& a, const auto& b) { return a == b; };

// ADD: the new value, or an error message.
std::optional<std::string> add_value(const AttributeValue* current, const AttributeValue& operand,
                                     AttributeValue& result) {
  AttrType t = operand.type();
  if (t != AttrType::N && t != AttrType::SS && t != AttrType::NS && t != AttrType::BS) {
    return std::string(kWrongType);
  }
  if (!current) {
    result = operand;
    return std::nullopt;
  }
  if (current->type() != t) return std::string(kWrongType);
  switch (t) {
    case AttrType::N: {
      std::string why;
      std::optional<Decimal> sum =
          Decimal::add(current->as<Number>().value(), operand.as<Number>().value(), &why);
      if (!sum) return why;
      result = AttributeValue(Number::from_decimal(*sum));
      return std::nullopt;
    }
    case AttrType::SS: {
      StringSet s = current->as<StringSet>();
      set_union(s, operand.as<StringSet>(), equal_plain);
      result = AttributeValue(std::move(s));
      return std::nullopt;
    }
    case AttrType::NS: {
      NumberSet s = current->as<NumberSet>();
      set_union(s, operand.as<NumberSet>(), equal_numbers);
      result = AttributeValue(std::move(s));
      return std::nullopt;
    }
    default: {
      BinarySet s = current->as<BinarySet>();
      set_union(s, operand.as<BinarySet>(), equal_plain);
      result = AttributeValue(std::move(s));
      return std::nullopt;
    }
  }
}

// DELETE: the remaining set (empty = remove the attribute), or an error message.
std::optional<std::string> delete_value(const AttributeValue& current,
                                        const AttributeValue& operand, AttributeValue& result,
                                        bool& now_empty) {
  AttrType t = operand.type();
  if ((t != AttrType::SS && t != AttrType::NS && t != AttrType::BS) || current.type() != t) {
    return std::string(kWrongType);
  }
  switch (t) {
    case AttrType::SS: {
      StringSet s = current.as<StringSet>();
      set_difference(s, operand.as<StringSet>(), equal_plain);
      now_empty = s.empty();
      result = AttributeValue(std::move(s));
      break;
    }
    case AttrType::NS: {
      NumberSet s = current.as<NumberSet>();
      set_difference(s, operand.as<NumberSet>(), equal_numbers);
      now_empty = s.empty();
      result = AttributeValue(std::move(s));
      break;
    }
    default: {
      BinarySet s = current.as<BinarySet>();
      set_difference(s, operand.as<BinarySet>(), equal_plain);
      now_empty = s.empty();
      result = AttributeValue(std::move(s));
      break;
    }
  }
  return std::nullopt;
}

struct Pending {
  std::uint32_t path;
  bool remove;
  AttributeValue value;
};

}  // namespace

int compare_numbers(const Number& a, const Number& b) {
  const std::string& x = a.text();
  const std::string& y = b.text();
  if (x == y) return 0;
  PlainNumber p, q;
  if (split_plain(x, p) && split_plain(y, q)) {
    if (p.negative != q.negative) return p.negative ? -1 : 1;
    int m = compare_magnitude(p, q);
    return p.negative ? -m : m;
  }
  auto c = a.value() <=> b.value();
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

bool values_equal(const AttributeValue& a, const AttributeValue& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case AttrType::S: return a.as<std::string>() == b.as<std::string>();
    case AttrType::N: return compare_numbers(a.as<Number>(), b.as<Number>()) == 0;
    case AttrType::B: return a.as<Binary>() == b.as<Binary>();
    case AttrType::BOOL: return a.as<bool>() == b.as<bool>();
    case AttrType::NUL: return true;
    case AttrType::L: {
      const List& x = a.as<List>();
      const List& y = b.as<List>();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!values_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case AttrType::M: {
      const Map& x = a.as<Map>();
      const Map& y = b.as<Map>();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const AttributeValue* w = y.find(k);
        if (!w || !values_equal(v, *w)) return false;
      }
      return true;
    }
    case AttrType::SS: {
      const StringSet& x = a.as<StringSet>();
      const StringSet& y = b.as<StringSet>();
      return x.size() == y.size() &&
             std::all_of(x.begin(), x.end(), [&](const std::string& s) { return set_has(y, s); });
    }
    case AttrType::BS: {
      const BinarySet& x = a.as<BinarySet>();
      const BinarySet& y = b.as<BinarySet>();
      return x.size() == y.size() &&
             std::all_of(x.begin(), x.end(), [&](const Binary& s) { return set_has(y, s); });
    }
    case AttrType::NS: {
      const NumberSet& x = a.as<NumberSet>();
      const NumberSet& y = b.as<NumberSet>();
      return x.size() == y.size() && std::all_of(x.begin(), x.end(), [&](const Number& n) {
               return std::any_of(y.begin(), y.end(),
                                  [&](const Number& m) { return compare_numbers(n, m) == 0; });
             });
    }
  }
  return false;
}

std::optional<int> order_values(const AttributeValue& a, const AttributeValue& b) {
  if (a.type() != b.type()) return std::nullopt;
  switch (a.type()) {
    case AttrType::N: return compare_numbers(a.as<Number>(), b.as<Number>());
    case AttrType::S: return sign_of(a.as<std::string>().compare(b.as<std::string>()));
    case AttrType::B: return sign_of(a.as<Binary>().bytes.compare(b.as<Binary>().bytes));
    default: return std::nullopt;
  }
}

const AttributeValue* resolve(const Item& item, const ResolvedPath& path) {
  const auto& e = path.elements;
  const AttributeValue* cur = item.find(e[0].name);
  for (std::size_t i = 1; cur && i < e.size(); ++i) {
    if (e[i].index < 0) {
      const auto* m = cur->get_if<Map>();
      cur = m ? m->find(e[i].name) : nullptr;
    } else {
      const auto* l = cur->get_if<List>();
      cur = l && static_cast<std::size_t>(e[i].index) < l->size()
                ? &(*l)[static_cast<std::size_t>(e[i].index)]
                : nullptr;
    }
  }
  return cur;
}

bool evaluate_condition(const ConditionProgram& program, const Item& item, const EvalContext& ctx) {
  Env env{program, item, ctx, false};
  return eval_condition(env, program.root);
}

std::optional<std::string> apply_update(const UpdateProgram& program, Item& item,
                                        const EvalContext& ctx) {
  // Phase 1 reads only: every value and every check against the item as it was.
  // DynamoDB checks every target path before it evaluates any operand.
  for (const Action& action : program.actions) {
    if (!parent_ok(item, program.paths[action.path])) return std::string(kInvalidPath);
  }
  Env env{program, item, ctx, true};
  std::vector<Pending> pending;
  pending.reserve(program.actions.size());
  for (const Action& action : program.actions) {
    const ResolvedPath& path = program.paths[action.path];
    switch (action.kind) {
      case ActionKind::Set: {
        AttributeValue slot;
        const AttributeValue* v = eval(env, action.value, slot);
        if (!v) return env.failure_message();
        pending.push_back({action.path, false, v == &slot ? std::move(slot) : *v});
        break;
      }
      case ActionKind::Remove:
        if (resolve(item, path)) pending.push_back({action.path, true, {}});
        break;
      case ActionKind::Add: {
        AttributeValue slot;
        const AttributeValue* v = eval(env, action.value, slot);
        if (!v) return env.failure_message();
        AttributeValue result;
        if (auto why = add_value(resolve(item, path), *v, result)) return why;
        pending.push_back({action.path, false, std::move(result)});
        break;
      }
      case ActionKind::Delete: {
        AttributeValue slot;
        const AttributeValue* v = eval(env, action.value, slot);
        if (!v) return env.failure_message();
        const AttributeValue* current = resolve(item, path);
        if (!current) {
          if (v->type() != AttrType::SS && v->type() != AttrType::NS && v->type() != AttrType::BS) {
            return std::string(kWrongType);
          }
          break;
        }
        AttributeValue result;
        bool now_empty = false;
        if (auto why = delete_value(*current, *v, result, now_empty)) return why;
        if (now_empty)
          pending.push_back({action.path, true, {}});
        else
          pending.push_back({action.path, false, std::move(result)});
        break;
      }
    }
  }
  // Phase 2 cannot fail. Writes go first, in ascending path order (appends past the end of a
  // list land in index order); removals then go from the highest list index down, so every
  // index still means what it meant in the original item.
  auto by_path = [&](const Pending& a, const Pending& b) {
    if (a.remove != b.remove) return !a.remove;
    int c = compare_paths(program.paths[a.path], program.paths[b.path]);
    return a.remove ? c > 0 : c < 0;
  };
  if (pending.size() > 1) std::sort(pending.begin(), pending.end(), by_path);
  for (Pending& p : pending) {
    if (p.remove)
      remove_at(item, program.paths[p.path]);
    else
      write_at(item, program.paths[p.path], std::move(p.value));
  }
  return std::nullopt;
}

}  // namespace dynamorph::expr::detail
