// Controllers whose files are the same on cgroup v1 and v2.
#include <oci/config.hpp>

#include "cgroups/convert.hpp"
#include "cgroups/writers.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {

void set_cpuset(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.cpu) return;
  if (r.cpu->cpus && !r.cpu->cpus->empty()) files.write("cpuset.cpus", *r.cpu->cpus);
  if (r.cpu->mems && !r.cpu->mems->empty()) files.write("cpuset.mems", *r.cpu->mems);
}

void set_pids(const ControllerFiles& files, const oci::Resources& r) {
  if (r.pids) files.write("pids.max", pids_max(r.pids->limit));
}

void set_rdma(const ControllerFiles& files, const oci::Resources& r) {
  for (const auto& [device, limits] : r.rdma) files.write("rdma.max", rdma_max_line(device, limits));
}

void set_hugetlb(const ControllerFiles& files, const oci::Resources& r, std::string_view suffix) {
  // Reservation accounting (".rsvd", Linux 5.7+) gets the same limit so that reserved but not
  // yet faulted pages count too; older kernels lack the files.
  bool rsvd = true;
  for (const auto& h : r.hugepage_limits) {
    const auto prefix = "hugetlb." + h.page_size;
    const auto value = std::to_string(h.limit);
    files.write(prefix + std::string(suffix), value);
    if (!rsvd) continue;
    try {
      files.write(prefix + ".rsvd" + std::string(suffix), value);
    } catch (const Error& e) {
      if (e.code() != ENOENT) throw;
      rsvd = false;
    }
  }
}

}  // namespace deltabox::cgroups
