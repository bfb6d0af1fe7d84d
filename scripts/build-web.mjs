// Copies the front-end packages the pages load into handoff/web/vendor (git-ignored), so the
// API serves them itself: nothing is fetched from a CDN at run time. Run by scripts/bootstrap
// after `npm ci`.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "handoff", "web", "vendor");
mkdirSync(vendor, { recursive: true });
const files = [
  ["node_modules/chart.js/dist/chart.umd.js", "chart.umd.js"],
  ["node_modules/chart.js/LICENSE.md", "chart.js-LICENSE.md"],
];
for (const [from, to] of files) {
  copyFileSync(join(root, from), join(vendor, to));
}
console.log(`front-end packages copied into ${vendor}`);
