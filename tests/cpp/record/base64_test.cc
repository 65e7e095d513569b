// Tests for src/record/base64.h: the RFC 4648 vectors and the strictness.
#include "record/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace cpuledger::record {
namespace {

TEST(RecordBase64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    Result<std::string> back = Base64Decode(encoded);
    ASSERT_TRUE(back.ok()) << encoded << ": " << back.status().ToString();
    EXPECT_EQ(*back, plain);
  }
}

TEST(RecordBase64, EveryByteRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len : {all.size(), all.size() - 1, all.size() - 2}) {
    const std::string bytes = all.substr(0, len);
    Result<std::string> back = Base64Decode(Base64Encode(bytes));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, bytes);
  }
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
}

TEST(RecordBase64, PaddingIsOptional) {
  for (const char* text : {"Zg", "Zm8", "Zg==", "Zm8="})
    EXPECT_TRUE(Base64Decode(text).ok()) << text;
  EXPECT_EQ(*Base64Decode("Zm8"), "fo");
}

TEST(RecordBase64, RejectsWhatIsNotBase64) {
  const std::pair<const char*, const char*> bad[] = {
      {"Z", "base64 text has 1 characters, which no byte string encodes to"},
      {"Zm9vY", "base64 text has 5 characters, which no byte string encodes to"},
      {"Zm 9v", "base64 text has an invalid character at offset 2"},
      {"Zm9v\n", "base64 text has an invalid character at offset 4"},
      {"Zm-_", "base64 text has an invalid character at offset 2"},  // URL-safe alphabet
      {"Zg=A", "base64 text has an invalid character at offset 2"},  // padding inside
      {"Z===", "base64 text has an invalid character at offset 1"},
      {"====", "base64 text has an invalid character at offset 0"},
      {"Zh==", "base64 text has non-zero padding bits"},  // "Zg==" is the one spelling of "f"
      {"Zm9=", "base64 text has non-zero padding bits"},
  };
  for (const auto& [text, message] : bad) {
    Result<std::string> r = Base64Decode(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), message) << text;
  }
}

}  // namespace
}  // namespace cpuledger::record
