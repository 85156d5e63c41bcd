#include "container/snapshot_tree.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {
constexpr const char* kMeta = "meta.json";
constexpr const char* kStagingPrefix = ".staging-";
// Every CRIU dump writes it; `snapshots rm` unlinks it first (an unlink works on a full
// filesystem, where writing meta.json may not): a snapshot without it is removed.
constexpr const char* kInventory = "criu/inventory.img";
}  // namespace

const char* snapshot_class_name(SnapshotClass c) {
  return c == SnapshotClass::template_ready ? "template" : "cold";
}

nlohmann::json SnapshotMeta::to_json() const {
  return {{"id", id},
          {"name", name},
          {"parent", parent},
          {"created", created},
          {"generation", generation},
          {"layers", layers},
          {"class", snapshot_class_name(snapshot_class)},
          {"reason", reason},
          {"fs_bytes", fs_bytes},
          {"image_bytes", image_bytes},
          {"externals", externals},
          {"removed", removed}};
}

SnapshotMeta SnapshotMeta::from_json(const nlohmann::json& j) {
  try {
    SnapshotMeta m;
    m.id = j.at("id").get<std::string>();
    m.name = j.value("name", "");
    m.parent = j.value("parent", "");
    m.created = j.at("created").get<std::string>();
    m.generation = j.at("generation").get<std::string>();
    m.layers = j.at("layers").get<std::vector<std::string>>();
    m.snapshot_class = j.value("class", "template") == "cold" ? SnapshotClass::cold_only : SnapshotClass::template_ready;
    m.reason = j.value("reason", "");
    m.fs_bytes = j.value("fs_bytes", uint64_t{0});
    m.image_bytes = j.value("image_bytes", uint64_t{0});
    m.externals = j.value("externals", nlohmann::json::object());
    m.removed = j.value("removed", false);
    return m;
  } catch (const nlohmann::json::exception& e) {
    fail("corrupt snapshot metadata: {}", e.what());
  }
}

SnapshotTree::SnapshotTree(std::filesystem::path container_store_dir)
    : root_(std::move(container_store_dir) / "snapshots") {}

std::filesystem::path SnapshotTree::dir(const std::string& snap) const { return root_ / snap; }

std::filesystem::path SnapshotTree::staging(const std::string& snap) const { return root_ / (kStagingPrefix + snap); }

std::vector<SnapshotMeta> SnapshotTree::list() const {
  auto out = all();
  std::erase_if(out, [](const SnapshotMeta& m) { return m.removed; });
  return out;
}

std::vector<SnapshotMeta> SnapshotTree::removed() const {
  auto out = all();
  std::erase_if(out, [](const SnapshotMeta& m) { return !m.removed; });
  return out;
}

void SnapshotTree::mark_removed(const std::string& snap) const {
  const auto inventory = dir(snap) / kInventory;
  if (::unlink(inventory.c_str()) < 0 && errno != ENOENT) throw_errno(fmt::format("unlink {}", inventory.string()));
  fsync_dir(inventory.parent_path());
}

void SnapshotTree::update(const SnapshotMeta& meta) const {
  write_file_atomic(dir(meta.id) / kMeta, meta.to_json().dump(), 0600, Durability::survive_power_loss);
}

std::vector<SnapshotMeta> SnapshotTree::all() const {
  std::vector<SnapshotMeta> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind(kStagingPrefix, 0) == 0) continue;
    std::string text;
    try {
      text = read_file(entry.path() / kMeta);
    } catch (const Error&) {
      continue;  // being removed
    }
    auto meta = SnapshotMeta::from_json(nlohmann::json::parse(text));
    if (!meta.removed && ::access((entry.path() / kInventory).c_str(), F_OK) != 0) meta.removed = true;
    out.push_back(std::move(meta));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created != b.created ? a.created < b.created : a.id < b.id;
  });
  return out;
}

std::optional<SnapshotMeta> SnapshotTree::find(const std::string& id_or_name) const {
  // By id: one file (rollback's hot path); by name: a scan.
  if (id_or_name.find('/') == std::string::npos && id_or_name != "." && id_or_name != "..") {
    try {
      auto meta = SnapshotMeta::from_json(nlohmann::json::parse(read_file(dir(id_or_name) / kMeta)));
      if (!meta.removed && ::access((dir(id_or_name) / kInventory).c_str(), F_OK) == 0) return meta;
    } catch (const std::exception&) {
    }
  }
  for (auto& m : list())
    if (!m.name.empty() && m.name == id_or_name) return m;
  return std::nullopt;
}

void SnapshotTree::publish(const SnapshotMeta& meta) const {
  auto staged = staging(meta.id);
  write_file_atomic(staged / kMeta, meta.to_json().dump(), 0600, Durability::survive_power_loss);
  std::error_code ec;
  std::filesystem::rename(staged, dir(meta.id), ec);
  if (ec) fail("publish snapshot {}: {}", meta.id, ec.message());
  fsync_dir(root_);
}

std::vector<std::filesystem::path> SnapshotTree::abandoned() const {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_, ec))
    if (entry.path().filename().string().rfind(kStagingPrefix, 0) == 0) out.push_back(entry.path());
  return out;
}

}  // namespace deltabox
