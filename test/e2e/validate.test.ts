// `appfence validate` as admins run it: exit 0 with warnings, exit 2 with key paths (schema and files).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
