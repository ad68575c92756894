// `appfence tail FILE` as ops use it on a live block log: it starts at the end (old history is not
// replayed unless --from-start), keeps following across logrotate's rename and a truncation, and
// --group / --device / --client show one group's, one device's or one address's events.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'appfence-tail-'));

const event = (name: string, extra: Record<string, unknown> = {}) => JSON.stringify({ time: '2026-11-24T10:00:00.000Z', event: 'block',
  proto: 'udp', client: '10.20.4.7', group: 'city', via: 'subnet', device: null, name, qtype: 'A', rule: 'tiktok.com', list: 'tiktok',
  answer: 'null', ...extra }) + '\n';

interface Tail { child: ChildProcess; out(): string; waitFor(text: string): Promise<void> }

async function tail(...args: string[]): Promise<Tail> {
  const child = spawn(process.execPath, [cli, 'tail', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  const check = (): void => {
    for (const w of waiters.splice(0)) (out.includes(w.text) || err.includes(w.text) ? w.resolve : () => waiters.push(w))();
  };
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); check(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); check(); });
  const waitFor = (text: string) => new Promise<void>((resolve) => { waiters.push({ text, resolve }); check(); });
  await waitFor('appfence tail: following');
  return { child, out: () => out, waitFor };
}

t.test('starts at the end; --from-start replays', async (t) => {
  const file = join(dir, 'end.log');
  writeFileSync(file, event('old.tiktok.com'));
  const live = await tail(file);
  t.teardown(() => live.child.kill('SIGKILL'));
  appendFileSync(file, event('new.tiktok.com'));
  await live.waitFor('new.tiktok.com');
  t.notMatch(live.out(), /old\.tiktok\.com/, 'history is not replayed');
  const replay = await tail('--from-start', file);
  t.teardown(() => replay.child.kill('SIGKILL'));
  await replay.waitFor('new.tiktok.com');
  t.match(replay.out(), /old\.tiktok\.com[\s\S]*new\.tiktok\.com/);
});

t.test('follows logrotate: lines written before the rename, then the new file; and a truncation', async (t) => {
  const file = join(dir, 'rotated.log');
  writeFileSync(file, '');
  const live = await tail(file);
  t.teardown(() => live.child.kill('SIGKILL'));
  appendFileSync(file, event('before.tiktok.com'));
  renameSync(file, `${file}.1`);
  appendFileSync(`${file}.1`, event('late-in-old.tiktok.com')); // the server still writes the old file until SIGHUP
  writeFileSync(file, event('in-new.tiktok.com'));
  await live.waitFor('in-new.tiktok.com');
  t.match(live.out(), /before\.tiktok\.com[\s\S]*late-in-old\.tiktok\.com[\s\S]*in-new\.tiktok\.com/);
  await new Promise((r) => setTimeout(r, 600));
  truncateSync(file, 0);
  await new Promise((r) => setTimeout(r, 600));
  appendFileSync(file, event('after-truncate.tiktok.com'));
  await live.waitFor('after-truncate.tiktok.com');
  t.pass('a truncated file is read again from its start');
});

t.test('--group, --device and --client filter events', async (t) => {
  const file = join(dir, 'filtered.log');
  writeFileSync(file, '');
  const byDevice = await tail('--device', 'laptop-042', file);
  const byGroup = await tail('--group', 'guests', '--client', '10.30.0.9', file);
  t.teardown(() => { byDevice.child.kill('SIGKILL'); byGroup.child.kill('SIGKILL'); });
  appendFileSync(file, event('subnet.tiktok.com') + event('cert.tiktok.com', { via: 'cert', device: 'laptop-042' }) +
    event('other-guest.tiktok.com', { group: 'guests', client: '10.30.0.8' }) + event('guest.tiktok.com', { group: 'guests', client: '10.30.0.9' }) +
    'not json\n' + event('end.tiktok.com', { via: 'cert', device: 'laptop-042', group: 'guests', client: '10.30.0.9' }));
  await byDevice.waitFor('end.tiktok.com');
  await byGroup.waitFor('end.tiktok.com');
  t.same(byDevice.out().trim().split('\n').map((l) => /(\S+\.tiktok\.com)/.exec(l)?.[1]), ['cert.tiktok.com', 'end.tiktok.com']);
  t.same(byGroup.out().trim().split('\n').map((l) => /(\S+\.tiktok\.com)/.exec(l)?.[1]), ['guest.tiktok.com', 'end.tiktok.com']);
});
