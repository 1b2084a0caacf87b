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

TEST(Text, SplitCsvLineQuotesTrimsAndFlagsAnOpenQuote) {
  bool open = true;
  EXPECT_EQ(SplitCsvLine(" a , b,c ", &open), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(open);
  EXPECT_EQ(SplitCsvLine("\"x,y\",\"say \"\"hi\"\"\",", &open),
            (std::vector<std::string>{"x,y", "say \"hi\"", ""}));
  EXPECT_FALSE(open);
  EXPECT_EQ(SplitCsvLine("a,\"open", &open), (std::vector<std::string>{"a", "open"}));
  EXPECT_TRUE(open);
  EXPECT_EQ(SplitCsvLine(""), (std::vector<std::string>{""}));
}

}  // namespace
}  // namespace qingshui
