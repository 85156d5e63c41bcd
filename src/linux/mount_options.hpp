#pragma once
// config.json mount "options" → what mount(2) / mount_setattr(2) want, with runc's vocabulary
// (libcontainer/specconv parseMountOptions). Pure functions: nothing here touches the system.
//
// This header deliberately includes neither <sys/mount.h> nor <linux/mount.h> (they conflict
// with each other on glibc 2.36), so any translation unit may include it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deltabox {

struct MountFlags {
  // MS_* to set. "bind" is MS_BIND, "rbind" MS_BIND|MS_REC, "remount" MS_REMOUNT.
  unsigned long flags = 0;
  // MS_* an option explicitly turned off ("rw", "suid", "dev", "exec", "atime", ...). A later
  // option wins over an earlier one, so a bit is never in both `flags` and `cleared`.
  unsigned long cleared = 0;
  // One entry per propagation option, in order: MS_SHARED / MS_SLAVE / MS_PRIVATE /
  // MS_UNBINDABLE, plus MS_REC for the r-prefixed forms. Applied after the mount exists.
  std::vector<unsigned long> propagation;
  // MOUNT_ATTR_* from the recursive r* options ("rro", "rnosuid", ...), applied with
  // mount_setattr(AT_RECURSIVE). An atime setting also puts MOUNT_ATTR__ATIME in attr_clr,
  // which mount_setattr requires.
  uint64_t attr_set = 0;
  uint64_t attr_clr = 0;
  bool tmpcopyup = false;        // copy the covered directory's contents into the new tmpfs
  bool idmap = false;            // "idmap" or "ridmap": an idmapped bind mount
  bool idmap_recursive = false;  // "ridmap": the idmapping also applies to submounts
  // Everything else ("mode=755", "size=65536k", "newinstance", ...) comma-joined for the fs.
  std::string data;

  bool bind() const;       // MS_BIND
  bool recursive() const;  // MS_REC (rbind)
  bool has_recursive_attrs() const { return attr_set != 0 || attr_clr != 0; }
};

MountFlags parse_mount_options(const std::vector<std::string>& options);

// Every option name parse_mount_options understands, sorted: the `features` verb's mountOptions.
std::vector<std::string> known_mount_options();

// "rprivate" → MS_PRIVATE|MS_REC, "shared" → MS_SHARED, ...; nullopt for anything else.
std::optional<unsigned long> propagation_from_name(std::string_view name);

// The per-mount MS_* flags (rdonly, nosuid, nodev, noexec, the atime family, nosymfollow) as
// MOUNT_ATTR_* bits for fsmount(2) / mount_setattr(2). Superblock flags (sync, dirsync, ...) and
// operation flags (bind, rec, remount) have no attribute and are dropped.
uint64_t mount_attrs_from_flags(unsigned long ms_flags);

// statfs(2) f_flags (ST_*) → the MS_* flags they report, e.g. to learn a mount's locked flags.
unsigned long mount_flags_from_statfs(unsigned long st_flags);

}  // namespace deltabox
