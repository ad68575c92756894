/**
 * `appfence validate [--config FILE]`: the whole config checked without serving. Exit 2 with every
 * error and its key path (schema errors, then the files it names: list files, PEM certificates and
 * keys, as `serve` would read them); exit 0 when valid, with the warnings of config/warnings.ts.
 * URL list sources are not fetched here (`appfence lists check --config FILE` does that).
 */
import { parse } from './args.js';
import { configFrom } from './load.js';
import { configWarnings } from '../config/warnings.js';
import { loadLists } from '../lists/load-lists.js';
import { isUrlSource } from '../lists/source.js';
import { createAppLogger } from '../log/logger.js';
import { buildGeneration, retireGeneration } from '../runtime/generation.js';

export async function validateCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } }, false);
  const config = await configFrom(values.config);
  const filesOnly = (lists: typeof config.lists) => loadLists(lists.map((l) => ({ ...l, sources: l.sources.filter((s) => !isUrlSource(s)) })));
  const gen = await buildGeneration(config, createAppLogger('silent'), undefined, undefined, filesOnly);
  retireGeneration(gen, null);
  const warnings = configWarnings(config);
  const lines = warnings.map((w) => `warning: ${w.keyPath}: ${w.message}`);
  lines.push(`${config.source}: valid${warnings.length === 0 ? '' : ` (${warnings.length} warning${warnings.length === 1 ? '' : 's'})`}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
