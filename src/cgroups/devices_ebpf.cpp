#include "cgroups/devices_ebpf.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

namespace deltabox::cgroups {
namespace {

// Registers of the device program: r1 = ctx on entry (reused as scratch), r0 = verdict.
enum Reg : uint8_t { R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5 };

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn load_word(Reg dst, Reg src, int16_t off) { return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0); }
bpf_insn alu32_imm(uint8_t op, Reg dst, int32_t imm) { return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm); }
bpf_insn mov32_reg(Reg dst, Reg src) { return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
// Jumps to the end of their block: the offset is filled in once the block is complete.
bpf_insn jne_imm(Reg dst, int32_t imm) { return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm); }
bpf_insn jne_reg(Reg dst, Reg src) { return insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, 0, 0); }
BpfProgram verdict(bool allow) { return {alu32_imm(BPF_MOV, R0, allow ? 1 : 0), insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)}; }

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
BpfProgram load_context() {
  return {load_word(R2, R1, 0), alu32_imm(BPF_AND, R2, 0xFFFF),  // device type
          load_word(R3, R1, 0), alu32_imm(BPF_RSH, R3, 16),      // access requested
          load_word(R4, R1, 4),                                  // major
          load_word(R5, R1, 8)};                                 // minor
}

int32_t bpf_access(unsigned access) {
  int32_t bits = 0;
  if (access & kDeviceRead) bits |= BPF_DEVCG_ACC_READ;
  if (access & kDeviceWrite) bits |= BPF_DEVCG_ACC_WRITE;
  if (access & kDeviceMknod) bits |= BPF_DEVCG_ACC_MKNOD;
  return bits;
}

BpfProgram rule_block(const DeviceRule& rule) {
  int32_t type = 0;
  if (rule.type == 'c')
    type = BPF_DEVCG_DEV_CHAR;
  else if (rule.type == 'b')
    type = BPF_DEVCG_DEV_BLOCK;
  else
    fail("invalid type {}", log::go_quote(std::string(1, rule.type)));
  if (rule.major > std::numeric_limits<uint32_t>::max()) fail("invalid major {}", rule.major);
  if (rule.minor > std::numeric_limits<uint32_t>::max()) fail("invalid minor {}", rule.minor);

  BpfProgram block = {jne_imm(R2, type)};
  if (const int32_t access = bpf_access(rule.access); access != bpf_access(kDeviceAllAccess)) {
    // Every requested access bit must be in the rule's set: (r3 & access) == r3.
    block.push_back(mov32_reg(R1, R3));
    block.push_back(alu32_imm(BPF_AND, R1, access));
    block.push_back(jne_reg(R1, R3));
  }
  if (rule.major >= 0) block.push_back(jne_imm(R4, static_cast<int32_t>(rule.major)));
  if (rule.minor >= 0) block.push_back(jne_imm(R5, static_cast<int32_t>(rule.minor)));
  auto tail = verdict(rule.allow);
  block.insert(block.end(), tail.begin(), tail.end());
  for (size_t i = 0; i < block.size(); ++i)
    if (BPF_CLASS(block[i].code) == BPF_JMP && BPF_OP(block[i].code) == BPF_JNE)
      block[i].off = static_cast<int16_t>(block.size() - (i + 1));
  return block;
}

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

uint64_t pointer(const void* p) { return reinterpret_cast<uintptr_t>(p); }

UniqueFd load_program(const BpfProgram& program) {
  static const char license[] = "Apache";  // as runc's: some helpers need a GPL-compatible one
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insn_cnt = static_cast<uint32_t>(program.size());
  attr.insns = pointer(program.data());
  attr.license = pointer(license);
  if (long fd = bpf(BPF_PROG_LOAD, attr); fd >= 0) return UniqueFd(static_cast<int>(fd));
  const int err = errno;
  // Only on failure: the verifier's log says which instruction it rejected.
  std::string log(16384, '\0');
  attr.log_level = 1;
  attr.log_buf = pointer(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  if (long fd = bpf(BPF_PROG_LOAD, attr); fd >= 0) return UniqueFd(static_cast<int>(fd));
  log.resize(std::strlen(log.c_str()));
  throw_errno(
      err, log.empty() ? "load device filter program" : fmt::format("load device filter program (verifier: {})", log));
}

std::vector<UniqueFd> attached_programs(int cgroup_fd) {
  std::vector<UniqueFd> out;
  for (uint32_t id : attached_device_filter_ids(cgroup_fd)) {
    bpf_attr attr{};
    attr.prog_id = id;
    long fd = bpf(BPF_PROG_GET_FD_BY_ID, attr);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // detached meanwhile
      throw_errno(fmt::format("get fd of bpf program {}", id));
    }
    out.emplace_back(static_cast<int>(fd));
  }
  return out;
}

long attach(int cgroup_fd, int program_fd, int replace_fd) {
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(program_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (replace_fd >= 0) {
    attr.attach_flags |= BPF_F_REPLACE;
    attr.replace_bpf_fd = static_cast<uint32_t>(replace_fd);
  }
  return bpf(BPF_PROG_ATTACH, attr);
}

void detach(int cgroup_fd, int program_fd) {
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(program_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (bpf(BPF_PROG_DETACH, attr) < 0)
    throw_errno("failed to call BPF_PROG_DETACH (BPF_CGROUP_DEVICE) on old filter program");
}

}  // namespace

BpfProgram device_filter_program(const std::vector<DeviceRule>& rules) {
  // Going through the emulator gives v2 exactly v1's semantics, including its refusal to punch
  // holes into wildcard rules.
  const auto emulator = DeviceEmulator::from_rules(rules);
  BpfProgram program = load_context();
  const auto clean = emulator.rules();
  for (size_t i = 0; i < clean.size(); ++i) {
    const auto& rule = clean[i];
    if (rule.type == 'a') {
      // Only ever first, switching the mode; the final verdict below encodes the mode.
      if (i != 0 || rule.allow != emulator.deny_list())
        fail("[internal error] emulated cgroupv2 devices ruleset had bad wildcard at idx {} ({})", i,
             cgroup_string(rule));
      continue;
    }
    if (rule.allow == emulator.deny_list())
      fail("[internal error] emulated cgroupv2 devices ruleset had no-op rule at idx {} ({})", i, cgroup_string(rule));
    auto block = rule_block(rule);
    program.insert(program.end(), block.begin(), block.end());
  }
  auto tail = verdict(emulator.deny_list());
  program.insert(program.end(), tail.begin(), tail.end());
  return program;
}

std::vector<uint32_t> attached_device_filter_ids(int cgroup_fd) {
  std::vector<uint32_t> ids(64);
  bpf_attr attr{};
  attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = pointer(ids.data());
  attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
  if (bpf(BPF_PROG_QUERY, attr) < 0) throw_errno("failed to call BPF_PROG_QUERY (BPF_CGROUP_DEVICE)");
  ids.resize(std::min<size_t>(attr.query.prog_cnt, ids.size()));
  return ids;
}

void attach_device_filter(int cgroup_fd, const BpfProgram& program) {
  auto old = attached_programs(cgroup_fd);
  auto fd = load_program(program);
  // With a single old program the swap is atomic; otherwise there is a moment with both.
  if (old.size() == 1 && attach(cgroup_fd, fd.get(), old.front().get()) == 0) return;
  if (attach(cgroup_fd, fd.get(), -1) < 0)
    throw_errno("failed to call BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)");
  if (old.size() > 1)
    log::info("found more than one filter ({}) attached to a cgroup -- removing extra filters!", old.size());
  for (const auto& o : old) detach(cgroup_fd, o.get());
}

}  // namespace deltabox::cgroups
