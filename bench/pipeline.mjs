// The in-process DNS pipeline without sockets: Runtime.pipeline.handle(bytes, peer) per query, for a
// managed client (blocked name; cache hit that is inspected for CNAMEs), a guest (cache hit, not
// inspected) and a client outside access.allow (REFUSED). Measures the core's cost per query, the
// figure architecture moves must not regress. Run: npm run build && node bench/pipeline.mjs
// Bounded: each scenario runs ROUNDS × BATCH queries (env BENCH_ROUNDS), best round reported.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startUpstream, wireQuery } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { parseConfig } = await import(`${root}dist/config/load.js`);
const runtimeModule = await import(`${root}dist/runtime/runtime.js`).catch(() => import(`${root}dist/runtime.js`));
const { BlockLog } = await import(`${root}dist/log/block-log.js`);
const { createAppLogger } = await import(`${root}dist/log/logger.js`);

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const BATCH = 200_000;
const dir = mkdtempSync(join(tmpdir(), 'appfence-bench-'));
const upstream = await startUpstream();
const yaml = `dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["127.0.0.1:${upstream.address().port}"]
access: { allow: ["127.0.10.0/24", "127.0.20.0/24"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { managed: { subnets: ["127.0.10.0/24"], block: [tiktok] } }
log: { blocks: "${join(dir, 'blocks.log')}" }
`;
const config = parseConfig(yaml, join(dir, 'appfence.yaml'), {});
const blockLog = new BlockLog({ destination: join(dir, 'blocks.log') });
// after the move to runtime/, start takes an options object
const newLayout = runtimeModule.Runtime.start.length === 2 || !('snapshot' in runtimeModule.Runtime.prototype);
const runtime = await runtimeModule.Runtime.start(config, createAppLogger('silent'), newLayout ? { blockLog } : blockLog);
const pipeline = runtime.pipeline;

const managed = { address: '127.0.10.5', proto: 'udp' };
const guest = { address: '127.0.20.5', proto: 'udp' };
const outsider = { address: '127.0.30.5', proto: 'udp' };
const blocked = wireQuery('www.tiktok.com A', 7);
const allowed = wireQuery('www.example.org A', 8);
await pipeline.handle(allowed, guest); // fill the cache once; every later query is a hit

function run(label, query, peer) {
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) {
      const out = pipeline.handle(query, peer);
      if (!Buffer.isBuffer(out)) throw new Error(`${label}: not answered synchronously`);
    }
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / BATCH);
  }
  console.log(`${label.padEnd(28)} ${best.toFixed(0).padStart(6)} ns/query  (${(1e9 / best / 1e6).toFixed(2)} M/s, best of ${ROUNDS})`);
}

run('managed, blocked', blocked, managed);
run('managed, cache hit', allowed, managed);
run('guest, cache hit', allowed, guest);
run('outside access.allow', allowed, outsider);
await runtime.stop(0);
upstream.close();
