#pragma once
// What a container's checkpoint leaves outside its images: bind mounts from the host, cgroup
// mounts, masked paths, device nodes, namespaces given by path, and the stdio the caller holds.
// Keys follow runc's naming (criu_linux.go), so images move between runc and deltabox.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <oci/config.hpp>

#include "cgroups/manager.hpp"
#include "util/fd.hpp"

namespace deltabox {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// Dump side: mountpoint inside the container -> CRIU key.
KeyValues dump_external_mounts(const oci::Config& config, pid_t init_pid);
// Restore side: CRIU key -> host path the restored mount binds. Cgroup mounts map to the new
// container's own cgroup dirs; masked directories to empty_dir (an empty directory the restore
// keeps empty; CRIU binds it read-only, as the dumped mount was).
KeyValues restore_external_mounts(const oci::Config& config, const std::filesystem::path& bundle,
                                  const cgroups::Manager& cgroups, const std::filesystem::path& empty_dir);

// Namespaces the config gives by path (network, pid): "net[<ino>]:extRootNetNS", as runc.
std::vector<std::string> dump_external_namespaces(const oci::Config& config);

// Restore side of the same: the namespace files CRIU inherits (key -> our fd) or joins.
struct RestoreNamespaces {
  std::vector<UniqueFd> fds;  // keep open until CRIU is done
  std::vector<std::pair<std::string, int>> inherit_fd;
  KeyValues join_ns;  // CRIU's namespace name -> nsfs path
};
RestoreNamespaces restore_external_namespaces(const oci::Config& config);

// runc's descriptors.json: where fds 0-2 of the init point ("/dev/null", "pipe:[123]", ...).
std::vector<std::string> read_descriptors(pid_t pid);
void write_descriptors(int images_dir_fd, const std::vector<std::string>& descriptors);
// Throws runc's "open <images>/descriptors.json: no such file or directory" when missing.
std::vector<std::string> load_descriptors(const std::filesystem::path& images);

// deltabox's addition: stdio that is a regular file opened outside the container (runc cannot
// dump those). CRIU keys "file[mnt_id:ino]" per fd, "" where not such a file; kept in the
// images as deltabox-stdio.json so the restore can hand its own fd in instead.
std::vector<std::string> external_stdio_files(pid_t pid);
void write_external_stdio(int images_dir_fd, const std::vector<std::string>& keys);
std::vector<std::string> load_external_stdio(const std::filesystem::path& images);  // [] when absent

}  // namespace deltabox
