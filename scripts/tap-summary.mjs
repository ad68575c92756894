// usage: node scripts/tap-summary.mjs FILE — prints "tap: N passed, N failed[, N skipped]" from tap's
// closing "# { total: … }" line (tap itself prints no such line, and CI reads it).
import { readFileSync } from 'node:fs';
const text = readFileSync(process.argv[2], 'utf8');
const line = text.split('\n').filter((l) => /^# \{ total: \d+/.test(l)).pop();
if (!line) {
  console.log('tap: 0 passed, 1 failed');
  process.exit(0);
}
const n = (k) => +((new RegExp(`${k}: (\\d+)`).exec(line) || [])[1] || 0);
const skipped = n('skip') + n('todo');
console.log(`tap: ${n('pass')} passed, ${n('fail')} failed` + (skipped ? `, ${skipped} skipped` : ''));
