// The container's view of cgroupfs, mounted by the container's init inside its mount namespace.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/ranges.h>

#include "cgroups/manager.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

constexpr unsigned long kPerMountFlags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

void do_mount(const char* source, const std::string& target, const char* fstype, unsigned long flags,
              const std::string& data) {
  if (::mount(source, target.c_str(), fstype, flags, data.empty() ? nullptr : data.c_str()) < 0)
    throw_errno(fmt::format("mount {} ({}{}{}) on {}", source ? source : "", fstype ? fstype : "bind",
                            data.empty() ? "" : ", ", data, target));
}

// Flags on a bind remount change only this mount, never the superblock it shares with the host.
void remount_bind(const std::string& target, unsigned long flags) {
  if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | flags, nullptr) < 0)
    throw_errno(fmt::format("remount {} with flags {:#x}", target, flags));
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST) throw_errno(fmt::format("mkdir {}", path));
}

std::string mount_name(const Hierarchy& h) {
  auto slash = h.mount_point.rfind('/');
  auto name = h.mount_point.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") fail("cannot name the {} hierarchy mounted at {}", h.name(), h.mount_point);
  return name;
}

void mount_hierarchy(const Placement& p, const std::string& dest, bool has_cgroupns, unsigned long flags) {
  if (has_cgroupns) {
    // A cgroup namespace makes a fresh cgroupfs mount show the container's cgroup as its root.
    // MS_RDONLY goes only through the bind remount below: on a fresh mount it would apply to the
    // superblock.
    const unsigned long fresh = flags & ~MS_RDONLY;
    if (p.hierarchy.unified())
      do_mount("cgroup2", dest, "cgroup2", fresh, "");
    else
      do_mount("cgroup", dest, "cgroup", fresh, fmt::format("{}", fmt::join(p.hierarchy.controllers, ",")));
  } else {
    do_mount(p.dir.c_str(), dest, nullptr, MS_BIND, "");
  }
  remount_bind(dest, flags);
}

// Co-mounted controllers ("cpu,cpuacct") are also reachable by each name, as on the host.
void link_comounted(const std::string& target, const Hierarchy& h, const std::string& name) {
  if (name.find(',') == std::string::npos) return;
  for (const auto& c : h.controllers) {
    if (c == name || c.starts_with("name=")) continue;
    auto link = target + "/" + c;
    if (::symlink(name.c_str(), link.c_str()) < 0 && errno != EEXIST) throw_errno(fmt::format("symlink {}", link));
  }
}

}  // namespace

void mount_cgroupfs(const std::string& target, const Manager& manager, bool has_cgroupns, unsigned long flags) {
  // cgroupfs never needs suid, device nodes or executables: always drop them, whatever the entry says.
  flags = (flags & kPerMountFlags) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  auto placements = manager.placements();
  if (manager.layout() == Layout::v2) return mount_hierarchy(placements.front(), target, has_cgroupns, flags);

  do_mount("tmpfs", target, "tmpfs", flags & ~MS_RDONLY, "mode=755");
  for (const auto& p : placements) {
    auto name = mount_name(p.hierarchy);
    auto dest = target + "/" + name;
    make_dir(dest);
    mount_hierarchy(p, dest, has_cgroupns, flags);
    link_comounted(target, p.hierarchy, name);
  }
  remount_bind(target, flags);
}

}  // namespace deltabox::cgroups
