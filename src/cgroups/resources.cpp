#include "cgroups/resources.hpp"

#include <oci/config.hpp>

namespace deltabox::cgroups {

// TODO(resources issue): memory, cpu, cpuset, pids, blkio, hugetlb, devices, network, rdma.
void apply_v1_resources(const std::vector<CgroupDir>&, const oci::Resources&) {}

void apply_v2_resources(const CgroupDir&, const oci::Resources&) {}

}  // namespace deltabox::cgroups
