// tests/cpp/base/text_test.cc — SignedPercent() and UrlEncode().
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "base/percent_text.h"
#include "base/url_text.h"

namespace cpuledger {
namespace {

TEST(SignedPercentTest, SignsDigitsAndNonFinite) {
  EXPECT_EQ(SignedPercent(0.031), "+3.1%");
  EXPECT_EQ(SignedPercent(-0.2, 2), "-20.00%");
  EXPECT_EQ(SignedPercent(0.0), "+0.0%");
  EXPECT_EQ(SignedPercent(std::nan("")), "?");
  EXPECT_EQ(SignedPercent(INFINITY), "?");
}

TEST(UrlEncodeTest, KeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UrlEncode("24h"), "24h");
  EXPECT_EQ(UrlEncode("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(UrlEncode("/item/<int:id>/"), "%2Fitem%2F%3Cint%3Aid%3E%2F");
  EXPECT_EQ(UrlEncode("a b&c=d,e"), "a%20b%26c%3Dd%2Ce");
  EXPECT_EQ(UrlEncode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(UrlEncode(std::string("\0x", 2)), "%00x");
}

}  // namespace
}  // namespace cpuledger
