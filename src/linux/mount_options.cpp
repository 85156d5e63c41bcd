#include "linux/mount_options.hpp"

#include <sys/mount.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <string_view>

namespace deltabox {

namespace {

#ifndef ST_NOSYMFOLLOW
constexpr unsigned long ST_NOSYMFOLLOW = 0x2000;  // glibc 2.36 lacks it; the kernel has it (5.10)
#endif

// A flag an option sets (clear = false) or clears (clear = true).
struct FlagOption {
  std::string_view name;
  bool clear;
  unsigned long flag;
};

// runc's mountFlags table. "defaults" carries no flag: it only means "nothing special", so unlike
// runc (which forwards it to the filesystem as data, where tmpfs and others reject it) it is
// swallowed here. "acl" is not mapped (runc#3738) and stays fs data.
constexpr FlagOption kFlagOptions[] = {
    {"async", true, MS_SYNCHRONOUS},
    {"atime", true, MS_NOATIME},
    {"bind", false, MS_BIND},
    {"defaults", false, 0},
    {"dev", true, MS_NODEV},
    {"diratime", true, MS_NODIRATIME},
    {"dirsync", false, MS_DIRSYNC},
    {"exec", true, MS_NOEXEC},
    {"iversion", false, MS_I_VERSION},
    {"lazytime", false, MS_LAZYTIME},
    {"loud", true, MS_SILENT},
    {"mand", false, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"nodev", false, MS_NODEV},
    {"nodiratime", false, MS_NODIRATIME},
    {"noexec", false, MS_NOEXEC},
    {"noiversion", true, MS_I_VERSION},
    {"nolazytime", true, MS_LAZYTIME},
    {"nomand", true, MS_MANDLOCK},
    {"norelatime", true, MS_RELATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"nosuid", false, MS_NOSUID},
    {"nosymfollow", false, MS_NOSYMFOLLOW},
    {"rbind", false, MS_BIND | MS_REC},
    {"relatime", false, MS_RELATIME},
    {"remount", false, MS_REMOUNT},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"silent", false, MS_SILENT},
    {"strictatime", false, MS_STRICTATIME},
    {"suid", true, MS_NOSUID},
    {"sync", false, MS_SYNCHRONOUS},
    {"symfollow", true, MS_NOSYMFOLLOW},
};

struct PropagationOption {
  std::string_view name;
  unsigned long flags;
};

constexpr PropagationOption kPropagationOptions[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

struct AttrOption {
  std::string_view name;
  bool clear;
  uint64_t attr;
};

// runc's recAttrFlags. MOUNT_ATTR_RELATIME is 0: "rrelatime" only works through the
// MOUNT_ATTR__ATIME clear mask that every atime setting adds.
constexpr AttrOption kAttrOptions[] = {
    {"rro", false, MOUNT_ATTR_RDONLY},
    {"rrw", true, MOUNT_ATTR_RDONLY},
    {"rnosuid", false, MOUNT_ATTR_NOSUID},
    {"rsuid", true, MOUNT_ATTR_NOSUID},
    {"rnodev", false, MOUNT_ATTR_NODEV},
    {"rdev", true, MOUNT_ATTR_NODEV},
    {"rnoexec", false, MOUNT_ATTR_NOEXEC},
    {"rexec", true, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", false, MOUNT_ATTR_NODIRATIME},
    {"rdiratime", true, MOUNT_ATTR_NODIRATIME},
    {"rrelatime", false, MOUNT_ATTR_RELATIME},
    {"rnorelatime", true, MOUNT_ATTR_RELATIME},
    {"rnoatime", false, MOUNT_ATTR_NOATIME},
    {"ratime", true, MOUNT_ATTR_NOATIME},
    {"rstrictatime", false, MOUNT_ATTR_STRICTATIME},
    {"rnostrictatime", true, MOUNT_ATTR_STRICTATIME},
    {"rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW},
    {"rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW},
};

constexpr std::string_view kExtensionOptions[] = {"tmpcopyup", "idmap", "ridmap"};

template <typename Table>
auto find_option(const Table& table, std::string_view name) -> decltype(&table[0]) {
  for (const auto& entry : table) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

bool is_atime_attr(uint64_t attr) { return (attr & MOUNT_ATTR__ATIME) == attr; }

}  // namespace

bool MountFlags::bind() const { return (flags & MS_BIND) != 0; }
bool MountFlags::recursive() const { return (flags & MS_REC) != 0; }

MountFlags parse_mount_options(const std::vector<std::string>& options) {
  MountFlags out;
  std::vector<std::string_view> data;
  for (const std::string& option : options) {
    if (const FlagOption* f = find_option(kFlagOptions, option)) {
      if (f->clear) {
        out.flags &= ~f->flag;
        out.cleared |= f->flag;
      } else {
        out.flags |= f->flag;
        out.cleared &= ~f->flag;
      }
    } else if (auto propagation = propagation_from_name(option)) {
      out.propagation.push_back(*propagation);
    } else if (const AttrOption* a = find_option(kAttrOptions, option)) {
      if (a->clear) {
        out.attr_clr |= a->attr;
        out.attr_set &= ~a->attr;
        // Clearing an atime mode means the whole field (back to relatime): mount_setattr(2)
        // refuses a partial atime mask in attr_clr.
        if (is_atime_attr(a->attr)) out.attr_clr |= MOUNT_ATTR__ATIME;
      } else {
        out.attr_set |= a->attr;
        out.attr_clr &= ~a->attr;
        // mount_setattr(2): an atime mode in attr_set needs the whole atime field cleared.
        if (is_atime_attr(a->attr)) out.attr_clr |= MOUNT_ATTR__ATIME;
      }
    } else if (option == "tmpcopyup") {
      out.tmpcopyup = true;
    } else if (option == "idmap") {
      out.idmap = true;
    } else if (option == "ridmap") {
      out.idmap = true;
      out.idmap_recursive = true;
    } else {
      data.push_back(option);
    }
  }
  for (size_t i = 0; i < data.size(); ++i) {
    if (i > 0) out.data += ',';
    out.data += data[i];
  }
  return out;
}

std::vector<std::string> known_mount_options() {
  std::vector<std::string> names;
  for (const auto& f : kFlagOptions) names.emplace_back(f.name);
  for (const auto& p : kPropagationOptions) names.emplace_back(p.name);
  for (const auto& a : kAttrOptions) names.emplace_back(a.name);
  for (const auto& e : kExtensionOptions) names.emplace_back(e);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<unsigned long> propagation_from_name(std::string_view name) {
  if (const PropagationOption* p = find_option(kPropagationOptions, name)) return p->flags;
  return std::nullopt;
}

uint64_t mount_attrs_from_flags(unsigned long ms_flags) {
  uint64_t attrs = 0;
  if (ms_flags & MS_RDONLY) attrs |= MOUNT_ATTR_RDONLY;
  if (ms_flags & MS_NOSUID) attrs |= MOUNT_ATTR_NOSUID;
  if (ms_flags & MS_NODEV) attrs |= MOUNT_ATTR_NODEV;
  if (ms_flags & MS_NOEXEC) attrs |= MOUNT_ATTR_NOEXEC;
  if (ms_flags & MS_NODIRATIME) attrs |= MOUNT_ATTR_NODIRATIME;
  if (ms_flags & MS_NOSYMFOLLOW) attrs |= MOUNT_ATTR_NOSYMFOLLOW;
  // The kernel's precedence when several atime flags are given: strictatime beats noatime,
  // noatime beats relatime (relatime, the default, is 0).
  if (ms_flags & MS_STRICTATIME) {
    attrs |= MOUNT_ATTR_STRICTATIME;
  } else if (ms_flags & MS_NOATIME) {
    attrs |= MOUNT_ATTR_NOATIME;
  }
  return attrs;
}

unsigned long mount_flags_from_statfs(unsigned long st_flags) {
  unsigned long flags = 0;
  if (st_flags & ST_RDONLY) flags |= MS_RDONLY;
  if (st_flags & ST_NOSUID) flags |= MS_NOSUID;
  if (st_flags & ST_NODEV) flags |= MS_NODEV;
  if (st_flags & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st_flags & ST_MANDLOCK) flags |= MS_MANDLOCK;
  if (st_flags & ST_SYNCHRONOUS) flags |= MS_SYNCHRONOUS;
  if (st_flags & ST_NOATIME) flags |= MS_NOATIME;
  if (st_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st_flags & ST_RELATIME) flags |= MS_RELATIME;
  if (st_flags & ST_NOSYMFOLLOW) flags |= MS_NOSYMFOLLOW;
  // There is no ST_STRICTATIME: a strictatime mount reports none of the atime bits.
  return flags;
}

}  // namespace deltabox
