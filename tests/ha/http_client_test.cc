#include "ha/http_client.h"

#include <gtest/gtest.h>

namespace relive::ha {
namespace {

TEST(HttpResponse, ContentLengthChunkedAndToTheEnd) {
  auto a = parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, "ok");
  auto b = parse_http_response(
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n"
      "\r\n");
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->status, 404);
  EXPECT_EQ(b->body, "abcde");
  auto c = parse_http_response("HTTP/1.0 503\r\nServer: x\r\n\r\nrest");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->status, 503);
  EXPECT_EQ(c->body, "rest");
}

TEST(HttpResponse, MalformedIsIoErrorNotAnException) {
  for (const char* t : {
           "",
           "HTTP/1.1 200 OK\r\n",                                 // no end of head
           "SMTP 220 hello\r\n\r\n",                              // not HTTP
           "HTTP/1.1 abc OK\r\n\r\n",                             // status not a number
           "HTTP/1.1 20 OK\r\n\r\n",                              // too short
           "HTTP/1.1 2000 OK\r\n\r\n",                            // too long
           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  // truncated
           "HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nx",    // not a number
           "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nx",  // too big
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nab\r\n0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nab\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab\r\n0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab",  // no end
       }) {
    auto r = parse_http_response(t);
    EXPECT_EQ(r.status().code(), Status::Code::kIoError) << t;
  }
}

}  // namespace
}  // namespace relive::ha
