#pragma once
// A typed, path-tracking view over nlohmann::json. Every failure throws oci::SpecError naming the
// exact JSON path of the offending value ("mounts[2].destination"), so parsers built on it never
// leak nlohmann exceptions and report the first bad field the way a user can find it.
//
// Absent and null are the same thing here, as in Go's encoding/json: real configs written by Go
// tools contain `"options": null` and mean "not set".
#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/config.hpp"

namespace oci {

// `value` as a JSON string literal, for error messages: unknown rlimit "RLIMIT_FOO".
inline std::string json_quote(const std::string& value) { return nlohmann::json(value).dump(); }

class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, std::string path) : value_(&value), path_(std::move(path)) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  bool absent() const { return value_->is_null(); }

  [[noreturn]] void fail(const std::string& problem) const { throw SpecError(path_, problem); }

  // Members of an object; this node failing "must be an object" if it is not one.
  JsonNode field(std::string_view key) const;          // an absent node when missing
  JsonNode require(std::string_view key) const;        // fails "<path>.<key>: required" when absent
  bool has(std::string_view key) const { return !field(key).absent(); }
  std::vector<std::pair<std::string, JsonNode>> members() const;  // absent: none
  // Elements of an array (absent: none); fails "must be an array" otherwise.
  std::vector<JsonNode> elements() const;

  // Typed value: bool, std::string, any integer type (range-checked, no floats), and
  // std::vector / std::map<std::string, ...> of those.
  template <class T>
  T as() const;

  // Typed members: optional when absent, a fallback when absent, or required.
  template <class T>
  std::optional<T> opt(std::string_view key) const {
    JsonNode member = field(key);
    if (member.absent()) return std::nullopt;
    return member.as<T>();
  }
  template <class T>
  T get(std::string_view key, T fallback = T{}) const {
    JsonNode member = field(key);
    return member.absent() ? std::move(fallback) : member.as<T>();
  }
  template <class T>
  T req(std::string_view key) const {
    return require(key).as<T>();
  }

  // Struct-valued members, each decoded by `read(const JsonNode&) -> T`.
  template <class Read>
  auto object(std::string_view key, Read read) const -> std::optional<decltype(read(*this))> {
    JsonNode member = field(key);
    if (member.absent()) return std::nullopt;
    return read(member);
  }
  template <class Read>
  auto list(std::string_view key, Read read) const -> std::vector<decltype(read(*this))> {
    std::vector<decltype(read(*this))> out;
    for (const JsonNode& element : field(key).elements()) out.push_back(read(element));
    return out;
  }
  template <class Read>
  auto dict(std::string_view key, Read read) const
      -> std::map<std::string, decltype(read(*this))> {
    std::map<std::string, decltype(read(*this))> out;
    for (const auto& [name, member] : field(key).members()) out.emplace(name, read(member));
    return out;
  }

 private:
  const nlohmann::json* value_;
  std::string path_;
};

namespace json_detail {

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class T>
struct is_string_map<std::map<std::string, T>> : std::true_type {};

// "an unsigned 32-bit integer", "a 64-bit integer": the words used in type errors.
template <std::integral T>
std::string integer_kind() {
  std::string bits = std::to_string(sizeof(T) * 8) + "-bit integer";
  return std::is_signed_v<T> ? "a " + bits : "an unsigned " + bits;
}

}  // namespace json_detail

template <class T>
T JsonNode::as() const {
  const nlohmann::json& v = *value_;
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) fail("must be a boolean");
    return v.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) fail("must be a string");
    return v.get<std::string>();
  } else if constexpr (std::is_integral_v<T>) {
    // nlohmann stores non-negative integers as unsigned and negative ones as signed; floats
    // (even 1.0) are rejected like Go does.
    if (v.is_number_unsigned() && std::in_range<T>(v.get<uint64_t>())) return static_cast<T>(v.get<uint64_t>());
    if (v.is_number_integer() && !v.is_number_unsigned() && std::in_range<T>(v.get<int64_t>()))
      return static_cast<T>(v.get<int64_t>());
    fail("must be " + json_detail::integer_kind<T>());
  } else if constexpr (json_detail::is_vector<T>::value) {
    T out;
    for (const JsonNode& element : elements()) out.push_back(element.as<typename T::value_type>());
    return out;
  } else if constexpr (json_detail::is_string_map<T>::value) {
    T out;
    for (const auto& [name, member] : members()) out.emplace(name, member.template as<typename T::mapped_type>());
    return out;
  } else {
    static_assert(sizeof(T) == 0, "JsonNode::as: unsupported type; use object/list/dict");
  }
}

}  // namespace oci
