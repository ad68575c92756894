// The block log never loses an event silently: lines beyond the buffer ceiling are counted and a
// "suppressed" event reports how many, so written + suppressed always equals what was logged.
import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockLog, type LogEvent } from '../../src/log/block-log.js';
import { formatEvent } from '../../src/commands/tail.js';

const event = (i: number): LogEvent => ({
  client: '10.20.4.7', group: 'city-devices', via: 'subnet', device: null,
  name: `n${i}.tiktok.com`, qtype: 'A', rule: 'tiktok.com', list: 'tiktok', answer: 'null',
});

const waitFor = async (cond: () => boolean): Promise<void> => {
  const holds = (): boolean => { try { return cond(); } catch { return false; } };   // the file is opened asynchronously
  for (let i = 0; i < 200 && !holds(); i++) await new Promise((r) => setTimeout(r, 10));
};

t.test('a burst beyond the buffer is counted and reported, never dropped silently', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'appfence-blocklog-')), 'blocks.log');
  const log = new BlockLog({ destination: file, maxBufferBytes: 4096, reportIntervalMs: 60_000 });
  const total = 2000;
  for (let i = 0; i < total; i++) log.block('udp', event(i));
  t.ok(log.suppressedTotal > 0, `the burst overflowed the buffer (${log.suppressedTotal} suppressed)`);
  log.close();
  await waitFor(() => readFileSync(file, 'utf8').includes('"suppressed"'));
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const blocks = lines.filter((l) => l['event'] === 'block');
  const suppressed = lines.filter((l) => l['event'] === 'suppressed').reduce((n, l) => n + Number(l['count']), 0);
  t.equal(blocks.length + suppressed, total, 'written + suppressed = logged');
  t.equal(suppressed, log.suppressedTotal);
  t.match(blocks[0], { event: 'block', proto: 'udp', client: '10.20.4.7', group: 'city-devices', via: 'subnet', device: null,
    name: 'n0.tiktok.com', qtype: 'A', rule: 'tiktok.com', list: 'tiktok', answer: 'null' });
  t.same(Object.keys(blocks[0]!), ['time', 'event', 'proto', 'client', 'group', 'via', 'device', 'name', 'qtype', 'rule', 'list', 'answer'],
    'exactly SPEC fields, in a stable order, no pino level/pid/hostname');
  t.match(formatEvent(JSON.stringify(lines.find((l) => l['event'] === 'suppressed'))), /!! \d+ events not written/);
});

t.test('query events and device field', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'appfence-blocklog-')), 'blocks.log');
  const log = new BlockLog({ destination: file, sync: true });
  log.query('doh', { ...event(1), via: 'cert', device: 'laptop-042', rule: null, list: null, answer: 'forward' });
  log.close();
  const line = JSON.parse(readFileSync(file, 'utf8').trim()) as Record<string, unknown>;
  t.match(line, { event: 'query', proto: 'doh', via: 'cert', device: 'laptop-042', rule: null, answer: 'forward' });
  t.match(formatEvent(JSON.stringify(line)), /QUERY\s+doh\s+10\.20\.4\.7\s+city-devices \(cert laptop-042\)\s+n1\.tiktok\.com A → forward/);
  t.equal(formatEvent('not json at all'), 'not json at all', 'foreign lines pass through unchanged');
});
