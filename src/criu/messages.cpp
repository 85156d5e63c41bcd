#include "criu/messages.hpp"

#include <fmt/format.h>

#include <memory>

#include "criu/rpc.pb-c.h"
#include "util/error.hpp"

namespace deltabox::criu {

namespace {

// protobuf-c wants `char*` everywhere; packing never writes through them.
char* c_str(const std::string& s) { return const_cast<char*>(s.c_str()); }
char* c_str_or_null(const std::string& s) { return s.empty() ? nullptr : c_str(s); }

// A criu_opts plus the storage its repeated fields point into. Pinned in memory (it points
// into itself), built and packed within one encode call.
class OptsBuilder {
 public:
  explicit OptsBuilder(int images_dir_fd) {
    criu_opts__init(&opts_);
    opts_.images_dir_fd = images_dir_fd;
  }
  OptsBuilder(const OptsBuilder&) = delete;
  OptsBuilder& operator=(const OptsBuilder&) = delete;

  CriuOpts& opts() { return opts_; }

  void flag(protobuf_c_boolean& has, protobuf_c_boolean& field, bool value) {
    // Only true flags go on the wire: false is CRIU's default for every flag we expose.
    if (!value) return;
    has = true;
    field = true;
  }

  void common(int work_dir_fd, const std::string& log_file, int log_level, bool notify_scripts) {
    if (work_dir_fd >= 0) {
      opts_.has_work_dir_fd = true;
      opts_.work_dir_fd = work_dir_fd;
    }
    opts_.log_file = c_str_or_null(log_file);
    opts_.has_log_level = true;
    opts_.log_level = log_level;
    flag(opts_.has_notify_scripts, opts_.notify_scripts, notify_scripts);
  }

  void cgroup_mode(const std::optional<CgroupMode>& mode) {
    if (!mode) return;
    opts_.has_manage_cgroups_mode = true;
    opts_.manage_cgroups_mode = static_cast<CriuCgMode>(*mode);
  }

  void network_lock(bool skip) {
    if (!skip) return;  // CRIU's default: iptables
    opts_.has_network_lock = true;
    opts_.network_lock = CRIU_NETWORK_LOCK_METHOD__SKIP;
  }

  void ext_mnt(const std::vector<std::pair<std::string, std::string>>& map) {
    ext_mnt_.resize(map.size());
    for (size_t i = 0; i < map.size(); ++i) {
      ext_mount_map__init(&ext_mnt_[i]);
      ext_mnt_[i].key = c_str(map[i].first);
      ext_mnt_[i].val = c_str(map[i].second);
      ext_mnt_ptrs_.push_back(&ext_mnt_[i]);
    }
    opts_.n_ext_mnt = ext_mnt_ptrs_.size();
    opts_.ext_mnt = ext_mnt_ptrs_.data();
  }

  void inherit_fd(const std::vector<std::pair<std::string, int>>& fds) {
    inherit_.resize(fds.size());
    for (size_t i = 0; i < fds.size(); ++i) {
      inherit_fd__init(&inherit_[i]);
      inherit_[i].key = c_str(fds[i].first);
      inherit_[i].fd = fds[i].second;
      inherit_ptrs_.push_back(&inherit_[i]);
    }
    opts_.n_inherit_fd = inherit_ptrs_.size();
    opts_.inherit_fd = inherit_ptrs_.data();
  }

  void empty_ns(uint32_t mask) {
    if (mask == 0) return;
    opts_.has_empty_ns = true;
    opts_.empty_ns = mask;
  }

  void join_ns(const std::vector<std::pair<std::string, std::string>>& namespaces) {
    join_.resize(namespaces.size());
    for (size_t i = 0; i < namespaces.size(); ++i) {
      join_namespace__init(&join_[i]);
      join_[i].ns = c_str(namespaces[i].first);
      join_[i].ns_file = c_str(namespaces[i].second);
      join_ptrs_.push_back(&join_[i]);
    }
    opts_.n_join_ns = join_ptrs_.size();
    opts_.join_ns = join_ptrs_.data();
  }

  void strings(const std::vector<std::string>& values, size_t& n, char**& field, std::vector<char*>& storage) {
    for (const auto& v : values) storage.push_back(c_str(v));
    n = storage.size();
    field = storage.data();
  }
  void external(const std::vector<std::string>& values) {
    strings(values, opts_.n_external, opts_.external, external_);
  }
  void skip_mnt(const std::vector<std::string>& values) {
    strings(values, opts_.n_skip_mnt, opts_.skip_mnt, skip_mnt_);
  }

 private:
  CriuOpts opts_;
  std::vector<ExtMountMap> ext_mnt_;
  std::vector<ExtMountMap*> ext_mnt_ptrs_;
  std::vector<InheritFd> inherit_;
  std::vector<InheritFd*> inherit_ptrs_;
  std::vector<JoinNamespace> join_;
  std::vector<JoinNamespace*> join_ptrs_;
  std::vector<char*> external_;
  std::vector<char*> skip_mnt_;
};

Bytes pack(const CriuReq& req) {
  Bytes out(criu_req__get_packed_size(&req));
  criu_req__pack(&req, out.data());
  return out;
}

Bytes pack_with_opts(RequestType type, CriuOpts* opts) {
  CriuReq req;
  criu_req__init(&req);
  req.type = static_cast<CriuReqType>(type);
  req.opts = opts;
  return pack(req);
}

void require_images_dir(int fd, const char* what) {
  if (fd < 0) fail("criu {}: images_dir_fd is required", what);
}

struct RespDeleter {
  void operator()(CriuResp* r) const { criu_resp__free_unpacked(r, nullptr); }
};

VersionInfo decode_version(const CriuVersion& v) {
  VersionInfo info;
  info.major = v.major_number;
  info.minor = v.minor_number;
  if (v.has_sublevel) info.sublevel = v.sublevel;
  if (v.has_extra) info.extra = v.extra;
  if (v.gitid) info.gitid = v.gitid;
  if (v.name) info.name = v.name;
  return info;
}

}  // namespace

const char* request_name(RequestType type) {
  switch (type) {
    case RequestType::empty: return "empty";
    case RequestType::dump: return "dump";
    case RequestType::restore: return "restore";
    case RequestType::check: return "check";
    case RequestType::pre_dump: return "pre-dump";
    case RequestType::notify: return "notify";
    case RequestType::feature_check: return "feature-check";
    case RequestType::version: return "version";
    case RequestType::single_pre_dump: return "pre-dump";
  }
  return "unknown";
}

Bytes encode_dump(const DumpOptions& o, RequestType type, bool notify_scripts) {
  require_images_dir(o.images_dir_fd, request_name(type));
  if (o.pid <= 0) fail("criu {}: a pid is required", request_name(type));
  OptsBuilder b(o.images_dir_fd);
  CriuOpts& opts = b.opts();
  opts.has_pid = true;
  opts.pid = o.pid;
  b.common(o.work_dir_fd, o.log_file, o.log_level, notify_scripts);
  b.flag(opts.has_leave_running, opts.leave_running, o.leave_running);
  b.flag(opts.has_tcp_established, opts.tcp_established, o.tcp_established);
  b.flag(opts.has_ext_unix_sk, opts.ext_unix_sk, o.ext_unix_sk);
  b.flag(opts.has_shell_job, opts.shell_job, o.shell_job);
  b.flag(opts.has_file_locks, opts.file_locks, o.file_locks);
  b.flag(opts.has_link_remap, opts.link_remap, o.link_remap);
  b.flag(opts.has_track_mem, opts.track_mem, o.track_mem);
  b.flag(opts.has_auto_dedup, opts.auto_dedup, o.auto_dedup);
  b.flag(opts.has_orphan_pts_master, opts.orphan_pts_master, o.orphan_pts_master);
  opts.root = c_str_or_null(o.root);
  opts.freeze_cgroup = c_str_or_null(o.freeze_cgroup);
  if (o.parent_img) opts.parent_img = c_str(*o.parent_img);
  b.cgroup_mode(o.manage_cgroups_mode);
  b.network_lock(o.skip_network_lock);
  b.ext_mnt(o.ext_mnt);
  b.external(o.external);
  b.skip_mnt(o.skip_mnt);
  b.empty_ns(o.empty_ns);
  if (o.ghost_limit) {
    opts.has_ghost_limit = true;
    opts.ghost_limit = *o.ghost_limit;
  }
  if (o.timeout) {
    opts.has_timeout = true;
    opts.timeout = *o.timeout;
  }
  return pack_with_opts(type, &opts);
}

Bytes encode_restore(const RestoreOptions& o, bool notify_scripts) {
  require_images_dir(o.images_dir_fd, "restore");
  OptsBuilder b(o.images_dir_fd);
  CriuOpts& opts = b.opts();
  b.common(o.work_dir_fd, o.log_file, o.log_level, notify_scripts);
  b.flag(opts.has_leave_stopped, opts.leave_stopped, o.leave_stopped);
  b.flag(opts.has_tcp_established, opts.tcp_established, o.tcp_established);
  b.flag(opts.has_ext_unix_sk, opts.ext_unix_sk, o.ext_unix_sk);
  b.flag(opts.has_shell_job, opts.shell_job, o.shell_job);
  b.flag(opts.has_file_locks, opts.file_locks, o.file_locks);
  b.flag(opts.has_orphan_pts_master, opts.orphan_pts_master, o.orphan_pts_master);
  opts.root = c_str_or_null(o.root);
  opts.lsm_profile = c_str_or_null(o.lsm_profile);
  opts.lsm_mount_context = c_str_or_null(o.lsm_mount_context);
  b.cgroup_mode(o.manage_cgroups_mode);
  b.network_lock(o.skip_network_lock);
  b.ext_mnt(o.ext_mnt);
  b.external(o.external);
  b.inherit_fd(o.inherit_fd);
  b.empty_ns(o.empty_ns);
  b.join_ns(o.join_ns);
  return pack_with_opts(RequestType::restore, &opts);
}

Bytes encode_simple(RequestType type) { return pack_with_opts(type, nullptr); }

Bytes encode_check(int dir_fd, const std::string& log_file) {
  require_images_dir(dir_fd, "check");
  OptsBuilder b(dir_fd);
  CriuOpts& opts = b.opts();
  opts.log_file = c_str_or_null(log_file);
  b.flag(opts.has_log_to_stderr, opts.log_to_stderr, log_file.empty());
  return pack_with_opts(RequestType::check, &opts);
}

Bytes encode_feature_check_mem_track() {
  CriuFeatures features;
  criu_features__init(&features);
  features.has_mem_track = true;
  features.mem_track = true;
  CriuReq req;
  criu_req__init(&req);
  req.type = CRIU_REQ_TYPE__FEATURE_CHECK;
  req.features = &features;
  return pack(req);
}

Bytes encode_notify_answer(bool success) {
  CriuReq req;
  criu_req__init(&req);
  req.type = CRIU_REQ_TYPE__NOTIFY;
  req.has_notify_success = true;
  req.notify_success = success;
  return pack(req);
}

std::string VersionInfo::to_string() const {
  std::string s = fmt::format("{}.{}", major, minor);
  if (sublevel) s += fmt::format(".{}", *sublevel);
  if (extra) s += fmt::format(".{}", *extra);
  return s;
}

Response decode_response(std::span<const uint8_t> packet) {
  std::unique_ptr<CriuResp, RespDeleter> r(criu_resp__unpack(nullptr, packet.size(), packet.data()));
  if (!r) fail("criu: cannot decode a response of {} bytes", packet.size());
  Response out;
  out.type = static_cast<RequestType>(r->type);
  out.success = r->success;
  if (r->has_cr_errno) out.cr_errno = r->cr_errno;
  if (r->cr_errmsg) out.cr_errmsg = r->cr_errmsg;
  if (r->restore) out.restored_pid = r->restore->pid;
  if (r->notify) {
    NotifyMessage n;
    if (r->notify->script) n.script = r->notify->script;
    if (r->notify->has_pid) n.pid = r->notify->pid;
    out.notify = std::move(n);
  }
  if (r->features && r->features->has_mem_track) out.mem_track = r->features->mem_track;
  if (r->version) out.version = decode_version(*r->version);
  return out;
}

}  // namespace deltabox::criu
