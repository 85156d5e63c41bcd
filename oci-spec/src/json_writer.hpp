#pragma once
// Writer helpers shared by the serializers: absent optionals and empty containers are omitted,
// like Go's `omitempty`, so to_json output matches what runc writes and parses back identically.
#include <concepts>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace oci::json_writer {

using nlohmann::json;

template <class T>
concept Container = requires(const T& t) { t.empty(); };

// A set optional is written even when it holds an empty list or false: that is a real value.
template <class T>
void put(json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}
template <Container T>
void put(json& j, const char* key, const T& value) {
  if (!value.empty()) j[key] = value;
}
inline void put(json& j, const char* key, bool value) {
  if (value) j[key] = true;
}

// Struct-valued members, each encoded by `write(const T&) -> json`.
template <class T, class Write>
void put_object(json& j, const char* key, const std::optional<T>& value, Write write) {
  if (value) j[key] = write(*value);
}
template <class T, class Write>
void put_list(json& j, const char* key, const std::vector<T>& items, Write write) {
  if (items.empty()) return;
  json& out = j[key] = json::array();
  for (const T& item : items) out.push_back(write(item));
}
template <class T, class Write>
void put_dict(json& j, const char* key, const std::map<std::string, T>& entries, Write write) {
  if (entries.empty()) return;
  json& out = j[key] = json::object();
  for (const auto& [name, value] : entries) out[name] = write(value);
}

}  // namespace oci::json_writer
