#include "container/jobs.hpp"

#include <time.h>

#include <algorithm>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {
const char* type_name(Job::Type t) {
  switch (t) {
    case Job::Type::dump: return "dump";
    case Job::Type::template_restore: return "template";
    case Job::Type::discard: return "discard";
    case Job::Type::dedup: return "dedup";
    case Job::Type::compact: return "compact";
    case Job::Type::spill: return "spill";
  }
  return "";
}
}  // namespace

nlohmann::json Job::to_json() const {
  return {{"type", type_name(type)}, {"snapshot", snapshot}, {"generation", generation}};
}

Job Job::from_json(const nlohmann::json& j) {
  Job job;
  const auto type = j.at("type").get<std::string>();
  if (type == "dump") job.type = Type::dump;
  else if (type == "template") job.type = Type::template_restore;
  else if (type == "discard") job.type = Type::discard;
  else if (type == "dedup") job.type = Type::dedup;
  else if (type == "compact") job.type = Type::compact;
  else if (type == "spill") job.type = Type::spill;
  else fail("unknown job type \"{}\"", type);
  job.snapshot = j.value("snapshot", "");
  job.generation = j.value("generation", "");
  return job;
}

std::filesystem::path JobQueue::enqueue(const Job& job) const {
  std::filesystem::create_directories(dir_);
  // Nanoseconds since boot order the queue; a counter would need a lock of its own.
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  auto file = dir_ / fmt::format("{:020d}{:09d}-{}.json", ts.tv_sec, ts.tv_nsec, type_name(job.type));
  write_file_atomic(file, job.to_json().dump(), 0600, Durability::survive_process_crash);
  return file;
}

std::vector<std::pair<std::filesystem::path, Job>> JobQueue::pending() const {
  std::vector<std::pair<std::filesystem::path, Job>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    auto name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    try {
      out.emplace_back(entry.path(), Job::from_json(nlohmann::json::parse(read_file(entry.path()))));
    } catch (const std::exception&) {
      std::filesystem::remove(entry.path(), ec);  // a torn or unknown job: nothing to finish
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void JobQueue::done(const std::filesystem::path& file) const {
  std::error_code ec;
  std::filesystem::remove(file, ec);
}

void JobQueue::done_dump(const std::string& snapshot) const {
  for (const auto& [file, job] : pending())
    if (job.type == Job::Type::dump && job.snapshot == snapshot) done(file);
}

}  // namespace deltabox
