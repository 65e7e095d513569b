// src/server/static_assets.h — the dashboard's files (web/, bundled by
// esbuild at build time), compiled into the binary so that `cpuledger serve`
// and the wheel's copy of it carry the dashboard with nothing to install.
//
//   if (const StaticAsset* a = FindStaticAsset(req.path))
//     res.set_content(std::string(a->body), std::string(a->content_type));
//
// The assets hold no data (the page fetches it from the query API with the
// token), so they are served without the token. A build without node and
// without a pre-bundled web/dist has one placeholder page saying so
// (DashboardBundled() is false then).
#pragma once

#include <string_view>

namespace cpuledger::server {

// StaticAsset — one file served at `path` ("/index.html", "/app.js").
struct StaticAsset {
  std::string_view path;
  std::string_view content_type;  // from the file's extension
  std::string_view body;
};

// FindStaticAsset() — the asset served at `path`; "/" is "/index.html".
// RETURNS: nullptr when there is none. COST: a walk of a handful of entries.
const StaticAsset* FindStaticAsset(std::string_view path);

// DashboardBundled() — false when the build had neither esbuild nor a
// pre-bundled web/dist, and "/" is only a page saying how to build it.
bool DashboardBundled();

}  // namespace cpuledger::server
