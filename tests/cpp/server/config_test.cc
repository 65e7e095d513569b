// tests/cpp/server/config_test.cc — LoadServerConfigFile() on real TOML
// files, and ValidateServerConfig() on configs built in code.
#include "server/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

#include "server/alert_sink.h"
#include "temp_dir.h"

namespace cpuledger::server {
namespace {

class ConfigFile : public ::testing::Test {
 protected:
  // Load() — writes `toml` to a file and loads it over `config`.
  Status Load(const std::string& toml) {
    const std::string path = dir_.File("cpuledger.toml");
    std::ofstream(path) << toml;
    return LoadServerConfigFile(path, config);
  }
  // LoadError() — the message of a load that must fail.
  std::string LoadError(const std::string& toml) {
    Status s = Load(toml);
    EXPECT_FALSE(s.ok()) << toml;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    return s.message();
  }

  test_support::TempDir dir_;
  ServerConfig config;
};

TEST_F(ConfigFile, DefaultsWhenTheKeysAreAbsent) {
  ASSERT_TRUE(Load("port = 9000\n").ok());
  EXPECT_EQ(config.port, 9000);
  EXPECT_EQ(config.detect_every_us, 5LL * 60 * 1'000'000);
  EXPECT_EQ(config.detect_window_us, 24LL * 3600 * 1'000'000);
  EXPECT_EQ(config.profile_retention_us, 90LL * 86400 * 1'000'000);
  EXPECT_EQ(config.tally_retention_us, 90LL * 86400 * 1'000'000);
  EXPECT_DOUBLE_EQ(config.detect_confidence, 0.90);
  EXPECT_DOUBLE_EQ(config.detect_fdr, 0.05);
  EXPECT_DOUBLE_EQ(config.threshold_floor, 0.01);
  EXPECT_TRUE(config.thresholds.empty());
  EXPECT_TRUE(config.webhooks.empty());
  EXPECT_TRUE(config.webhook_token.empty());
  EXPECT_EQ(config.webhook_attempts, 6);
  EXPECT_EQ(config.webhook_backoff_us, 2'000'000);
  EXPECT_EQ(config.webhook_max_backoff_us, 60'000'000);
  EXPECT_EQ(config.header_timeout_us, 10'000'000);
  EXPECT_EQ(config.request_timeout_us, 60'000'000);
}

// The example at the top of config.h, verbatim in shape.
TEST_F(ConfigFile, TheDocumentedExampleLoads) {
  Status s = Load(R"(
bind = "127.0.0.1"
port = 8750
data_dir = "/var/lib/cpuledger"
token = "s3cret"
raw_retention = "14d"
profile_retention = "30d"
tally_retention = "60d"
detect_every = "10m"
detect_window = "12h"
detect_confidence = 0.95
detect_fdr = 0.1
threshold_floor = 0.02
webhooks = ["http://hooks.internal:9000/cpuledger", "http://127.0.0.1:9001/"]
webhook_token = "hook-s3cret"
webhook_attempts = 4
webhook_backoff = "1s"
webhook_max_backoff = "30s"
header_timeout = "5s"
request_timeout = "2m"

[thresholds.shop]
"/checkout/" = 0.02
"/search/" = 0.05

[thresholds."billing.api"]
"/invoice/<id>/" = 1
)");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(config.detect_every_us, 600'000'000);
  EXPECT_EQ(config.profile_retention_us, 30LL * 86400 * 1'000'000);
  EXPECT_EQ(config.tally_retention_us, 60LL * 86400 * 1'000'000);
  EXPECT_EQ(config.detect_window_us, 12LL * 3600 * 1'000'000);
  EXPECT_DOUBLE_EQ(config.detect_confidence, 0.95);
  EXPECT_DOUBLE_EQ(config.detect_fdr, 0.1);
  EXPECT_DOUBLE_EQ(config.threshold_floor, 0.02);
  ASSERT_EQ(config.webhooks.size(), 2u);
  EXPECT_EQ(config.webhooks[0], "http://hooks.internal:9000/cpuledger");
  EXPECT_EQ(config.webhook_token, "hook-s3cret");
  EXPECT_EQ(config.webhook_attempts, 4);
  EXPECT_EQ(config.webhook_backoff_us, 1'000'000);
  EXPECT_EQ(config.webhook_max_backoff_us, 30'000'000);
  EXPECT_EQ(config.header_timeout_us, 5'000'000);
  EXPECT_EQ(config.request_timeout_us, 120'000'000);
  ASSERT_EQ(config.thresholds.size(), 3u);
  EXPECT_DOUBLE_EQ(config.thresholds.at("shop /checkout/"), 0.02);
  EXPECT_DOUBLE_EQ(config.thresholds.at("shop /search/"), 0.05);
  EXPECT_DOUBLE_EQ(config.thresholds.at("billing.api /invoice/<id>/"), 1.0);
  EXPECT_TRUE(ValidateServerConfig(config).ok()) << ValidateServerConfig(config).ToString();
}

TEST_F(ConfigFile, DetectEveryOffDisablesTheSchedule) {
  ASSERT_TRUE(Load("detect_every = \"off\"\n").ok());
  EXPECT_EQ(config.detect_every_us, 0);
  config.detect_every_us = 1;
  ASSERT_TRUE(Load("detect_every = \"0\"\n").ok());
  EXPECT_EQ(config.detect_every_us, 0);
  ASSERT_TRUE(Load("detect_every = \"30s\"\n").ok());
  EXPECT_EQ(config.detect_every_us, 30'000'000);
}

TEST_F(ConfigFile, AnIntegerFloorIsANumber) {
  ASSERT_TRUE(Load("threshold_floor = 0\n").ok());
  EXPECT_EQ(config.threshold_floor, 0.0);
}

TEST_F(ConfigFile, DetectWindowsPerServiceStartFromTheSharedOnes) {
  Status s = Load(R"(
[detect_windows.batch]
max_side = "12h"
[detect_windows]
samples = 2000
min_side = "5m"
)");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(config.detect_windows.samples, 2000u);
  EXPECT_EQ(config.detect_windows.min_side_us, 5LL * 60 * 1'000'000);
  EXPECT_EQ(config.detect_windows.max_side_us, 3LL * 3600 * 1'000'000);  // the default
  ASSERT_EQ(config.detect_windows_by_service.count("batch"), 1u);
  const DetectWindows& batch = config.detect_windows_by_service.at("batch");
  EXPECT_EQ(batch.samples, 2000u);  // from [detect_windows], written after it
  EXPECT_EQ(batch.min_side_us, 5LL * 60 * 1'000'000);
  EXPECT_EQ(batch.max_side_us, 12LL * 3600 * 1'000'000);
}

TEST_F(ConfigFile, BadDetectWindowsNameTheKey) {
  EXPECT_NE(LoadError("detect_windows = 3\n").find("'detect_windows' must be a table"),
            std::string::npos);
  EXPECT_NE(LoadError("[detect_windows]\nsamples = 0\n").find("detect_windows.samples"),
            std::string::npos);
  EXPECT_NE(LoadError("[detect_windows]\nmax_sides = \"1h\"\n").find("unknown key 'max_sides'"),
            std::string::npos);
  EXPECT_NE(LoadError("[detect_windows.shop]\nmax_side = 3\n").find("detect_windows.shop.max_side"),
            std::string::npos);
  EXPECT_NE(LoadError("[detect_windows.shop]\nmin_side = \"4h\"\n")
                .find("detect_windows.shop: max_side must be at least min_side"),
            std::string::npos);
}

// profile_flags: absent is every flag, [] none, a list those flags.
TEST_F(ConfigFile, ProfileFlagsListTheFlagsThatKeepCallPaths) {
  EXPECT_FALSE(config.profile_flags.has_value());
  ASSERT_TRUE(Load("profile_flags = [\"new_search\", \"ranker\"]\n").ok());
  EXPECT_EQ(config.profile_flags, (std::set<std::string>{"new_search", "ranker"}));
  ASSERT_TRUE(Load("profile_flags = []\n").ok());
  EXPECT_EQ(config.profile_flags, std::set<std::string>{});
  EXPECT_NE(LoadError("profile_flags = \"new_search\"\n").find("'profile_flags' must be an array"),
            std::string::npos);
  EXPECT_NE(LoadError("profile_flags = [\"\"]\n").find("flag names"), std::string::npos);
}

TEST_F(ConfigFile, UnknownKeysAreErrorsListingTheKnownOnes) {
  const std::string m = LoadError("webhook = [\"http://x/\"]\n");
  EXPECT_NE(m.find("unknown key 'webhook'"), std::string::npos) << m;
  EXPECT_NE(m.find("webhooks"), std::string::npos) << m;
  EXPECT_NE(m.find("detect_every"), std::string::npos) << m;
  EXPECT_NE(m.find("cpuledger.toml"), std::string::npos) << m;
}

TEST_F(ConfigFile, BadValuesNameTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"webhooks = [\"ftp://hooks/x\"]", "scheme must be http"},
      {"webhooks = \"http://hooks/x\"", "'webhooks' must be an array"},
      {"webhooks = [1]", "'webhooks' must be an array"},
      {"webhooks = [\"http://user:pw@hooks/x\"]", "user:password@"},
      {"webhook_attempts = 0", "'webhook_attempts' must be a positive integer"},
      {"webhook_attempts = 21", "webhook_attempts must be in 1..20"},
      {"webhook_attempts = 2.5", "'webhook_attempts' must be a positive integer"},
      {"webhook_token = 7", "'webhook_token' must be a string"},
      {"webhook_token = \"a b\"", "webhook_token must not contain spaces"},
      {"webhook_backoff = \"10s\"\nwebhook_max_backoff = \"5s\"",
       "webhook_max_backoff must be at least webhook_backoff"},
      {"webhook_backoff = \"soon\"", "webhook_backoff"},
      {"detect_every = \"500ms\"", "detect_every must be at least 1s"},
      {"header_timeout = \"10ms\"", "header_timeout and request_timeout must be at least 100ms"},
      {"request_timeout = 60", "'request_timeout' must be a duration string"},
      {"detect_every = 300", "'detect_every' must be a duration string"},
      {"detect_window = \"-1h\"", "detect_window"},
      {"detect_confidence = 1.5", "detect_confidence must be in (0.5, 1)"},
      {"detect_confidence = 0.5", "detect_confidence must be in (0.5, 1)"},
      {"detect_confidence = \"high\"", "'detect_confidence' must be a number"},
      {"detect_fdr = 0", "detect_fdr must be in (0, 0.5]"},
      {"detect_fdr = 0.6", "detect_fdr must be in (0, 0.5]"},
      {"threshold_floor = -0.01", "threshold_floor must be in [0, 1]"},
      {"threshold_floor = nan", "threshold_floor must be in [0, 1]"},
      {"thresholds = 0.02", "'thresholds' must be a table of services"},
      {"[thresholds]\nshop = 0.02", "thresholds.shop must be a table"},
      {"[thresholds.shop]\n\"/checkout/\" = \"2%\"", "thresholds.shop \"/checkout/\" must be a"},
      {"[thresholds.shop]\n\"/checkout/\" = 0", "must be in (0, 10]"},
      {"[thresholds.shop]\n\"/checkout/\" = 11", "must be in (0, 10]"},
      {"[thresholds.shop]\n\"/checkout/\" = inf", "must be in (0, 10]"},
      {"[thresholds.shop]\n\"\" = 0.02", "must be \"<service> <endpoint>\""},
      {"[thresholds.\"my shop\"]\n\"/x/\" = 0.02", "must be \"<service> <endpoint>\""},
  };
  for (const auto& [toml, want] : cases) {
    const std::string m = LoadError(toml + "\n");
    EXPECT_NE(m.find(want), std::string::npos) << toml << "\n  -> " << m;
  }
}

TEST_F(ConfigFile, ABadFileLeavesTheConfigAsItWas) {
  config.port = 1234;
  config.webhooks = {"http://before/"};
  EXPECT_FALSE(Load("port = 9000\nwebhooks = [\"http://after/\"]\ndetect_fdr = 2\n").ok());
  EXPECT_EQ(config.port, 1234);
  ASSERT_EQ(config.webhooks.size(), 1u);
  EXPECT_EQ(config.webhooks[0], "http://before/");
}

TEST_F(ConfigFile, TheFilesWebhooksReplaceTheEarlierList) {
  config.webhooks = {"http://before/"};
  ASSERT_TRUE(Load("webhooks = [\"http://after/\"]\n").ok());
  ASSERT_EQ(config.webhooks.size(), 1u);
  EXPECT_EQ(config.webhooks[0], "http://after/");
}

TEST_F(ConfigFile, HttpsIsAcceptedExactlyWhenSupported) {
  Status s = Load("webhooks = [\"https://hooks.example.com/x\"]\n");
  EXPECT_EQ(s.ok(), HttpsWebhooksSupported()) << s.ToString();
  if (!s.ok()) {
    EXPECT_NE(s.message().find("https is not supported"), std::string::npos);
  }
}

TEST_F(ConfigFile, SyntaxErrorIsIo) {
  Status s = Load("port = = 3\n");
  EXPECT_EQ(s.code(), StatusCode::kIo);
  EXPECT_NE(s.message().find("line 1"), std::string::npos) << s.message();
}

TEST(ValidateServerConfig, ChecksTheNewFieldsToo) {
  ServerConfig c;
  c.data_dir = "/tmp/x";
  ASSERT_TRUE(ValidateServerConfig(c).ok());

  ServerConfig bad = c;
  bad.webhooks = {"gopher://x/"};
  Status s = ValidateServerConfig(bad);
  EXPECT_NE(s.message().find("webhooks: webhook URL 'gopher://x/'"), std::string::npos)
      << s.message();

  bad = c;
  bad.detect_every_us = 0;  // off is fine
  EXPECT_TRUE(ValidateServerConfig(bad).ok());
  bad.detect_every_us = -5;
  EXPECT_FALSE(ValidateServerConfig(bad).ok());

  bad = c;
  bad.thresholds["shop"] = 0.02;  // no endpoint
  EXPECT_FALSE(ValidateServerConfig(bad).ok());
  bad.thresholds = {{"shop /checkout/", 0.02}};
  EXPECT_TRUE(ValidateServerConfig(bad).ok());

  bad = c;
  bad.webhook_attempts = 0;
  EXPECT_FALSE(ValidateServerConfig(bad).ok());
  bad = c;
  bad.detect_window_us = 0;
  EXPECT_FALSE(ValidateServerConfig(bad).ok());
}

}  // namespace
}  // namespace cpuledger::server
