#include "oci/json_reader.hpp"

namespace oci {
namespace {

// Missing members point here, so an absent node needs no ownership.
const nlohmann::json kNull;

std::string member_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

// Map entries use a quoted subscript: their keys are data and may contain dots.
std::string entry_path(const std::string& parent, const std::string& key) {
  return parent + "[" + json_quote(key) + "]";
}

}  // namespace

JsonNode JsonNode::field(std::string_view key) const {
  if (!value_->is_object()) fail("must be an object");
  auto it = value_->find(key);
  return JsonNode(it == value_->end() ? kNull : *it, member_path(path_, key));
}

JsonNode JsonNode::require(std::string_view key) const {
  JsonNode member = field(key);
  if (member.absent()) member.fail("required");
  return member;
}

std::vector<std::pair<std::string, JsonNode>> JsonNode::members() const {
  std::vector<std::pair<std::string, JsonNode>> out;
  if (absent()) return out;
  if (!value_->is_object()) fail("must be an object");
  for (const auto& [key, value] : value_->items()) out.emplace_back(key, JsonNode(value, entry_path(path_, key)));
  return out;
}

std::vector<JsonNode> JsonNode::elements() const {
  std::vector<JsonNode> out;
  if (absent()) return out;
  if (!value_->is_array()) fail("must be an array");
  out.reserve(value_->size());
  for (size_t i = 0; i < value_->size(); ++i)
    out.emplace_back((*value_)[i], path_ + "[" + std::to_string(i) + "]");
  return out;
}

}  // namespace oci
