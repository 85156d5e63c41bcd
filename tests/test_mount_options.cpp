// parse_mount_options and friends: runc's option vocabulary, option by option.
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <doctest.h>

#include "linux/mount_options.hpp"

using deltabox::MountFlags;
using deltabox::parse_mount_options;

namespace {

struct FlagCase {
  const char* option;
  unsigned long set;    // expected in flags
  unsigned long clear;  // expected in cleared
};

// Every flag option, with what runc's specconv maps it to.
const FlagCase kFlagCases[] = {
    {"ro", MS_RDONLY, 0},
    {"rw", 0, MS_RDONLY},
    {"suid", 0, MS_NOSUID},
    {"nosuid", MS_NOSUID, 0},
    {"dev", 0, MS_NODEV},
    {"nodev", MS_NODEV, 0},
    {"exec", 0, MS_NOEXEC},
    {"noexec", MS_NOEXEC, 0},
    {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS},
    {"dirsync", MS_DIRSYNC, 0},
    {"remount", MS_REMOUNT, 0},
    {"mand", MS_MANDLOCK, 0},
    {"nomand", 0, MS_MANDLOCK},
    {"atime", 0, MS_NOATIME},
    {"noatime", MS_NOATIME, 0},
    {"diratime", 0, MS_NODIRATIME},
    {"nodiratime", MS_NODIRATIME, 0},
    {"relatime", MS_RELATIME, 0},
    {"norelatime", 0, MS_RELATIME},
    {"strictatime", MS_STRICTATIME, 0},
    {"nostrictatime", 0, MS_STRICTATIME},
    {"lazytime", MS_LAZYTIME, 0},
    {"nolazytime", 0, MS_LAZYTIME},
    {"iversion", MS_I_VERSION, 0},
    {"noiversion", 0, MS_I_VERSION},
    {"silent", MS_SILENT, 0},
    {"loud", 0, MS_SILENT},
    {"nosymfollow", MS_NOSYMFOLLOW, 0},
    {"symfollow", 0, MS_NOSYMFOLLOW},
    {"bind", MS_BIND, 0},
    {"rbind", MS_BIND | MS_REC, 0},
};

struct AttrCase {
  const char* option;
  uint64_t set;
  uint64_t clr;
};

const AttrCase kAttrCases[] = {
    {"rro", MOUNT_ATTR_RDONLY, 0},
    {"rrw", 0, MOUNT_ATTR_RDONLY},
    {"rnosuid", MOUNT_ATTR_NOSUID, 0},
    {"rsuid", 0, MOUNT_ATTR_NOSUID},
    {"rnodev", MOUNT_ATTR_NODEV, 0},
    {"rdev", 0, MOUNT_ATTR_NODEV},
    {"rnoexec", MOUNT_ATTR_NOEXEC, 0},
    {"rexec", 0, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", MOUNT_ATTR_NODIRATIME, 0},
    {"rdiratime", 0, MOUNT_ATTR_NODIRATIME},
    {"rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME},
    {"rnorelatime", 0, MOUNT_ATTR__ATIME},
    {"rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME},
    {"ratime", 0, MOUNT_ATTR__ATIME},
    {"rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME},
    {"rnostrictatime", 0, MOUNT_ATTR__ATIME},
    {"rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0},
    {"rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW},
};

struct PropagationCase {
  const char* option;
  unsigned long flags;
};

const PropagationCase kPropagationCases[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

// Nothing but the named effect: no stray flags, data or extensions.
void check_only_flags(const MountFlags& m, unsigned long set, unsigned long clear) {
  CHECK(m.flags == set);
  CHECK(m.cleared == clear);
  CHECK(m.propagation.empty());
  CHECK(m.attr_set == 0);
  CHECK(m.attr_clr == 0);
  CHECK(m.data.empty());
  CHECK_FALSE(m.tmpcopyup);
  CHECK_FALSE(m.idmap);
}

}  // namespace

TEST_CASE("mount_options: empty options mean nothing") {
  MountFlags m = parse_mount_options({});
  check_only_flags(m, 0, 0);
  CHECK_FALSE(m.bind());
  CHECK_FALSE(m.recursive());
  CHECK_FALSE(m.has_recursive_attrs());
}

TEST_CASE("mount_options: every flag option sets or clears its MS_ flag") {
  for (const FlagCase& c : kFlagCases) {
    CAPTURE(c.option);
    check_only_flags(parse_mount_options({c.option}), c.set, c.clear);
  }
}

TEST_CASE("mount_options: defaults is swallowed, not passed to the filesystem") {
  check_only_flags(parse_mount_options({"defaults"}), 0, 0);
  check_only_flags(parse_mount_options({"defaults", "ro"}), MS_RDONLY, 0);
}

TEST_CASE("mount_options: a later option overrides an earlier one") {
  check_only_flags(parse_mount_options({"ro", "rw"}), 0, MS_RDONLY);
  check_only_flags(parse_mount_options({"rw", "ro"}), MS_RDONLY, 0);
  check_only_flags(parse_mount_options({"nosuid", "suid", "nosuid"}), MS_NOSUID, 0);
  check_only_flags(parse_mount_options({"exec", "noexec", "dev"}), MS_NOEXEC, MS_NODEV);
}

TEST_CASE("mount_options: bind and rbind") {
  MountFlags bind = parse_mount_options({"bind"});
  CHECK(bind.bind());
  CHECK_FALSE(bind.recursive());
  MountFlags rbind = parse_mount_options({"rbind", "ro", "nosuid"});
  CHECK(rbind.bind());
  CHECK(rbind.recursive());
  CHECK(rbind.flags == (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID));
}

TEST_CASE("mount_options: the typical docker/podman sets") {
  MountFlags proc = parse_mount_options({"nosuid", "noexec", "nodev"});
  check_only_flags(proc, MS_NOSUID | MS_NOEXEC | MS_NODEV, 0);

  MountFlags dev = parse_mount_options({"nosuid", "strictatime", "mode=755", "size=65536k"});
  CHECK(dev.flags == (MS_NOSUID | MS_STRICTATIME));
  CHECK(dev.data == "mode=755,size=65536k");

  MountFlags pts =
      parse_mount_options({"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"});
  CHECK(pts.flags == (MS_NOSUID | MS_NOEXEC));
  CHECK(pts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5");

  MountFlags volume = parse_mount_options({"rbind", "rprivate", "ro"});
  CHECK(volume.flags == (MS_BIND | MS_REC | MS_RDONLY));
  REQUIRE(volume.propagation.size() == 1);
  CHECK(volume.propagation[0] == (MS_PRIVATE | MS_REC));
  CHECK(volume.data.empty());
}

TEST_CASE("mount_options: every propagation option, applied in order") {
  for (const PropagationCase& c : kPropagationCases) {
    CAPTURE(c.option);
    MountFlags m = parse_mount_options({c.option});
    REQUIRE(m.propagation.size() == 1);
    CHECK(m.propagation[0] == c.flags);
    CHECK(m.flags == 0);
    CHECK(m.data.empty());
    CHECK(deltabox::propagation_from_name(c.option) == c.flags);
  }
  MountFlags both = parse_mount_options({"rshared", "slave", "private"});
  REQUIRE(both.propagation.size() == 3);
  CHECK(both.propagation[0] == (MS_SHARED | MS_REC));
  CHECK(both.propagation[1] == MS_SLAVE);
  CHECK(both.propagation[2] == MS_PRIVATE);
  CHECK_FALSE(deltabox::propagation_from_name("rw").has_value());
  CHECK_FALSE(deltabox::propagation_from_name("").has_value());
}

TEST_CASE("mount_options: every recursive attribute option") {
  for (const AttrCase& c : kAttrCases) {
    CAPTURE(c.option);
    MountFlags m = parse_mount_options({c.option});
    CHECK(m.attr_set == c.set);
    CHECK(m.attr_clr == c.clr);
    CHECK(m.flags == 0);
    CHECK(m.cleared == 0);
    CHECK(m.data.empty());
  }
  CHECK(parse_mount_options({"rro"}).has_recursive_attrs());
  CHECK(parse_mount_options({"rrw"}).has_recursive_attrs());
}

TEST_CASE("mount_options: recursive attributes combine, later wins") {
  MountFlags m = parse_mount_options({"rro", "rnosuid", "rnodev"});
  CHECK(m.attr_set == (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  CHECK(m.attr_clr == 0);

  MountFlags flip = parse_mount_options({"rro", "rrw"});
  CHECK(flip.attr_set == 0);
  CHECK(flip.attr_clr == MOUNT_ATTR_RDONLY);

  MountFlags back = parse_mount_options({"rrw", "rro"});
  CHECK(back.attr_set == MOUNT_ATTR_RDONLY);
  CHECK(back.attr_clr == 0);

  // An atime mode needs the whole atime field in attr_clr, even after an "ratime".
  MountFlags atime = parse_mount_options({"ratime", "rnoatime"});
  CHECK(atime.attr_set == MOUNT_ATTR_NOATIME);
  CHECK(atime.attr_clr == MOUNT_ATTR__ATIME);

  // rro does not touch the non-recursive flags and vice versa.
  MountFlags mixed = parse_mount_options({"ro", "rro"});
  CHECK(mixed.flags == MS_RDONLY);
  CHECK(mixed.attr_set == MOUNT_ATTR_RDONLY);
}

TEST_CASE("mount_options: extensions") {
  MountFlags copyup = parse_mount_options({"tmpcopyup", "mode=755"});
  CHECK(copyup.tmpcopyup);
  CHECK_FALSE(copyup.idmap);
  CHECK(copyup.data == "mode=755");

  MountFlags idmap = parse_mount_options({"bind", "idmap"});
  CHECK(idmap.idmap);
  CHECK_FALSE(idmap.idmap_recursive);
  CHECK(idmap.data.empty());

  MountFlags ridmap = parse_mount_options({"rbind", "ridmap"});
  CHECK(ridmap.idmap);
  CHECK(ridmap.idmap_recursive);
  CHECK(ridmap.data.empty());
}

TEST_CASE("mount_options: unknown options are filesystem data, in order") {
  MountFlags m = parse_mount_options(
      {"mode=755", "nosuid", "size=65536k", "newinstance", "ptmxmode=0666", "gid=5", "acl", "context=\"a,b\""});
  CHECK(m.flags == MS_NOSUID);
  CHECK(m.data == "mode=755,size=65536k,newinstance,ptmxmode=0666,gid=5,acl,context=\"a,b\"");
  // Case matters, as in runc.
  CHECK(parse_mount_options({"RO"}).data == "RO");
  CHECK(parse_mount_options({"RO"}).flags == 0);
}

TEST_CASE("mount_options: known_mount_options is the whole vocabulary, sorted and unique") {
  const std::vector<std::string> known = deltabox::known_mount_options();
  CHECK(std::is_sorted(known.begin(), known.end()));
  CHECK(std::set<std::string>(known.begin(), known.end()).size() == known.size());

  std::set<std::string> expected = {"defaults", "tmpcopyup", "idmap", "ridmap"};
  for (const auto& c : kFlagCases) expected.insert(c.option);
  for (const auto& c : kAttrCases) expected.insert(c.option);
  for (const auto& c : kPropagationCases) expected.insert(c.option);
  CHECK(std::set<std::string>(known.begin(), known.end()) == expected);

  // Each known option is understood: none of them leaks into the fs data.
  for (const std::string& option : known) {
    CAPTURE(option);
    CHECK(parse_mount_options({option}).data.empty());
  }
  // What containerd's CRI looks for.
  CHECK(std::find(known.begin(), known.end(), "rro") != known.end());
}

TEST_CASE("mount_options: MS_ flags to mount attributes") {
  using deltabox::mount_attrs_from_flags;
  CHECK(mount_attrs_from_flags(0) == 0);
  CHECK(mount_attrs_from_flags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) ==
        (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  CHECK(mount_attrs_from_flags(MS_NODIRATIME) == MOUNT_ATTR_NODIRATIME);
  CHECK(mount_attrs_from_flags(MS_NOSYMFOLLOW) == MOUNT_ATTR_NOSYMFOLLOW);
  CHECK(mount_attrs_from_flags(MS_NOATIME) == MOUNT_ATTR_NOATIME);
  CHECK(mount_attrs_from_flags(MS_RELATIME) == MOUNT_ATTR_RELATIME);
  CHECK(mount_attrs_from_flags(MS_STRICTATIME) == MOUNT_ATTR_STRICTATIME);
  // The kernel's precedence among atime flags.
  CHECK(mount_attrs_from_flags(MS_STRICTATIME | MS_NOATIME) == MOUNT_ATTR_STRICTATIME);
  CHECK(mount_attrs_from_flags(MS_NOATIME | MS_RELATIME) == MOUNT_ATTR_NOATIME);
  // No attribute for superblock and operation flags.
  CHECK(mount_attrs_from_flags(MS_BIND | MS_REC | MS_REMOUNT | MS_SYNCHRONOUS | MS_DIRSYNC |
                               MS_MANDLOCK | MS_LAZYTIME | MS_SILENT) == 0);
}

TEST_CASE("mount_options: statfs flags to MS_ flags") {
  using deltabox::mount_flags_from_statfs;
  CHECK(mount_flags_from_statfs(0) == 0);
  CHECK(mount_flags_from_statfs(ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC) ==
        (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
  CHECK(mount_flags_from_statfs(ST_NOATIME | ST_NODIRATIME) == (MS_NOATIME | MS_NODIRATIME));
  CHECK(mount_flags_from_statfs(ST_RELATIME) == MS_RELATIME);
  CHECK(mount_flags_from_statfs(ST_SYNCHRONOUS | ST_MANDLOCK) == (MS_SYNCHRONOUS | MS_MANDLOCK));
  CHECK(mount_flags_from_statfs(0x2000 /* ST_NOSYMFOLLOW */) == MS_NOSYMFOLLOW);
  // Bits that are not mount flags are ignored.
  CHECK(mount_flags_from_statfs(ST_WRITE | ST_APPEND | ST_IMMUTABLE) == 0);
}
