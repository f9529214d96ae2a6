#include "transport/log_writer_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "common/file_util.h"
#include "common/scoped_fd.h"

namespace relive::transport {
namespace {

// Appends "record\n" lines to a file; flush() writes "FLUSH\n" and fsyncs; finish() writes
// "END\n". Fails on demand so the error paths can be driven.
class FileSink : public RecordSink {
 public:
  struct FailAt {
    int append = -1;  // fail the n-th append (0-based)
    bool flush = false;
  };
  FileSink(ScopedFd fd, FailAt fail) : fd_(std::move(fd)), fail_(fail) {}

  Status append(std::string_view record) override {
    if (appends_++ == fail_.append) return Status::IoError("disk full");
    return write_all(fd_.get(), std::string(record) + "\n");
  }
  Status flush() override {
    if (fail_.flush) return Status::IoError("fsync failed");
    RELIVE_RETURN_IF_ERROR(write_all(fd_.get(), "FLUSH\n"));
    return ::fsync(fd_.get()) == 0 ? Status::Ok() : PosixError("fsync", errno);
  }
  Status finish() override { return write_all(fd_.get(), "END\n"); }

 private:
  ScopedFd fd_;
  FailAt fail_;
  int appends_ = 0;
};

class LogWriterProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/relive-logwriter-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/log";
    auto ring = ShmRing::create(1 << 16);
    ASSERT_TRUE(ring.ok());
    ring_.emplace(std::move(ring).value());
  }
  void TearDown() override { (void)remove_tree(dir_); }

  LogWriterProcess::SinkFactory file_sink(FileSink::FailAt fail = {}) {
    std::string path = path_;
    return [path, fail]() -> Result<std::unique_ptr<RecordSink>> {
      ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!fd.valid()) return PosixError("open " + path, errno);
      return std::unique_ptr<RecordSink>(new FileSink(std::move(fd), fail));
    };
  }
  LogWriterProcess start(LogWriterProcess::SinkFactory f) {
    auto w = LogWriterProcess::start(*ring_, std::move(f));
    EXPECT_TRUE(w.ok()) << w.status().to_string();
    return std::move(w).value();
  }
  std::string contents() { return read_file(path_).ok() ? read_file(path_).value() : ""; }

  std::string dir_, path_;
  std::optional<ShmRing> ring_;
};

std::string lines(int from, int to) {
  std::string s;
  for (int i = from; i < to; ++i) s += "rec" + std::to_string(i) + "\n";
  return s;
}

Status push_range(ShmRing& ring, int from, int to) {
  for (int i = from; i < to; ++i) RELIVE_RETURN_IF_ERROR(ring.push("rec" + std::to_string(i)));
  return Status::Ok();
}

TEST_F(LogWriterProcessTest, WritesEveryRecordAndMakesFlushesVisible) {
  LogWriterProcess w = start(file_sink());
  ASSERT_TRUE(push_range(*ring_, 0, 20000).ok());
  ASSERT_TRUE(ring_->push_flush().ok());
  // push_flush returned, so the sink has written (and fsynced) everything before it.
  EXPECT_EQ(contents(), lines(0, 20000) + "FLUSH\n");
  ASSERT_TRUE(push_range(*ring_, 20000, 20100).ok());
  ASSERT_TRUE(w.finish().ok());
  EXPECT_EQ(contents(), lines(0, 20000) + "FLUSH\n" + lines(20000, 20100) + "END\n");
  EXPECT_TRUE(w.finish().ok());  // idempotent
}

TEST_F(LogWriterProcessTest, FinishReportsTheSinkError) {
  LogWriterProcess w = start(file_sink({.append = 5}));
  // The ring may accept all of these before the child fails, or notice its death; both are fine.
  (void)push_range(*ring_, 0, 100);
  Status st = w.finish();
  EXPECT_EQ(st.code(), Status::Code::kIoError);
  EXPECT_NE(st.message().find("exited with status 1"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("disk full"), std::string::npos) << st.message();
}

TEST_F(LogWriterProcessTest, FailedSinkFlushAbortsPushFlush) {
  LogWriterProcess w = start(file_sink({.flush = true}));
  ASSERT_TRUE(ring_->push("a").ok());
  Status st = ring_->push_flush();
  EXPECT_EQ(st.code(), Status::Code::kAborted);
  EXPECT_NE(st.message().find("fsync failed"), std::string::npos) << st.message();
  EXPECT_FALSE(w.finish().ok());
}

TEST_F(LogWriterProcessTest, SinkFactoryFailureIsReported) {
  LogWriterProcess w = start([]() -> Result<std::unique_ptr<RecordSink>> {
    return Status::NotFound("/nonexistent/trace");
  });
  Status st = w.finish();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("open the log sink: /nonexistent/trace"), std::string::npos)
      << st.message();
}

TEST_F(LogWriterProcessTest, ChildIgnoresTerminalSignals) {
  LogWriterProcess w = start(file_sink());
  ASSERT_TRUE(ring_->push("before").ok());
  ASSERT_TRUE(ring_->push_flush().ok());  // the child is past its signal setup
  for (int sig : {SIGINT, SIGQUIT, SIGHUP}) ASSERT_EQ(::kill(w.pid(), sig), 0);
  ASSERT_TRUE(ring_->push("after").ok());
  ASSERT_TRUE(w.finish().ok());
  EXPECT_EQ(contents(), "before\nFLUSH\nafter\nEND\n");
}

TEST_F(LogWriterProcessTest, DestructorReapsAnUnfinishedChild) {
  pid_t pid;
  {
    LogWriterProcess w = start(file_sink());
    pid = w.pid();
    ASSERT_TRUE(ring_->push("x").ok());
  }
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(contents(), "x\nEND\n");  // the destructor let it drain
}

// The tracer dies without finish(): the orphaned log writer keeps what it got, flushes, does not
// finish(), and exits with status 2. We become a subreaper to collect the orphan.
TEST_F(LogWriterProcessTest, WriterSurvivesTracerDeath) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t tracer = ::fork();
  if (tracer == 0) {
    auto w = LogWriterProcess::start(*ring_, file_sink());
    if (!w.ok() || !push_range(*ring_, 0, 3).ok()) ::_exit(3);
    ::_exit(0);  // no finish(), no destructor
  }
  int ws = 0;
  ASSERT_EQ(::waitpid(tracer, &ws, 0), tracer);
  ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  pid_t orphan = ::waitpid(-1, &ws, 0);  // the log writer, reparented to us
  ASSERT_GT(orphan, 0);
  EXPECT_TRUE(WIFEXITED(ws));
  EXPECT_EQ(WEXITSTATUS(ws), 2);
  EXPECT_EQ(contents(), lines(0, 3) + "FLUSH\n");
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace relive::transport
