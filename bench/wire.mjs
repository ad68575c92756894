// Wire / resolver micro-benchmarks: ns/op of readQuery, Sinkhole.answer, readAnswer, AnswerCache.get (hit),
// and upstream UDP exchanges/s against a loopback echo server for the socket strategies of UpstreamClient
// (a socket per query vs a small rotated pool). Run: npm run build && node bench/wire.mjs
// APPFENCE_DIST=/some/dir points at another build of src/ (default ../dist). Bounded: fixed op counts.
import dgram from 'node:dgram';
import { pathToFileURL } from 'node:url';

const dist = process.env.APPFENCE_DIST ? pathToFileURL(process.env.APPFENCE_DIST.replace(/\/?$/, '/')) : new URL('../dist/', import.meta.url);
const { readQuery } = await import(new URL('wire/read.js', dist));
const { Sinkhole } = await import(new URL('wire/sinkhole.js', dist));
const { readAnswer } = await import(new URL('wire/answer.js', dist));
const { AnswerCache } = await import(new URL('resolver/cache.js', dist));
const { UpstreamClient } = await import(new URL('resolver/upstream.js', dist));

/** www.TikTok.com A with an EDNS OPT (DO=0), 43 bytes as dig sends it. */
const query = Buffer.from('abcd01200001000000000001037777770654696b546f6b03636f6d0000010001' + '0000290fa0000000000000', 'hex');

/** 3 CNAMEs + 2 A records, compressed, with OPT. */
function answerBytes() {
  const name = (s) => Buffer.concat([...s.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const rr = (owner, type, ttl, rdata) => {
    const h = Buffer.alloc(10);
    h.writeUInt16BE(type, 0); h.writeUInt16BE(1, 2); h.writeUInt32BE(ttl, 4); h.writeUInt16BE(rdata.length, 8);
    return Buffer.concat([owner, h, rdata]);
  };
  const header = Buffer.from('abcd81800001000500000001', 'hex');
  const question = query.subarray(12, 32);
  const ptr = Buffer.from([0xc0, 0x0c]);
  return Buffer.concat([header, question,
    rr(ptr, 5, 300, name('www.tiktok.com.edgesuite.net')),
    rr(name('www.tiktok.com.edgesuite.net'), 5, 300, name('a1.w10.akamai.net')),
    rr(name('a1.w10.akamai.net'), 5, 60, name('e1.akamaiedge.net')),
    rr(name('e1.akamaiedge.net'), 1, 20, Buffer.from([192, 0, 2, 1])),
    rr(name('e1.akamaiedge.net'), 1, 20, Buffer.from([192, 0, 2, 2])),
    query.subarray(32)]);
}

function bench(label, ops, fn) {
  for (let i = 0; i < Math.min(ops, 200_000); i++) fn(); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) fn();
  const ns = Number(process.hrtime.bigint() - start) / ops;
  console.log(`${label.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/op`);
}

const q = readQuery(query);
const sinkhole = new Sinkhole('null', 60);
const answer = answerBytes();
const info = readAnswer(answer);
let now = 0;
const cache = new AnswerCache({ maxEntries: 100_000, minTtl: 0, maxTtl: 86400, negativeTtl: 300 }, () => now);
cache.set(q, answer, info);
now = 5000; // a hit 5 s later also rewrites every TTL

bench('readQuery (43 B, EDNS)', 2_000_000, () => readQuery(query));
bench('Sinkhole.answer (null mode, A, EDNS)', 2_000_000, () => sinkhole.answer(query, q));
bench(`readAnswer (${answer.length} B, 3 CNAME + 2 A + OPT)`, 1_000_000, () => readAnswer(answer));
bench('AnswerCache.get hit (TTL rewrite, 6 RR)', 2_000_000, () => cache.get(query, q));
bench('readQuery + cache hit (the cached query path)', 1_000_000, () => { const r = readQuery(query); cache.get(query, r); });

// Upstream UDP: exchanges/s with 100 in flight, 20 000 queries, against an echo server on loopback.
const echo = dgram.createSocket('udp4');
echo.on('message', (msg, rinfo) => { msg[2] |= 0x80; echo.send(msg, rinfo.port, rinfo.address); });
await new Promise((r) => echo.bind(0, '127.0.0.1', r));
const upstream = { proto: 'udp', host: '127.0.0.1', port: echo.address().port, text: 'echo' };
for (const [label, udpSockets, udpSocketUses] of [['socket per query', 1, 1], ['pool 4 sockets x 64 uses', 4, 64], ['pool 8 sockets x 512 uses', 8, 512]]) {
  const client = new UpstreamClient([upstream], { timeoutMs: 2000, udpSockets, udpSocketUses });
  const total = 20_000;
  let sent = 0;
  const start = performance.now();
  const worker = async () => { while (sent < total) { sent++; await client.exchange(query, q); } };
  await Promise.all(Array.from({ length: 100 }, worker));
  const secs = (performance.now() - start) / 1000;
  console.log(`${`upstream UDP, ${label}`.padEnd(44)} ${Math.round(total / secs).toString().padStart(6)} q/s`);
  client.close();
}
echo.close();
