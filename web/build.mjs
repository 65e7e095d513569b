// web/build.mjs — type-checks the dashboard (tsc, web/tsconfig.json) and
// bundles it into one folder: index.html, app.js, app.css (uPlot's and
// d3-flame-graph's CSS included), favicon.svg. Run by the CMake build
// (src/server/CMakeLists.txt), which then compiles the folder into the binary.
// favicon.svg too: without it the browser asks for /favicon.ico, which is
// not a dashboard file and so needs the token (a 401 in the console).
//   node web/build.mjs OUT_DIR
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node web/build.mjs OUT_DIR");
  process.exit(2);
}
// Types first (esbuild strips them without a look): any error stops the build.
const tsc = spawnSync(process.execPath, [join(here, "..", "node_modules", "typescript", "bin", "tsc"), "-p", here], {
  stdio: "inherit",
});
if (tsc.status !== 0) {
  console.error("web/build.mjs: the dashboard's TypeScript does not type-check");
  process.exit(1);
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(here, "src", "main.ts") },
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  outdir: out,
  logLevel: "warning",
  legalComments: "eof",
});
for (const file of ["index.html", "favicon.svg"]) copyFileSync(join(here, file), join(out, file));
