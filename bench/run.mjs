// npm run bench: every benchmark in turn, each in its own process (figures in the README / closing notes).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
const here = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2);
const benches = [
  ['match.mjs', ['--expose-gc']],
  ['pipeline.mjs', []],
  ['dns.mjs', []],
  ['doh.mjs', []],
  ['tls.mjs', []],
  ['proxy.mjs', []],
  ['memory.mjs', ['--expose-gc']],
  ['soak.mjs', []],
];
let failed = 0;
for (const [file, flags] of benches) {
  if (only.length > 0 && !only.some((o) => file.startsWith(o))) continue;
  console.log(`\n## bench/${file}`);
  const r = spawnSync(process.execPath, [...flags, `${here}${file}`], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
