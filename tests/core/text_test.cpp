// Shared text helpers: JSON string literals as RFC 8259 wants them.
#include "qingshui/core/text.h"

#include <gtest/gtest.h>

namespace qingshui {
namespace {

TEST(Text, JsonStringEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("l1\nl2\tx\r"), "\"l1\\nl2\\tx\\r\"");
  EXPECT_EQ(JsonString(std::string("\x01", 1)), "\"\\u0001\"");
  EXPECT_EQ(JsonString("张留庄"), "\"张留庄\"");  // UTF-8 passes through
}

}  // namespace
}  // namespace qingshui
