// src/base/url_text.h — text into a URL's query string, one way for the CLI's
// API calls and the ClickHouse store's HTTP queries.
//
//   "/v1/alerts?since=" + UrlEncode("24h")        -> "/v1/alerts?since=24h"
//   UrlEncode("/item/<int:id>/")                  -> "%2Fitem%2F%3Cint%3Aid%3E%2F"
#pragma once

#include <string>
#include <string_view>

namespace cpuledger {

// UrlEncode() — every byte but RFC 3986's unreserved characters
// (A-Z a-z 0-9 - _ . ~) as %XX, so any value is one query parameter.
std::string UrlEncode(std::string_view text);

}  // namespace cpuledger
