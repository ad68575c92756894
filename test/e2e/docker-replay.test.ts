// No Docker engine runs here, so the image build is replayed step by step in a clean temp folder:
// every stage's COPY (from the repository or an earlier stage) and RUN (npm ci, npm run build,
// npm ci --omit=dev), then the final stage started as its ENTRYPOINT + CMD with the shipped example
// config (adapted to loopback ports and the temp folder), its HEALTHCHECK command run, a real query
// answered, and SIGTERM ending it with exit 0. What cannot be replayed without root (apt-get,
// setcap, USER) is checked statically in test/unit/deploy-files.test.ts.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { stages, execForm } from '../helpers/dockerfile.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { createTestPki } from '../helpers/certs.js';
import { query } from '../helpers/dns-client.js';
import { PACKAGE_ROOT } from '../../src/config/default.js';

t.setTimeout(600_000);

const NODE24_BIN = dirname(process.execPath);
const dockerfile = stages(readFileSync(join(PACKAGE_ROOT, 'docker/Dockerfile'), 'utf8'));
const root = mkdtempSync(join(tmpdir(), 'appfence-image-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

/** Each stage's filesystem is a folder; absolute image paths map into it. */
const fsOf = (stage: string): string => join(root, `stage-${stage}`);
const inStage = (stage: string, path: string): string => join(fsOf(stage), path);

/** Like the image: Node 24 first on PATH, npm's cache warm and preferred (no registry round trips when it holds the tarball). */
const buildEnv = {
  ...process.env,
  PATH: `${NODE24_BIN}:${process.env.PATH ?? ''}`,
  npm_config_prefer_offline: 'true',
  npm_config_update_notifier: 'false',
};

function run(command: string, cwd: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { cwd, env: buildEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 400_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

/** What the build context leaves out (.dockerignore: plain paths and folder names, as written there). */
const ignored = readFileSync(join(PACKAGE_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#') && !l.includes('*'));
const inContext = (path: string): boolean => !ignored.some((i) => path === join(PACKAGE_ROOT, i) || path.startsWith(join(PACKAGE_ROOT, i) + '/'));

/** The stages a stage copies from (COPY --from=NAME). */
const dependsOn = (index: number): string[] => dockerfile[index]!.instructions
  .flatMap((i) => (i.keyword === 'COPY' ? [/--from=(\S+)/.exec(i.args)?.[1]] : []))
  .filter((name): name is string => name !== undefined);

async function replayStage(index: number): Promise<{ env: Record<string, string>; workdir: string }> {
  const stage = dockerfile[index]!;
  const env: Record<string, string> = {};
  let workdir = '/';
  mkdirSync(fsOf(stage.name), { recursive: true });
  for (const { keyword, args } of stage.instructions) {
    if (keyword === 'WORKDIR') {
      workdir = resolve(workdir, args);
      mkdirSync(inStage(stage.name, workdir), { recursive: true });
    } else if (keyword === 'ENV') {
      for (const m of args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
    } else if (keyword === 'COPY') {
      const parts = args.split(/\s+/);
      const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
      const paths = parts.filter((p) => !p.startsWith('--'));
      const written = paths.pop()!;
      const dest = resolve(workdir, written);
      // Docker's rule: a destination ending in "/" (or several sources) is a folder to copy into.
      const intoFolder = written.endsWith('/') || paths.length > 1;
      for (const src of paths) {
        const source = from === undefined ? join(PACKAGE_ROOT, src) : inStage(from, src);
        const target = intoFolder ? join(inStage(stage.name, dest), src.split('/').pop()!) : inStage(stage.name, dest);
        t.ok(existsSync(source), `COPY source exists: ${from ?? 'repo'}:${src}`);
        mkdirSync(dirname(target), { recursive: true });
        cpSync(source, target, { recursive: true, filter: (path) => from !== undefined || inContext(path) });
      }
    } else if (keyword === 'RUN' && index < dockerfile.length - 1) {
      const command = args.replace(/--mount=\S+\s*/g, '');
      const started = Date.now();
      const r = await run(command, inStage(stage.name, workdir));
      t.equal(r.status, 0, `stage ${stage.name}: RUN ${command} (${Math.round((Date.now() - started) / 1000)} s)${r.status === 0 ? '' : `\n${r.output}`}`);
    }
  }
  return { env, workdir };
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

t.test('the image builds, starts, passes its health check and stops on SIGTERM', async (t) => {
  // Stages that copy nothing from each other build side by side, as BuildKit runs them.
  const finalIndex = dockerfile.length - 1;
  const done = new Map<string, Promise<unknown>>();
  for (let i = 0; i < finalIndex; i++) {
    const before = dependsOn(i).map((name) => done.get(name) ?? Promise.resolve());
    done.set(dockerfile[i]!.name, Promise.all(before).then(() => replayStage(i)));
  }
  await Promise.all(done.values());
  const final = dockerfile[finalIndex]!;
  const { env, workdir } = await replayStage(finalIndex);
  const app = inStage(final.name, workdir);
  t.ok(existsSync(join(app, 'dist/cli.js')), 'dist/ is in the image');
  t.ok(existsSync(join(app, 'node_modules/prom-client')), 'production dependencies are in the image');
  t.notOk(existsSync(join(app, 'node_modules/typescript')), 'dev dependencies are not');
  t.notOk(existsSync(join(app, 'node_modules/tap')), 'no test runner either');
  t.notOk(existsSync(join(app, 'src')), 'no sources');

  // The example config as the image ships it, pointed at loopback, the fake upstream and test certificates.
  const up = await startFakeUpstream({ zone: { 'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] } } });
  t.teardown(() => up.close());
  const pki = await createTestPki();
  t.teardown(() => rmSync(pki.dir, { recursive: true, force: true }));
  const certs = inStage(final.name, '/etc/appfence/certs');
  mkdirSync(certs, { recursive: true });
  cpSync(pki.server.cert, join(certs, 'server.pem'));
  cpSync(pki.server.key, join(certs, 'server-key.pem'));
  cpSync(pki.ca.cert, join(certs, 'device-ca.pem'));
  const adminPort = await freePort();
  const configPath = inStage(final.name, '/etc/appfence/appfence.yaml');
  const shipped = readFileSync(configPath, 'utf8');
  const adapted = shipped
    .replace(/"0\.0\.0\.0:9153"/g, `"127.0.0.1:${adminPort}"`)
    .replace(/"0\.0\.0\.0:\d+"/g, '"127.0.0.1:0"')
    .replace(/upstreams: \[[^\]]*\]/, `upstreams: ["127.0.0.1:${up.port}"]`)
    .replace(/10\.20\.0\.0\/16/g, '127.0.10.0/24')
    .replace(/(["\s])\/(app|etc\/appfence|var\/lib\/appfence|var\/log\/appfence)\//g, (_m, pre: string, dir: string) => `${pre}${inStage(final.name, `/${dir}`)}/`)
    .replace(/stateDir: \/var\/lib\/appfence/, `stateDir: ${inStage(final.name, '/var/lib/appfence')}`);
  t.not(adapted, shipped);
  writeFileSync(configPath, adapted);

  const entrypoint = execForm(final.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args);
  const cmd = execForm(final.instructions.find((i) => i.keyword === 'CMD')!.args);
  const mapPath = (a: string): string => (/^\/(app|etc\/appfence)\//.test(a) ? inStage(final.name, a) : a);
  const [program, ...args] = [...entrypoint, ...cmd].map(mapPath);
  t.equal(program, 'node');
  const runEnv = { ...env, PATH: `${NODE24_BIN}:/usr/bin:/bin`, APPFENCE_ADMIN_TOKEN: 'replay-token', APPFENCE_HEALTH_URL: `http://127.0.0.1:${adminPort}/healthz` };
  t.match(env.APPFENCE_HEALTH_URL, /:9153\/healthz$/, 'the image points its health check at the example admin port');
  const child = spawn(join(NODE24_BIN, 'node'), args, { cwd: app, env: runEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout.resume();
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });

  const health = execForm(final.instructions.find((i) => i.keyword === 'HEALTHCHECK')!.args.replace(/^.*?CMD\s+/, ''));
  const healthcheck = () => spawnSync(join(NODE24_BIN, 'node'), health.slice(1), { env: runEnv, encoding: 'utf8', timeout: 10_000 }).status;
  t.equal(health[0], 'node');
  let healthy = false;
  for (const deadline = Date.now() + 30_000; !healthy && Date.now() < deadline && child.exitCode === null;) {
    healthy = healthcheck() === 0;
    if (!healthy) await new Promise((r) => setTimeout(r, 300));
  }
  t.ok(healthy, `the HEALTHCHECK command passes (${stderr.slice(-2000)})`);

  // spawnSync above blocks the loop: let the child's log lines be read before looking for its port.
  const udpPort = /"listen":"127\.0\.0\.1:(\d+)","proto":"udp\+tcp"/;
  for (const deadline = Date.now() + 5_000; !udpPort.test(stderr) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 50));
  const listening = udpPort.exec(stderr);
  t.ok(listening, 'DNS is listening');
  const server = { host: '127.0.0.1', port: Number(listening?.[1]) };
  const city = await query({ server, name: 'www.tiktok.com', type: 'A', proto: 'udp', localAddress: '127.0.10.5' });
  t.equal(city.answers[0]?.data, '0.0.0.0', 'a city laptop is sinkholed by the shipped list');
  const guest = await query({ server, name: 'example.org', type: 'A', proto: 'udp', localAddress: '127.0.20.5' });
  t.equal(guest.answers[0]?.data, '192.0.2.10', 'others resolve');
  const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  t.equal(ready.status, 200, 'ready');

  child.kill('SIGTERM');
  const [code] = (await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(() => r([null]), 10_000))])) as [number | null];
  t.equal(code, 0, 'SIGTERM: exit 0');
  t.equal(healthcheck(), 1, 'the health check fails once it is gone');
  const blocks = readFileSync(inStage(final.name, '/var/log/appfence/blocks.jsonl'), 'utf8');
  t.match(blocks, /"event":"block".*"name":"www\.tiktok\.com"/, 'the block went to the log volume');
});
