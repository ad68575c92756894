// Native code reachable from hostile packets, under AddressSanitizer + UBSan: builds the sanitized
// flavour of the addon (native/build-asan) and runs test/helpers/udp-batch-fuzz.mjs against it with
// libasan preloaded into Node. Any out-of-bounds access or UB aborts the child with exit code 86.
// Uses dist/ (npm test builds it first).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const libasan = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim();
t.ok(existsSync(libasan), `libasan found (${libasan})`);
const build = spawnSync(process.execPath, ['native/build.mjs', '--asan', '--if-stale'], { encoding: 'utf8' });
t.equal(build.status, 0, build.stderr);
const addon = 'native/build-asan/build/Release/udp_batch.node';
t.ok(existsSync(addon), 'the sanitized addon built');

const run = spawnSync(process.execPath, ['test/helpers/udp-batch-fuzz.mjs', addon, '10000'], {
  encoding: 'utf8',
  timeout: 60_000,
  env: { ...process.env, LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:exitcode=86', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' },
});
t.equal(run.status, 0, `fuzz child exit (stderr: ${run.stderr.slice(-2000)})`);
const line = run.stdout.trim().split('\n').pop() ?? '{}';
const report = JSON.parse(line) as { sanitized: boolean; handled: number; truncated: number; thrown: number; lateRefused: number; closedSend: number };
t.equal(report.sanitized, true, 'libasan was loaded in the child');
t.ok(report.handled > 1000, `${report.handled} datagrams handled`);
t.ok(report.truncated > 100, `${report.truncated} truncated datagrams seen`);
t.ok(report.thrown > 0 && report.lateRefused > 0, 'throwing handlers and refused late sends were exercised');
t.equal(report.closedSend, -9, 'a send after close is refused (EBADF)');
