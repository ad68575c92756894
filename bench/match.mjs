// Matcher benchmark: parse + index 1,000,000 rules (the three HaGeZi lists in shared/data plus
// synthetic names), heap after gc, and lookups/s of the Umbrella top-100k names on one core.
// Run: npm run build && node --expose-gc bench/match.mjs
// APPFENCE_DIST=/some/dir points at another build of src/ (default ../dist). Bounded: at most
// 40 rounds of 100k lookups or 6 s per measurement.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dist = process.env.APPFENCE_DIST ? pathToFileURL(process.env.APPFENCE_DIST.replace(/\/?$/, '/')) : new URL('../dist/', import.meta.url);
const data = process.env.APPFENCE_DATA ?? `${here}../../shared/data`;
const { listFromTexts } = await import(new URL('lists/load-lists.js', dist));
const { readSource } = await import(new URL('lists/source.js', dist));
const { DomainIndex } = await import(new URL('match/domain-index.js', dist));
const { normalizeName } = await import(new URL('match/normalize.js', dist));

const TARGET_RULES = 1_000_000;
const FILES = ['blocklist-hagezi-light.hosts.txt', 'blocklist-hagezi-pro.domains.txt', 'blocklist-hagezi-multi.adblock.txt'];
for (const f of [...FILES, 'popular-domains.txt']) {
  if (!existsSync(`${data}/${f}`)) { console.error(`missing ${data}/${f} (set APPFENCE_DATA)`); process.exit(2); }
}
if (typeof globalThis.gc !== 'function') console.warn('run with node --expose-gc for heap figures');
const gc = () => { globalThis.gc?.(); globalThis.gc?.(); };
const mb = (n) => (n / 1048576).toFixed(1);
// Typed arrays and big flat strings live outside the V8 heap (external): both are counted.
const memory = () => { gc(); const m = process.memoryUsage(); return { heap: m.heapUsed, external: m.external }; };

/** Deterministic names that look like tracker hosts: 2–4 labels of varied length. */
function syntheticList(count) {
  let seed = 0x2545f491;
  const rand = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const label = (min, spread) => { let s = ''; for (let k = min + rand(spread); k > 0; k--) s += alphabet[rand(36)]; return s; };
  const tlds = ['com', 'net', 'org', 'io', 'xyz', 'info', 'co.uk', 'de', 'ru', 'top'];
  const lines = [];
  for (let i = 0; i < count; i++) {
    const parts = [];
    for (let k = rand(3); k > 0; k--) parts.push(label(2, 8));
    parts.push(`${label(4, 10)}${i.toString(36)}`, tlds[rand(tlds.length)]);
    lines.push(parts.join('.'));
  }
  return lines.join('\n');
}

const base = memory();
let t0 = performance.now();
let texts = await Promise.all(FILES.map(async (f) => ({ source: `${data}/${f}`, text: await readSource(`${data}/${f}`) })));
const readMs = performance.now() - t0;

// Count what the real lists yield first, so the synthetic part tops them up to exactly 1M rules.
const realRules = texts.reduce((n, e) => n + listFromTexts('probe', [e]).ruleCount, 0);
const synthetic = { source: 'synthetic', text: syntheticList(Math.max(0, TARGET_RULES - realRules)) };
gc();

t0 = performance.now();
let lists = [
  listFromTexts('light', [texts[0]]),
  listFromTexts('pro', [texts[1]]),
  listFromTexts('multi', [texts[2]]),
  listFromTexts('synthetic', [synthetic]),
];
const parseMs = performance.now() - t0;
t0 = performance.now();
const index = DomainIndex.build(lists);
const indexMs = performance.now() - t0;
texts = null;
synthetic.text = '';
const rejects = lists.map((l) => l.rejectCount);
lists = null;
const after = memory();

const names = readFileSync(`${data}/popular-domains.txt`, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));

function lookups(fn) {
  fn(); // warm-up round, lets the JIT settle
  let rounds = 0;
  const start = performance.now();
  while (rounds < 40 && performance.now() - start < 6000) { fn(); rounds++; }
  const seconds = (performance.now() - start) / 1000;
  return (rounds * names.length) / seconds;
}
const ALL = 0b1111;
let hits = 0;
const matchAll = () => { hits = 0; for (let i = 0; i < names.length; i++) if (index.match(names[i], ALL) >= 0) hits++; };
const matchOne = () => { for (let i = 0; i < names.length; i++) index.match(names[i], 0b0010); };
const normalizeAndMatch = () => { for (let i = 0; i < names.length; i++) { const n = normalizeName(names[i]); if (n !== null) index.match(n, ALL); } };
const rateAll = lookups(matchAll);
const rateOne = lookups(matchOne);
const rateNorm = lookups(normalizeAndMatch);
const perList = [0, 1, 2, 3].map((l) => names.reduce((n, name) => n + (index.match(name, 1 << l) >= 0 ? 1 : 0), 0));

const buildMs = parseMs + indexMs;
const used = after.heap - base.heap + after.external - base.external;
const rows = [
  ['rules indexed', index.ruleCount.toLocaleString('en'), `${TARGET_RULES.toLocaleString('en')}`, index.ruleCount >= TARGET_RULES],
  ['  real (3 HaGeZi lists)', realRules.toLocaleString('en'), '', null],
  ['read files (ms)', readMs.toFixed(0), '', null],
  ['parse (ms)', parseMs.toFixed(0), '', null],
  ['index (ms)', indexMs.toFixed(0), '', null],
  ['build = parse + index (ms)', buildMs.toFixed(0), '< 2000', buildMs < 2000],
  ['heap after gc (MB, V8 heap)', mb(after.heap - base.heap), '', null],
  ['external after gc (MB)', mb(after.external - base.external), '', null],
  ['heap + external (MB)', mb(used), '< 120', used < 120 * 1048576],
  ['lookups/s, 4 lists', Math.round(rateAll).toLocaleString('en'), '>= 3,000,000', rateAll >= 3e6],
  ['lookups/s, 1 list', Math.round(rateOne).toLocaleString('en'), '', null],
  ['normalise + lookup /s', Math.round(rateNorm).toLocaleString('en'), '', null],
  ['hits of 100k names, 4 lists', hits.toLocaleString('en'), '', null],
  ['  light / pro / multi / synth', perList.join(' / '), '', null],
  ['rejected lines per list', rejects.join(' / '), '', null],
];
const w = [30, 16, 14];
console.log(`${'measure'.padEnd(w[0])} ${'value'.padStart(w[1])} ${'target'.padStart(w[2])}`);
for (const [k, v, target, ok] of rows) {
  console.log(`${k.padEnd(w[0])} ${String(v).padStart(w[1])} ${target.padStart(w[2])}${ok === null ? '' : ok ? '  ok' : '  MISSED'}`);
}
console.log(`node ${process.version}, ${names.length.toLocaleString('en')} query names`);
