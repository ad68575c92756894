// The block log's own writer: the same bytes pino wrote, one write per event-loop turn however many
// lines, exact accounting when the destination refuses writes, everything queued written by close()
// (SIGTERM), and whole lines only when several processes share one pipe.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { BlockLog, type LogEvent } from '../../src/log/block-log.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tmpFile = (): string => join(mkdtempSync(join(tmpdir(), 'appfence-blockwriter-')), 'blocks.log');
const event = (i: number, extra: Partial<LogEvent> = {}): LogEvent => ({
  client: '10.20.4.7', group: 'city-devices', via: 'subnet', device: null,
  name: `n${i}.tiktok.com`, qtype: 'A', rule: 'tiktok.com', list: 'tiktok', answer: 'null', ...extra,
});
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

t.test('the same bytes as the pino configuration it replaces, for every kind of field value', async (t) => {
  const events: LogEvent[] = [
    event(1),
    event(2, { via: 'cert', device: 'laptop-042', qtype: undefined }),
    event(3, { name: 'quo"te\\back.slash.example', device: 'CN with "quotes"' }),
    event(4, { name: '\x01ctl\x1f.example\x7f', group: 'tab\there' }),
    event(5, { name: 'caf\xe9.latin1.example', device: 'Müller-Lüdenscheid ✓' }),
    event(6, { name: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example`, cname: 'edge.tiktokcdn.com' }),
    event(7, { rule: null, list: null, answer: 'forward' }),
  ];
  let pinoText = '';
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { pinoText += chunk.toString('utf8'); cb(); } });
  const fixedTime = () => `,"time":"T"`.slice(1);
  // The old block log: pino with SPEC's fields only and one child per event × proto.
  const old = pino({ base: null, timestamp: fixedTime, formatters: { level: () => ({}) } }, sink);
  for (const [i, ev] of events.entries()) old.child({ event: i % 2 ? 'query' : 'block', proto: i % 3 ? 'doh' : 'udp' }).info(ev);

  const file = tmpFile();
  const log = new BlockLog({ destination: file, sync: true });
  for (const [i, ev] of events.entries()) (i % 2 ? log.query.bind(log) : log.block.bind(log))(i % 3 ? 'doh' : 'udp', ev);
  await log.close();
  const ours = readFileSync(file, 'utf8').replace(/"time":"[^"]+"/g, '"time":"T"');
  t.equal(ours, pinoText, 'byte for byte');
  t.equal(lines(file).length, events.length);
});

t.test('one write for every line logged in one event-loop turn; the next turn is the next write', async (t) => {
  const file = tmpFile();
  const log = new BlockLog({ destination: file, reportIntervalMs: 60_000 });
  for (let i = 0; i < 500; i++) log.block('udp', event(i));
  t.equal(lines(file).length, 0, 'nothing written while the turn runs');
  await turn();
  await log.settle();
  t.equal(log.writes, 1, '500 lines, one write(2)');
  t.equal(lines(file).length, 500);
  for (let i = 500; i < 510; i++) log.block('tcp', event(i));
  await turn();
  await log.settle();
  t.equal(log.writes, 2);
  const names = lines(file).map((l) => (JSON.parse(l) as LogEvent).name);
  t.same(names, Array.from({ length: 510 }, (_, i) => `n${i}.tiktok.com`), 'every line, in order');
  await log.close();
});

t.test('lines logged while a write is in flight form the next batch; close() writes all of them (SIGTERM)', async (t) => {
  const file = tmpFile();
  const log = new BlockLog({ destination: file, reportIntervalMs: 60_000 });
  let logged = 0;
  // ten turns of 300 lines each: later turns land while the previous batch is being written
  for (let turnNo = 0; turnNo < 10; turnNo++) {
    for (let i = 0; i < 300; i++) log.block('udp', event(logged++));
    await turn();
  }
  for (let i = 0; i < 1000; i++) log.block('udp', event(logged++)); // queued, not yet written
  await log.close();
  const names = lines(file).map((l) => (JSON.parse(l) as LogEvent).name);
  t.equal(names.length, logged, 'close() resolves only once every line is in the file');
  t.same(names, Array.from({ length: logged }, (_, i) => `n${i}.tiktok.com`), 'in order');
  t.ok(log.writes < logged / 50, `batched: ${log.writes} writes for ${logged} lines`);
  t.equal(log.suppressedTotal, 0);
});

t.test('a destination that refuses writes: every line is counted as suppressed, nothing thrown', async (t) => {
  const log = new BlockLog({ destination: '/dev/full', reportIntervalMs: 60_000 }); // ENOSPC on every write
  await log.ready();
  for (let i = 0; i < 300; i++) log.block('udp', event(i));
  await turn();
  await log.settle();
  t.equal(log.suppressedTotal, 300, 'each lost line counted once');
  t.equal(log.written, 300);
  await log.close();
});

t.test('over the ceiling: written + suppressed = logged, and the count reaches the file', async (t) => {
  const file = tmpFile();
  const log = new BlockLog({ destination: file, maxBufferBytes: 8192, reportIntervalMs: 60_000 });
  for (let i = 0; i < 1000; i++) log.block('udp', event(i));
  await turn();
  for (let i = 1000; i < 2000; i++) log.block('udp', event(i)); // a second burst while the first batch is written
  await log.close();
  const parsed = lines(file).map((l) => JSON.parse(l) as Record<string, unknown>);
  const blocks = parsed.filter((l) => l['event'] === 'block').length;
  const reported = parsed.filter((l) => l['event'] === 'suppressed').reduce((n, l) => n + Number(l['count']), 0);
  t.ok(reported > 0);
  t.equal(blocks + reported, 2000, 'written + suppressed = logged');
  t.equal(reported, log.suppressedTotal);
});

t.test('an unopenable file: ready() rejects with the error code', async (t) => {
  const notADir = join(mkdtempSync(join(tmpdir(), 'appfence-blockwriter-')), 'plain-file');
  writeFileSync(notADir, '');
  const log = new BlockLog({ destination: join(notADir, 'logs', 'blocks.log') });
  await t.rejects(log.ready(), { code: /ENOTDIR|EEXIST/ });
  log.block('udp', event(1));
  t.equal(log.suppressedTotal, 1, 'a line with nowhere to go is counted');
  await log.close();
});

t.test('several processes writing "stdout" into one pipe never interleave inside a line', async (t) => {
  const perChild = 3000;
  // Long names make lines of ~600 bytes, so a 4 KiB pipe buffer boundary falls inside lines often.
  const script = `
    const { BlockLog } = await import(${JSON.stringify(join(root, 'dist/log/block-log.js'))});
    const log = new BlockLog({ destination: 'stdout', reportIntervalMs: 60000 });
    const who = process.argv.at(-1);
    let i = 0;
    const burst = () => {
      for (let k = 0; k < 100 && i < ${perChild}; k++, i++) log.block('udp', { client: who, group: 'g', via: 'subnet', device: null,
        name: 'x'.repeat(60) + '.' + 'y'.repeat(60) + '.' + i + '.' + 'z'.repeat(400), qtype: 'A', rule: 'r', list: 'l', answer: 'null' });
      if (i < ${perChild}) setImmediate(burst); else log.close();
    };
    burst();`;
  // sh's `|` is a real pipe(2); the three writers share its write end as their stdout
  const sh = spawn('sh', ['-c', '("$NODE" --input-type=module -e "$SCRIPT" a & "$NODE" --input-type=module -e "$SCRIPT" b & ' +
    '"$NODE" --input-type=module -e "$SCRIPT" c & wait) | cat'], { stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE: process.execPath, SCRIPT: script } });
  let text = '';
  sh.stdout.setEncoding('utf8');
  sh.stdout.on('data', (d: string) => { text += d; });
  t.equal(await new Promise<number | null>((r) => sh.once('close', r)), 0);
  const all = text.split('\n').filter(Boolean);
  let bad = 0;
  const per = new Map<string, number>();
  for (const l of all) {
    try {
      const ev = JSON.parse(l) as LogEvent;
      per.set(ev.client, (per.get(ev.client) ?? 0) + 1);
    } catch {
      bad++;
    }
  }
  t.equal(bad, 0, 'every line parses');
  t.same(Object.fromEntries(per), { a: perChild, b: perChild, c: perChild }, 'every line of every process arrived');
});

