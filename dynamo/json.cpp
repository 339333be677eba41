#include "dynamo/json.h"

#include <fmt/format.h>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

#include "dynamo/errors.h"
#include "dynamo/json_read.h"

namespace dynamorph::dynamo {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<signed char, 256> make_b64_table() {
  std::array<signed char, 256> t{};
  for (auto& x : t) x = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64[i])] = static_cast<signed char>(i);
  return t;
}
constexpr auto kB64Rev = make_b64_table();

// Which bytes need escaping in a JSON string.
constexpr std::array<bool, 256> make_escape_table() {
  std::array<bool, 256> t{};
  for (int i = 0; i < 0x20; ++i) t[i] = true;
  t['"'] = true;
  t['\\'] = true;
  return t;
}
constexpr auto kNeedsEscape = make_escape_table();

void write_set_strings(std::string& out, const StringSet& s) {
  out.push_back('[');
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out.push_back(',');
    write_json_string(out, s[i]);
  }
  out.push_back(']');
}

// Where the next byte that needs escaping is, at or after `from` (s.size() if none): eight bytes
// at a time, since most strings need none.
std::size_t next_escape(std::string_view s, std::size_t from) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
  std::size_t i = from;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
    // A byte below 0x20, or one equal to '"' or '\\' (exact for the presence of any).
    const std::uint64_t hit =
        ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
    if (hit & kHighs) break;
  }
  while (i < s.size() && !kNeedsEscape[static_cast<unsigned char>(s[i])]) ++i;
  return i;
}

}  // namespace

void write_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of plain bytes
  for (;;) {
    const std::size_t i = next_escape(s, run);
    out.append(s.data() + run, i - run);
    if (i == s.size()) break;
    run = i + 1;
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
    }
  }
  out.push_back('"');
}

void append_utf8(std::string& out, char32_t code_point) {
  const std::uint32_t cp = code_point;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void base64_encode(std::string& out, std::string_view bytes) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    char q[4] = {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
    out.append(q, 4);
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    unsigned v = p[i] << 16;
    char q[4] = {kB64[v >> 18], kB64[(v >> 12) & 63], '=', '='};
    out.append(q, 4);
  } else if (rest == 2) {
    unsigned v = (p[i] << 16) | (p[i + 1] << 8);
    char q[4] = {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], '='};
    out.append(q, 4);
  }
}

bool base64_decode(std::string& out, std::string_view text) {
  unsigned acc = 0;
  int bits = 0;
  std::size_t pad = 0, data = 0;
  for (char ch : text) {
    if (ch == '=') {
      ++pad;
      continue;
    }
    if (pad) return false;  // data after padding
    int v = kB64Rev[static_cast<unsigned char>(ch)];
    if (v < 0) return false;
    ++data;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // A lone last character carries 6 bits: no byte can end there.
  return pad <= 2 && data % 4 != 1 && (text.size() % 4 == 0 || pad == 0);
}

void write_value(std::string& out, const AttributeValue& v) {
  switch (v.type()) {
    case AttrType::S:
      out += "{\"S\":";
      write_json_string(out, v.as<std::string>());
      break;
    case AttrType::N:
      out += "{\"N\":\"";
      out += v.as<Number>().text();
      out += '"';
      break;
    case AttrType::B:
      out += "{\"B\":\"";
      base64_encode(out, v.as<Binary>().bytes);
      out += '"';
      break;
    case AttrType::BOOL: out += v.as<bool>() ? "{\"BOOL\":true" : "{\"BOOL\":false"; break;
    case AttrType::NUL: out += "{\"NULL\":true"; break;
    case AttrType::M:
      out += "{\"M\":";
      write_item(out, v.as<Map>());
      break;
    case AttrType::L: {
      out += "{\"L\":[";
      const auto& l = v.as<List>();
      for (std::size_t i = 0; i < l.size(); ++i) {
        if (i) out.push_back(',');
        write_value(out, l[i]);
      }
      out.push_back(']');
      break;
    }
    case AttrType::SS:
      out += "{\"SS\":";
      write_set_strings(out, v.as<StringSet>());
      break;
    case AttrType::NS: {
      out += "{\"NS\":[";
      const auto& s = v.as<NumberSet>();
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) out.push_back(',');
        out.push_back('"');
        out += s[i].text();
        out.push_back('"');
      }
      out.push_back(']');
      break;
    }
    case AttrType::BS: {
      out += "{\"BS\":[";
      const auto& s = v.as<BinarySet>();
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) out.push_back(',');
        out.push_back('"');
        base64_encode(out, s[i].bytes);
        out.push_back('"');
      }
      out.push_back(']');
      break;
    }
  }
  out.push_back('}');
}

void write_item(std::string& out, const Item& item) {
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : item) {
    if (!first) out.push_back(',');
    first = false;
    write_json_string(out, k);
    out.push_back(':');
    write_value(out, v);
  }
  out.push_back('}');
}

void pad_for_parsing(std::string& buffer) {
  if (buffer.capacity() < buffer.size() + simdjson::SIMDJSON_PADDING) {
    buffer.reserve(buffer.size() + simdjson::SIMDJSON_PADDING);
  }
}

namespace detail {

simdjson::ondemand::parser& thread_parser() {
  thread_local simdjson::ondemand::parser parser;
  return parser;
}

simdjson::padded_string_view padded(const std::string& buffer) {
  return simdjson::padded_string_view(buffer.data(), buffer.size(), buffer.capacity());
}

namespace {

[[noreturn]] void bad(std::string_view what) {
  throw Error(fmt::format("malformed DynamoDB JSON: {}", what));
}

std::string_view get_string(simdjson::ondemand::value v) {
  std::string_view s;
  if (v.get_string().get(s)) bad("expected a string");
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The shape of a decimal number: [-]digits[.digits][(e|E)[+|-]digits]. Server text is kept as is (it is canonical), and the writers copy it into request
// bodies unescaped, so it must at least be a number: a malformed response once put a NUL there
// (found by fuzz/response_fuzz), and a quote would have written attributes of its own.
bool is_number_text(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  auto digits = [&] {
    const std::size_t from = i;
    while (i < n && is_digit(s[i])) ++i;
    return i > from;
  };
  if (!digits()) return false;
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

Number get_number(simdjson::ondemand::value v) {
  std::string_view s = get_string(v);
  if (!is_number_text(s)) bad("a number that is not a decimal number");
  return Number::from_canonical(std::string(s));
}

Binary get_binary(simdjson::ondemand::value v) {
  Binary b;
  if (!base64_decode(b.bytes, get_string(v))) bad("invalid base64 in a binary value");
  return b;
}

// The key as it stands in the document when it has no escape (the common case: no copy into the
// parser's string buffer); otherwise unescaped.
bool read_key(simdjson::ondemand::field& field, std::string_view& key) {
  const char* raw = field.key().raw();  // after the opening quote; the closing one is there
  std::size_t n = 0;
  while (raw[n] != '"' && raw[n] != '\\') ++n;
  if (raw[n] == '"') {
    key = std::string_view(raw, n);
    return true;
  }
  return !field.unescaped_key().get(key);
}

}  // namespace

void read_item_into(simdjson::ondemand::object obj, Item& out) {
  for (auto result : obj) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(result).get(field) || !read_key(field, key)) bad("bad attribute name");
    out.append(std::string(key), read_value(field.value()));
  }
}

Item read_item(simdjson::ondemand::value v) {
  simdjson::ondemand::object obj;
  if (v.get_object().get(obj)) bad("expected an object of attributes");
  Item item;
  read_item_into(obj, item);
  return item;
}

AttributeValue read_value(simdjson::ondemand::value v) {
  simdjson::ondemand::object obj;
  if (v.get_object().get(obj)) bad("expected an attribute value object");
  for (auto result : obj) {
    simdjson::ondemand::field field;
    std::string_view tag;
    if (std::move(result).get(field) || !read_key(field, tag)) bad("bad type tag");
    simdjson::ondemand::value x = field.value();
    switch (tag.size()) {
      case 1:
        if (tag[0] == 'S') return AttributeValue(std::string(get_string(x)));
        if (tag[0] == 'N')
          return AttributeValue(get_number(x));
        if (tag[0] == 'B') return AttributeValue(get_binary(x));
        if (tag[0] == 'M') return AttributeValue(read_item(x));
        if (tag[0] == 'L') {
          simdjson::ondemand::array arr;
          if (x.get_array().get(arr)) bad("L must be an array");
          List l;
          for (auto e : arr) {
            simdjson::ondemand::value ev;
            if (e.get(ev)) bad("bad list element");
            l.push_back(read_value(ev));
          }
          return AttributeValue(std::move(l));
        }
        break;
      case 2: {
        simdjson::ondemand::array arr;
        if (x.get_array().get(arr)) bad("a set must be an array");
        if (tag == "SS") {
          StringSet s;
          for (auto e : arr) {
            simdjson::ondemand::value ev;
            if (e.get(ev)) bad("bad set element");
            s.emplace_back(get_string(ev));
          }
          return AttributeValue(std::move(s));
        }
        if (tag == "NS") {
          NumberSet s;
          for (auto e : arr) {
            simdjson::ondemand::value ev;
            if (e.get(ev)) bad("bad set element");
            s.push_back(get_number(ev));
          }
          return AttributeValue(std::move(s));
        }
        if (tag == "BS") {
          BinarySet s;
          for (auto e : arr) {
            simdjson::ondemand::value ev;
            if (e.get(ev)) bad("bad set element");
            s.push_back(get_binary(ev));
          }
          return AttributeValue(std::move(s));
        }
        break;
      }
      case 4:
        if (tag == "BOOL") {
          bool b;
          if (x.get_bool().get(b)) bad("BOOL must be true or false");
          return AttributeValue(b);
        }
        if (tag == "NULL") {
          bool b;
          if (x.get_bool().get(b)) bad("NULL must be true");
          return AttributeValue(Null{});
        }
        break;
      default: break;
    }
    bad(fmt::format("unknown type tag '{}'", tag));
  }
  bad("empty attribute value");
}

}  // namespace detail

namespace {
// True when the document has been read to its end (nothing but whitespace left).
bool at_end(simdjson::ondemand::document& doc) {
  const char* where = nullptr;
  return doc.current_location().get(where) != simdjson::SUCCESS;
}
}  // namespace

Item parse_item(std::string_view json) {
  simdjson::padded_string padded(json);
  simdjson::ondemand::document doc;
  if (detail::thread_parser().iterate(padded).get(doc))
    throw Error("malformed DynamoDB JSON: not a JSON document");
  simdjson::ondemand::value v;
  if (doc.get_value().get(v)) throw Error("malformed DynamoDB JSON: not a JSON document");
  Item item = detail::read_item(v);
  if (!at_end(doc)) throw Error("malformed DynamoDB JSON: text after the item");
  return item;
}

Item parse_item_member(std::string_view json, std::string_view member) {
  simdjson::padded_string padded(json);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (detail::thread_parser().iterate(padded).get(doc) || doc.get_object().get(obj)) {
    throw Error("not a JSON object");
  }
  std::optional<Item> item;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) throw Error("malformed JSON");
    if (key != member) throw Error(fmt::format("unexpected member \"{}\"", key));
    if (item) throw Error(fmt::format("\"{}\" appears twice", member));
    simdjson::ondemand::value v;
    if (field.value().get(v)) throw Error("malformed JSON");
    item = detail::read_item(v);
  }
  if (!item) throw Error(fmt::format("no \"{}\" member", member));
  if (!at_end(doc)) throw Error("text after the object");
  return std::move(*item);
}

PlainRecord parse_plain_record(std::string_view json) {
  simdjson::padded_string padded(json);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (detail::thread_parser().iterate(padded).get(doc) || doc.get_object().get(obj))
    throw Error("not a JSON object");
  PlainRecord r;
  for (auto field : obj) {
    std::string_view key;
    simdjson::ondemand::value v;
    simdjson::ondemand::json_type type;
    if (field.unescaped_key().get(key) || field.value().get(v) || v.type().get(type))
      throw Error("malformed JSON");
    std::string name(key);
    if (r.strings.count(name) || r.integers.count(name) || r.items.count(name))
      throw Error(fmt::format("\"{}\" appears twice", name));
    if (type == simdjson::ondemand::json_type::string) {
      std::string_view text;
      if (v.get_string().get(text)) throw Error(fmt::format("\"{}\": malformed string", name));
      r.strings.emplace(std::move(name), std::string(text));
    } else if (type == simdjson::ondemand::json_type::number) {
      std::int64_t n = 0;
      if (v.get_int64().get(n)) throw Error(fmt::format("\"{}\": expected an integer", name));
      r.integers.emplace(std::move(name), n);
    } else if (type == simdjson::ondemand::json_type::object) {
      r.items.emplace(std::move(name), detail::read_item(v));
    } else {
      throw Error(fmt::format("\"{}\": expected a string, an integer or an item", name));
    }
  }
  if (!at_end(doc)) throw Error("text after the object");
  return r;
}

AttributeValue parse_value(std::string_view json) {
  {
    // A whole document must hold exactly one type tag (read_value, used inside pages, trusts
    // the server and stops at the first tag).
    simdjson::padded_string padded(json);
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    std::size_t fields = 0;
    if (detail::thread_parser().iterate(padded).get(doc) || doc.get_object().get(obj) ||
        obj.count_fields().get(fields)) {
      throw Error("malformed DynamoDB JSON: not a JSON object");
    }
    if (fields != 1)
      throw Error("malformed DynamoDB JSON: an attribute value has exactly one type tag");
  }
  // Read it as the only attribute of an item, so that the document is consumed to its end.
  Item wrapper = parse_item(std::string("{\"v\":").append(json).append("}"));
  return std::move(*wrapper.find("v"));
}

}  // namespace dynamorph::dynamo
