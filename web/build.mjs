// build.mjs - bundles the UI with esbuild: src/app.js (and what it imports,
// uPlot included) into <out>/app.js and <out>/app.css, minified, and copies
// src/index.html.  The Makefile runs it (node web/build.mjs build/web/dist);
// web/embed.py then embeds the folder into bin/kiln.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, "..", "build", "web", "dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "app.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outfile: join(out, "app.js"),
  logLevel: "warning",
  legalComments: "none",
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
