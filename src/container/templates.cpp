#include "container/templates.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "container/container_state.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

bool TemplateRecord::alive() const { return same_process_alive(host_pid, start_time); }

namespace {
nlohmann::json to_json(const TemplateRecord& r) {
  return {{"snapshot", r.snapshot},   {"generation", r.generation}, {"anchor_pid", r.anchor_pid},
          {"host_pid", r.host_pid},   {"start_time", r.start_time}, {"image_bytes", r.image_bytes},
          {"layers", r.layers}};
}

TemplateRecord from_json(const nlohmann::json& j) {
  return {j.at("snapshot").get<std::string>(), j.at("generation").get<std::string>(), j.at("anchor_pid").get<pid_t>(),
          j.at("host_pid").get<pid_t>(),       j.at("start_time").get<uint64_t>(), j.value("image_bytes", uint64_t{0}),
          j.value("layers", std::vector<std::string>{})};
}
}  // namespace

std::optional<TemplateRecord> TemplatePool::find(const std::string& snapshot) const {
  try {
    return from_json(nlohmann::json::parse(read_file(dir_ / (snapshot + ".json"))));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<TemplateRecord> TemplatePool::all() const {
  std::vector<std::pair<std::filesystem::file_time_type, TemplateRecord>> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".json") continue;
    try {
      found.emplace_back(e.last_write_time(), from_json(nlohmann::json::parse(read_file(e.path()))));
    } catch (const std::exception&) {
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<TemplateRecord> out;
  for (auto& [time, record] : found) out.push_back(std::move(record));
  return out;
}

void TemplatePool::save(const TemplateRecord& record) const {
  std::filesystem::create_directories(dir_);
  write_file_atomic(dir_ / (record.snapshot + ".json"), to_json(record).dump(), 0600,
                    Durability::survive_process_crash);
}

void TemplatePool::forget(const std::string& snapshot) const {
  std::error_code ec;
  std::filesystem::remove(dir_ / (snapshot + ".json"), ec);
}

}  // namespace deltabox
