#include "drivers/qemu/vm_command_line.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace relive::qemu {
namespace {

using Args = std::vector<std::string>;

TEST(VmCommandLine, KeepsTheMachineAndDropsTheMonitors) {
  Args in = {"/usr/bin/qemu-system-x86_64",
             "-accel",
             "tcg",
             "-m",
             "256",
             "-nographic",
             "-qmp",
             "unix:/run/a.sock,server=on,wait=off",
             "-kernel",
             "vmlinux",
             "-append",
             "console=ttyS0 quiet",
             "-S",
             "-daemonize",
             "-pidfile",
             "/run/q.pid",
             "-serial",
             "file:serial.log"};
  Result<Args> out = migratable_args(in);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out,
            (Args{"qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nographic", "-kernel",
                  "vmlinux", "-append", "console=ttyS0 quiet", "-serial", "file:serial.log"}));
}

TEST(VmCommandLine, DropsTheCharacterDevicesOfDroppedMonitors) {
  Args in = {"qemu-system-x86_64",
             "-chardev",
             "socket,id=mon0,path=/run/m.sock,server=on,wait=off",
             "-mon",
             "chardev=mon0,mode=control",
             "-chardev",
             "socket,id=mon1,path=/run/n.sock,server=on,wait=off",
             "-mon",
             "mon1,mode=readline",
             "-chardev",
             "file,id=ser0,path=serial.log",
             "-serial",
             "chardev:ser0",
             "--monitor",
             "stdio",
             "-incoming",
             "tcp:0:4444"};
  Result<Args> out = migratable_args(in);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, (Args{"qemu-system-x86_64", "-chardev", "file,id=ser0,path=serial.log", "-serial",
                        "chardev:ser0"}));
}

TEST(VmCommandLine, AFlagNeverSwallowsTheNextOption) {
  Args in = {"qemu-system-x86_64", "-no-reboot", "-S", "-snapshot", "-m", "64"};
  Result<Args> out = migratable_args(in);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, (Args{"qemu-system-x86_64", "-no-reboot", "-snapshot", "-m", "64"}));
}

TEST(VmCommandLine, ReplacesTheImageOfOneDrive) {
  Args in = {"qemu-system-x86_64",
             "-drive",
             "file=/a.raw,format=raw,if=virtio,id=d0",
             "-drive",
             "if=virtio,id=d1,format=qcow2,file=/b.qcow2",
             "-m",
             "256"};
  Result<Args> out = with_drive_file(in, "d1", "/vms/x/d1.qcow2");
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  Args want = in;
  want[4] = "if=virtio,id=d1,format=qcow2,file=/vms/x/d1.qcow2";
  EXPECT_EQ(*out, want);
  EXPECT_EQ(with_drive_file(in, "d2", "/x").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(with_drive_file(in, "d0", "/x,y").status().code(), Status::Code::kInvalidArgument);
  // A drive with no image yet (an empty CD-ROM) gets one.
  Result<Args> empty = with_drive_file({"qemu", "-drive", "if=ide,media=cdrom,id=cd"}, "cd", "/c");
  ASSERT_TRUE(empty.ok()) << empty.status().to_string();
  EXPECT_EQ((*empty)[2], "if=ide,media=cdrom,id=cd,file=/c");
}

TEST(VmCommandLine, ReadsAndSetsDriveSuboptions) {
  Args in = {
      "qemu-system-x86_64", "-drive", "file=/a.qcow2,format=qcow2,id=d0", "-m", "64", "-drive",
      "id=d1,file=/b.raw"};
  EXPECT_EQ(option_arguments(in, "drive"),
            (Args{"file=/a.qcow2,format=qcow2,id=d0", "id=d1,file=/b.raw"}));
  EXPECT_EQ(suboption("file=/a.qcow2,format=qcow2,id=d0", "format"), "qcow2");
  EXPECT_EQ(suboption("file=/a.qcow2,id=d0", "format"), "");
  Result<Args> out = with_drive_suboption(in, "d0", "format", "raw");
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[2], "file=/a.qcow2,format=raw,id=d0");
  out = with_drive_suboption(in, "d1", "format", "raw");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[6], "id=d1,file=/b.raw,format=raw");
  EXPECT_EQ(with_drive_suboption(in, "d9", "format", "raw").status().code(),
            Status::Code::kNotFound);
  EXPECT_EQ(with_drive_suboption(in, "d0", "format", "a,b").status().code(),
            Status::Code::kInvalidArgument);
}

TEST(VmCommandLine, IsIdempotent) {
  Args in = {"/opt/q/bin/qemu-system-aarch64", "-M", "virt", "-qmp", "unix:x", "-S"};
  Result<Args> once = migratable_args(in);
  ASSERT_TRUE(once.ok());
  Result<Args> twice = migratable_args(*once);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(*once, *twice);
}

TEST(VmCommandLine, RefusesWhatIsNotQemu) {
  EXPECT_FALSE(migratable_args({}).ok());
  EXPECT_FALSE(migratable_args({"/bin/sh", "-c", "reboot"}).ok());
  EXPECT_FALSE(migratable_args({"qemu-system-x86_64;rm", "-m", "64"}).ok());
  EXPECT_FALSE(migratable_args({"qemu-img", "create"}).ok());
}

TEST(VmCommandLine, IncomingArgsStartPausedWithRelivedsMonitor) {
  Result<Args> out = incoming_args({"qemu-system-x86_64", "-m", "64", "-qmp", "unix:old"},
                                   "/var/lib/relive/vms/x/qmp.sock");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, (Args{"qemu-system-x86_64", "-m", "64", "-S", "-incoming", "defer", "-qmp",
                        "unix:/var/lib/relive/vms/x/qmp.sock,server=on,wait=off"}));
}

TEST(VmCommandLine, ReadsAProcesssArgv) {
  Result<Args> self = process_argv(::getpid());
  ASSERT_TRUE(self.ok()) << self.status().to_string();
  ASSERT_FALSE(self->empty());
  EXPECT_NE((*self)[0].find("vm_command_line_test"), std::string::npos);
  EXPECT_FALSE(process_argv(0x7ffffff0).ok());
}

}  // namespace
}  // namespace relive::qemu

namespace relive::qemu {
namespace {

TEST(VmCommandLine, MemoryBytesReadsEveryFormQemuTakes) {
  auto bytes = [](std::vector<std::string> a) {
    a.insert(a.begin(), "qemu-system-x86_64");
    return memory_bytes(a);
  };
  EXPECT_EQ(*bytes({}), 128ull << 20);
  EXPECT_EQ(*bytes({"-m", "256"}), 256ull << 20);
  EXPECT_EQ(*bytes({"-m", "512M"}), 512ull << 20);
  EXPECT_EQ(*bytes({"-m", "2G"}), 2ull << 30);
  EXPECT_EQ(*bytes({"-m", "size=1g,slots=2,maxmem=4G"}), 1ull << 30);
  EXPECT_EQ(*bytes({"-m", "128", "-m", "64"}), 64ull << 20) << "the last -m wins, as in QEMU";
  EXPECT_FALSE(bytes({"-m", "lots"}).ok());
  EXPECT_FALSE(bytes({"-m", "0"}).ok());
  EXPECT_FALSE(bytes({"-m", "3K"}).ok()) << "not a whole number of pages";
}

TEST(VmCommandLine, OptionNamesIgnoreValuesThatLookLikeOptions) {
  auto names = option_names(
      {"qemu-system-x86_64", "-append", "-netdev", "--m", "64", "-nographic", "-drive", "file=x"});
  EXPECT_EQ(names, (std::set<std::string>{"append", "m", "nographic", "drive"}));
}

}  // namespace
}  // namespace relive::qemu

namespace relive::qemu {
namespace {

TEST(VmCommandLine, TapInterfacesNamesEveryTapBackend) {
  EXPECT_EQ(tap_interfaces({"qemu-system-x86_64", "-netdev", "tap,id=n0,ifname=vmtap0,script=no",
                            "-netdev", "user,id=n1", "-nic", "tap,ifname=t1", "-append",
                            "-netdev tap,ifname=no"}),
            (std::vector<std::string>{"vmtap0", "t1"}));
  EXPECT_TRUE(tap_interfaces({"qemu-system-x86_64", "-netdev", "tap,id=n0,fd=3"}).empty());
}

}  // namespace
}  // namespace relive::qemu
