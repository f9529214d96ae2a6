#include "common/log_line.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace relive {
namespace {

using std::chrono::system_clock;

LogEvent event(std::string_view msg, const LogContext* ctx,
               spdlog::level::level_enum level = spdlog::level::info) {
  LogEvent e;
  e.time = system_clock::time_point(std::chrono::milliseconds(1764691200123));  // 2025-12-02
  e.level = level;
  e.program = "relived";
  e.message = msg;
  e.context = ctx;
  return e;
}

TEST(LogLine, HumanLineCarriesTheContext) {
  LogContext ctx = {{"migration", "m1-2"}};
  EXPECT_EQ(format_log_line(LogFormat::kHuman, event("listening", &ctx)),
            "relived: [migration=m1-2] listening\n");
  EXPECT_EQ(format_log_line(LogFormat::kHuman, event("listening", nullptr)),
            "relived: listening\n");
}

TEST(LogLine, HumanLineNamesLevelsOtherThanInfo) {
  EXPECT_EQ(format_log_line(LogFormat::kHuman, event("gone", nullptr, spdlog::level::err)),
            "relived: error: gone\n");
}

TEST(LogLine, HumanLineStaysOneLine) {
  EXPECT_EQ(format_log_line(LogFormat::kHuman, event("a\nb\rc", nullptr)), "relived: a b c\n");
}

TEST(LogLine, JsonLineHasEveryField) {
  LogContext ctx = {{"migration", "m1-2"}, {"epoch", "17"}};
  std::string line = format_log_line(LogFormat::kJson, event("migrated x", &ctx));
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2025-12-02T16:00:00.123Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["prog"], "relived");
  EXPECT_EQ(j["migration"], "m1-2");
  EXPECT_EQ(j["epoch"], "17");
  EXPECT_EQ(j["msg"], "migrated x");
}

TEST(LogLine, JsonEscapesEverything) {
  std::string nasty = std::string("quote\" back\\ nl\n tab\t nul") + '\0' + " bell\x07 end";
  LogContext ctx = {{"migration", "a\"b\n"}};
  std::string line = format_log_line(LogFormat::kJson, event(nasty, &ctx));
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["msg"], nasty);
  EXPECT_EQ(j["migration"], "a\"b\n");
}

TEST(LogLine, JsonSurvivesInvalidUtf8) {
  std::string bad = "bytes \xff\xfe here";
  std::string line = format_log_line(LogFormat::kJson, event(bad, nullptr));
  nlohmann::json j = nlohmann::json::parse(line);  // would throw on invalid output
  EXPECT_NE(j["msg"].get<std::string>().find("here"), std::string::npos);
}

TEST(LogLine, JsonContextCannotShadowTheFixedFields) {
  LogContext ctx = {{"msg", "spoof"}, {"level", "x"}};
  nlohmann::json j = nlohmann::json::parse(format_log_line(LogFormat::kJson, event("real", &ctx)));
  EXPECT_EQ(j["msg"], "real");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["ctx_msg"], "spoof");
  EXPECT_EQ(j["ctx_level"], "x");
}

// The formatter reads the context of the thread that logs.
TEST(LogLine, FormatterUsesTheLoggingThreadsContext) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("t", sink);
  logger.set_formatter(std::make_unique<LogLineFormatter>(LogFormat::kJson, "relived"));
  {
    ScopedLogContext a("migration", "m-a");
    logger.info("first");
    std::thread([&] {
      ScopedLogContext b("migration", "m-b");
      logger.info("second");
    }).join();
  }
  logger.info("third");
  std::istringstream lines(out.str());
  std::string l1, l2, l3;
  ASSERT_TRUE(std::getline(lines, l1) && std::getline(lines, l2) && std::getline(lines, l3));
  EXPECT_EQ(nlohmann::json::parse(l1)["migration"], "m-a");
  EXPECT_EQ(nlohmann::json::parse(l2)["migration"], "m-b");
  EXPECT_FALSE(nlohmann::json::parse(l3).contains("migration")) << l3;
  EXPECT_TRUE(log_context().empty());
}

TEST(LogFormat, ParsesItsTwoNames) {
  EXPECT_EQ(*parse_log_format("human"), LogFormat::kHuman);
  EXPECT_EQ(*parse_log_format("json"), LogFormat::kJson);
  EXPECT_FALSE(parse_log_format("JSON").ok());
  EXPECT_FALSE(parse_log_format("").ok());
}

}  // namespace
}  // namespace relive
