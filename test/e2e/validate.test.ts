// `appfence validate` as admins run it: exit 0 with warnings, exit 2 with key paths (schema and files);
// `serve` logs the same warnings at start and again after every successful reload (SIGHUP, POST /reload).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'appfence-validate-'));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });
writeFileSync(join(dir, 'tiktok.txt'), 'tiktok.com\n');

t.test('valid with warnings: exit 0, each warning with its key path', async (t) => {
  const file = join(dir, 'warned.yaml');
  writeFileSync(file, `
dns: { upstreams: ["9.9.9.9"] }
access: { allow: ["10.0.0.0/8"] }
lists:
  tiktok: { sources: [tiktok.txt] }
  unused: { sources: ["https://lists.example/never-fetched.txt"] }
groups:
  city: { subnets: ["192.168.20.0/24"], block: [tiktok] }
`);
  const r = run('validate', '--config', file);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, [
    'warning: groups.city.subnets[0]: "192.168.20.0/24" is not inside access.allow: these clients are REFUSED before the group applies',
    'warning: lists.unused: no group blocks or allows with this list',
    `${file}: valid (2 warnings)`,
  ].join('\n') + '\n', 'URL sources are not fetched');
});

t.test('invalid: exit 2 naming key paths; a missing list file is an error too', async (t) => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'dns: { upstreams: ["9.9.9.9"], cahce: {} }\ngroups: { city: { blok: [] } }\n');
  const r = run('validate', '--config', bad);
  t.equal(r.status, 2);
  t.match(r.stderr, /dns\.cahce: unknown key/);
  t.match(r.stderr, /groups\.city\.blok: unknown key/);
  const missing = join(dir, 'missing.yaml');
  writeFileSync(missing, 'dns: { upstreams: ["9.9.9.9"] }\nlists: { l: { sources: [nope.txt] } }\ndefault: { block: [l] }\n');
  const m = run('validate', '--config', missing);
  t.equal(m.status, 2);
  t.match(m.stderr, /nope\.txt: file not found/);
});

const freePort = (): Promise<number> => new Promise((resolve, reject) => {
  const s = net.createServer().once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address() as net.AddressInfo;
    s.close(() => resolve(port));
  });
});

t.test('serve logs the warnings again after each successful reload, SIGHUP and POST /reload', async (t) => {
  const [dnsPort, adminPort] = [await freePort(), await freePort()];
  const file = join(dir, 'serve.yaml');
  const yaml = (groups: string) => `
dns: { listen: ["127.0.0.1:${dnsPort}"], upstreams: ["127.0.0.1:9"] }
admin: { listen: "127.0.0.1:${adminPort}" }
access: { allow: ["127.0.10.0/24"] }
lists: { tiktok: { sources: [${join(dir, 'tiktok.txt')}] } }
groups: { ${groups} }
log: { level: info, blocks: ${join(dir, 'serve-blocks.log')} }
`;
  writeFileSync(file, yaml('city: { subnets: ["127.0.10.0/24"], block: [tiktok] }'));
  const child = spawn(process.execPath, [cli, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stderr.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') lines.push(JSON.parse(p) as Record<string, unknown>);
  });
  const waitFor = async (what: (l: Record<string, unknown>) => boolean, from: number): Promise<number> => {
    for (let i = 0; i < 400; i++) {
      const at = lines.findIndex((l, k) => k >= from && what(l));
      if (at >= 0) return at;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no such log line; got ${JSON.stringify(lines.slice(from))}`);
  };
  const warnings = (from: number, to = lines.length) => lines.slice(from, to).filter((l) => l['msg'] === 'config warning');
  const started = await waitFor((l) => l['msg'] === 'appfence started', 0);
  t.same(warnings(0, started), [], 'a clean config: no warning at start');

  // SIGHUP: the city group now blocks nothing
  writeFileSync(file, yaml('city: { subnets: ["127.0.10.0/24"], block: [] }'));
  const before = lines.length;
  child.kill('SIGHUP');
  const reloaded = await waitFor((l) => l['msg'] === 'reloaded', before);
  await waitFor((l) => l['msg'] === 'config warning' && l['key'] === 'lists.tiktok', reloaded);
  t.match(warnings(reloaded), [{ level: 'warn', key: 'groups.city', detail: /blocks nothing/ },
    { level: 'warn', key: 'lists.tiktok', detail: 'no group blocks or allows with this list' }], 'SIGHUP: the warnings the new config has');

  // POST /reload: a subnet outside access.allow
  writeFileSync(file, yaml('city: { subnets: ["127.0.10.0/24", "127.0.30.0/24"], block: [tiktok] }'));
  const mark = lines.length;
  const res = await fetch(`http://127.0.0.1:${adminPort}/reload`, { method: 'POST' });
  t.equal(res.status, 200, await res.text());
  const again = await waitFor((l) => l['msg'] === 'reloaded', mark);
  await waitFor((l) => l['msg'] === 'config warning', again);
  t.match(warnings(again), [{ key: 'groups.city.subnets[1]', detail: /"127\.0\.30\.0\/24" is not inside access\.allow/ }], 'POST /reload: the new warning');
  t.equal(warnings(again).length, 1, 'and only the warnings of the config now serving');

  // a reload that fails says so, and no warnings of a config that does not serve
  writeFileSync(file, 'dns: [');
  const failedMark = lines.length;
  child.kill('SIGHUP');
  await waitFor((l) => l['msg'] === 'reload failed; the running configuration stays', failedMark);
  t.same(warnings(failedMark), []);

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
