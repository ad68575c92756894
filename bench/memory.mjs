// Resident memory of a running appfence with ~1M rules loaded (the three lists in shared/data plus
// synthetic names) and a full 100k-entry answer cache (the 100k popular names, asked once each from
// an unmanaged client so every answer is cached). Bounded: 100k queries, 200 in flight, 60 s max.
// Run: npm run build && node bench/memory.mjs
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { startUpstream, sleep, wireQuery } from './lib.mjs';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const data = process.env.APPFENCE_DATA ?? join(root, '../shared/data');
const FILES = ['blocklist-hagezi-light.hosts.txt', 'blocklist-hagezi-pro.domains.txt', 'blocklist-hagezi-multi.adblock.txt'];
for (const f of [...FILES, 'popular-domains.txt']) if (!existsSync(join(data, f))) { console.error(`missing ${data}/${f}`); process.exit(2); }
const dir = mkdtempSync(join(tmpdir(), 'appfence-mem-'));
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

// synthetic rules up to 1M in total
const existing = FILES.reduce((n, f) => n + readFileSync(join(data, f), 'utf8').split('\n').filter((l) => l && !/^[#!\[]/.test(l)).length, 0);
const synth = [];
for (let i = 0; synth.length < 1_000_000 - existing; i++) synth.push(`t${(i * 2654435761 >>> 0).toString(36)}${i.toString(36)}.example-tracker.net`);
writeFileSync(join(dir, 'synthetic.txt'), synth.join('\n') + '\n');

const up = await startUpstream();
const port = 20000 + Math.floor(Math.random() * 20000);
const lists = [...FILES.map((f) => join(data, f)), join(dir, 'synthetic.txt')];
writeFileSync(join(dir, 'appfence.yaml'), `dns:
  listen: ["127.0.0.1:${port}"]
  upstreams: ["127.0.0.1:${up.address().port}"]
  cache: { maxEntries: 100000 }
access: { allow: ["127.0.0.0/8"] }
lists:
${lists.map((f, i) => `  l${i}: { sources: ["${f}"] }`).join('\n')}
groups: { managed: { subnets: ["127.0.10.0/24"], block: [${lists.map((_, i) => `l${i}`).join(', ')}] } }
log: { level: warn, blocks: "${join(dir, 'blocks.log')}" }
`);
const started = Date.now();
const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '--config', join(dir, 'appfence.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
const client = dgram.createSocket('udp4');
await new Promise((r) => client.bind(0, '127.0.0.1', r));
const query = (name, id) => wireQuery(`${name} A`, id);
let answered = 0;
client.on('message', () => { answered++; });
// wait for start-up (list loading) — bounded 60 s
for (let i = 0; i < 600 && answered === 0; i++) { client.send(query('example.org', 1), port, '127.0.0.1'); await sleep(100); }
const startupMs = Date.now() - started;
const afterLoad = rssMb(child.pid);
const names = readFileSync(join(data, 'popular-domains.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
answered = 0;
const deadline = Date.now() + 60_000;
for (let i = 0; i < names.length && Date.now() < deadline; i++) {
  client.send(query(names[i], i & 0xffff), port, '127.0.0.1');
  if (i - answered > 200) await sleep(1);
}
await sleep(1000);
const afterCache = rssMb(child.pid);
child.kill('SIGTERM');
client.close(); up.close();
console.log(`| measure | value |\n|---|---|`);
console.log(`| rules loaded | ${existing + synth.length} |`);
console.log(`| start-up until first answer | ${startupMs} ms |`);
console.log(`| RSS with the rules loaded | ${afterLoad.toFixed(1)} MB |`);
console.log(`| RSS after ${answered} distinct cached answers | ${afterCache.toFixed(1)} MB |`);
