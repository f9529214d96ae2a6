#include "drivers/qemu/record_replay_args.h"

#include <gtest/gtest.h>

namespace relive::qemu {
namespace {

using Args = std::vector<std::string>;

const Args kRecording = {"/usr/bin/qemu-system-x86_64",
                         "-accel",
                         "tcg",
                         "-icount",
                         "shift=auto,rr=record,rrfile=vm.rr",
                         "-serial",
                         "file:serial.log",
                         "-qmp",
                         "unix:/run/a.sock,server=on,wait=off"};

TEST(RecordReplayArgs, FindsTheRecordingLog) {
  Result<RecordOptions> o = record_options(kRecording);
  ASSERT_TRUE(o.ok()) << o.status().to_string();
  EXPECT_EQ(o->rrfile, "vm.rr");
  EXPECT_EQ(o->rrsnapshot, "");
}

TEST(RecordReplayArgs, RefusesAQemuThatDoesNotRecord) {
  EXPECT_EQ(record_options({"qemu-system-x86_64", "-accel", "tcg"}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(record_options({"qemu-system-x86_64", "-icount", "shift=auto"}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(record_options({"qemu-system-x86_64", "-icount", "shift=auto,rr=replay,rrfile=a"})
                .status()
                .code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(
      record_options({"qemu-system-x86_64", "-icount", "shift=auto,rr=record"}).status().code(),
      Status::Code::kInvalidArgument);
  EXPECT_EQ(record_options({"qemu-system-x86_64", "-icount"}).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(RecordReplayArgs, RefusesARecordingThatStartsFromASnapshot) {
  EXPECT_EQ(record_options(
                {"qemu-system-x86_64", "-icount", "shift=auto,rr=record,rrfile=a,rrsnapshot=init"})
                .status()
                .code(),
            Status::Code::kUnsupported);
  Args loaded = kRecording;
  loaded.insert(loaded.end(), {"-loadvm", "end"});
  EXPECT_EQ(record_options(loaded).status().code(), Status::Code::kUnsupported);
}

TEST(RecordReplayArgs, ReplaysTheShippedLogPausedAtItsEnd) {
  Result<Args> a = replay_args(kRecording, "/vm/replay.rr", "/vm/handover.qcow2", "/vm/qmp.sock");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(*a, (Args{"qemu-system-x86_64", "-accel", "tcg", "-icount",
                      "shift=auto,rr=replay,rrfile=/vm/replay.rr", "-serial", "file:serial.log",
                      "-action", "shutdown=pause", "-drive",
                      "file=/vm/handover.qcow2,if=none,id=relive-handover", "-S", "-qmp",
                      "unix:/vm/qmp.sock,server=on,wait=off"}));
}

TEST(RecordReplayArgs, GoesLiveFromTheSnapshotRecordingANewLog) {
  Result<Args> a = live_args(kRecording, "/vm/live.rr", "/vm/handover.qcow2", "end", "/vm/q.sock");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(*a, (Args{"qemu-system-x86_64", "-accel", "tcg", "-icount",
                      "shift=auto,rr=record,rrfile=/vm/live.rr", "-serial", "file:serial.log",
                      "-drive", "file=/vm/handover.qcow2,if=none,id=relive-handover", "-loadvm",
                      "end", "-S", "-qmp", "unix:/vm/q.sock,server=on,wait=off"}));
}

TEST(RecordReplayArgs, KeepsOtherIcountSettings) {
  Result<Args> a = replay_args(
      {"qemu-system-x86_64", "-icount", "shift=7,align=off,rr=record,rrfile=x"}, "r", "h", "q");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)[2], "shift=7,align=off,rr=replay,rrfile=r");
}

}  // namespace
}  // namespace relive::qemu
