#pragma once
// Options -> packed criu_req, packed criu_resp -> Response. Pure: no sockets, no processes.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "criu/options.hpp"

namespace deltabox::criu {

// criu_req_type values (the numbers are CRIU's).
enum class RequestType {
  empty = 0,
  dump = 1,
  restore = 2,
  check = 3,
  pre_dump = 4,
  notify = 6,
  feature_check = 9,
  version = 10,
  single_pre_dump = 13,
};
const char* request_name(RequestType type);

using Bytes = std::vector<uint8_t>;

// notify_scripts makes CRIU stop at each action-script point and wait for a NOTIFY answer.
Bytes encode_dump(const DumpOptions& options, RequestType type, bool notify_scripts);
Bytes encode_restore(const RestoreOptions& options, bool notify_scripts);
// Requests without options: version.
Bytes encode_simple(RequestType type);
// CRIU's check needs a directory to run in (it opens and chdirs to it like an images dir); with
// log_file "" it logs to its stderr.
Bytes encode_check(int dir_fd, const std::string& log_file);
Bytes encode_feature_check_mem_track();
Bytes encode_notify_answer(bool success);

struct VersionInfo {
  int major = 0;
  int minor = 0;
  std::optional<int> sublevel;
  std::optional<int> extra;
  std::string gitid;
  std::string name;
  std::string to_string() const;  // "4.1.1"
};

struct NotifyMessage {
  std::string script;
  std::optional<pid_t> pid;
};

struct Response {
  RequestType type = RequestType::empty;
  bool success = false;
  int cr_errno = 0;
  std::string cr_errmsg;  // CRIU's first logged error, when it failed
  std::optional<pid_t> restored_pid;
  std::optional<NotifyMessage> notify;
  std::optional<bool> mem_track;
  std::optional<VersionInfo> version;
};

// Throws Error when the bytes are not a criu_resp.
Response decode_response(std::span<const uint8_t> packet);

}  // namespace deltabox::criu
