/**
 * Starts the real runtime in-process on 127.0.0.1 port 0 from a YAML config written to a temp dir,
 * with the block log in a file the test can read. Every list named in `lists` is written beside it.
 */
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { BlockLog } from '../../src/log/block-log.js';
import { createAppLogger } from '../../src/log/logger.js';

export interface Started {
  runtime: Runtime;
  port: number;
  dir: string;
  server: { host: string; port: number };
  /** Block-log events written so far (flushes first). */
  events(): Record<string, unknown>[];
  writeConfig(yaml: string): string;
  close(): Promise<void>;
}

/** `yaml` may be a function of the temp dir, for configs that name files placed there by `prepare`. */
export async function startServer(yamlOrFn: string | ((dir: string) => string), files: Record<string, string> = {},
  prepare?: (dir: string) => void): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-test-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  prepare?.(dir);
  const yaml = typeof yamlOrFn === 'string' ? yamlOrFn : yamlOrFn(dir);
  const configPath = join(dir, 'appfence.yaml');
  writeFileSync(configPath, yaml);
  const config = forceUdpPath(parseConfig(yaml, configPath, { ...process.env }));
  const blockFile = join(dir, 'blocks.log');
  const blockLog = new BlockLog({ destination: blockFile, reportIntervalMs: 50, sync: true });
  const log = createAppLogger('silent');
  const runtime = await Runtime.start(config, log, { blockLog });
  const expected = config.dns.udpBatch === 'off' ? 'dgram' : 'batch';
  if (runtime.udpPaths.some((p) => p !== expected)) {
    await runtime.stop(0);
    throw new Error(`UDP runs on ${runtime.udpPaths.join(',')}, not ${expected}: did native/build.mjs build the addon?`);
  }
  const port = runtime.ports.udp[0] ?? 0;
  return {
    runtime,
    port,
    dir,
    server: { host: '127.0.0.1', port },
    events() {
      blockLog.flush();
      if (!existsSync(blockFile)) return [];
      return readFileSync(blockFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    writeConfig(text: string) {
      writeFileSync(configPath, text);
      return configPath;
    },
    close: () => runtime.stop(0),
  };
}

/**
 * APPFENCE_TEST_UDP_BATCH=off|auto runs a suite on one UDP socket path (dns-server-dgram.test.ts
 * re-runs the DNS suite on node:dgram; by default it runs batched, the configured default).
 */
export const TEST_UDP_BATCH: 'auto' | 'off' | undefined =
  process.env.APPFENCE_TEST_UDP_BATCH === 'off' ? 'off' : process.env.APPFENCE_TEST_UDP_BATCH === 'auto' ? 'auto' : undefined;

function forceUdpPath(config: Config): Config {
  return TEST_UDP_BATCH === undefined ? config : { ...config, dns: { ...config.dns, udpBatch: TEST_UDP_BATCH } };
}
