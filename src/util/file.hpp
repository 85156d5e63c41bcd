#pragma once
// Small file helpers: whole-file reads and crash-safe writes.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace deltabox {

std::string read_file(const std::filesystem::path& path);
// Reads a file relative to a directory fd (dirfd may be AT_FDCWD).
std::string read_file_at(int dirfd, const std::string& path);
// Writes the whole buffer to an open fd (retrying short writes and EINTR).
void write_all(int fd, std::string_view data);
// Opens path for writing (no O_CREAT, no truncation) and writes data: for /proc and cgroupfs.
void write_file(const std::filesystem::path& path, std::string_view data);
enum class Durability { survive_power_loss, survive_process_crash };
// Atomic replacement: write a temporary sibling, rename it over path. survive_power_loss also
// fsyncs the file before and the directory after the rename (snapshots); runtime state under
// /run only needs to survive a killed process, so it skips the fsyncs on the hot path.
void write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode = 0644,
                       Durability durability = Durability::survive_power_loss);

// fsync of a directory: makes a rename or a new entry in it durable.
void fsync_dir(const std::filesystem::path& dir);

}  // namespace deltabox
