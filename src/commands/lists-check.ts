/**
 * `appfence lists check FILE...`: parse each file as the server would; every rejected line as FILE:LINE.
 * `appfence lists check --config FILE`: the same for every source of every list of a config, URLs
 * downloaded now (the check an admin runs before a reload), each with its list's `match`.
 * Exit 1 if any line was rejected, 2 if a source cannot be read (every source is still reported).
 */
import { readFile } from 'node:fs/promises';
import { parseListText } from '../lists/parse-line.js';
import { readSource } from '../lists/source.js';
import { ListSourceError, UsageError } from '../errors.js';
import { parse } from './args.js';
import { configFrom } from './load.js';
import { explainWildcard } from '../match/wildcard.js';

interface Checked { readonly rejected: number; readonly unreadable: boolean }

function report(label: string, text: string, source: string, match: 'auto' | 'subtree'): number {
  const { rules, ipRules, wildRules, rejects } = parseListText(text, source, match);
  const ips = ipRules.length > 0 ? `, ${ipRules.length} IP rules` : '';
  const wild = wildRules.length > 0 ? ` (${wildRules.length} with * in a label)` : '';
  process.stdout.write(`${label}: ${rules.length + wildRules.length} rules${wild}${ips}, ${rejects.length} rejected\n`);
  for (const w of wildRules) process.stdout.write(`${source}:${w.line}: ${w.text} ${explainWildcard(w.glob, w.anchor)}\n`);
  for (const r of rejects) process.stdout.write(`${r.source}:${r.line}: ${r.reason}: ${r.text}\n`);
  return rejects.length;
}

export async function listsCheckCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { config: { type: 'string', short: 'c' } }, true);
  if (values.config !== undefined) {
    if (positionals.length > 0) throw new UsageError('give list FILEs or --config FILE, not both');
    return exitCode(await checkConfig(values.config));
  }
  if (positionals.length === 0) throw new UsageError('name at least one list FILE, or --config FILE');
  let rejected = 0;
  for (const file of positionals) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ListSourceError(file, err instanceof Error ? err.message : String(err), { cause: err });
    }
    rejected += report(file, text, file, 'auto');
  }
  return rejected > 0 ? 1 : 0;
}

async function checkConfig(file: string): Promise<Checked> {
  const config = await configFrom(file);
  let rejected = 0;
  let unreadable = false;
  for (const list of config.lists) {
    for (const source of list.sources) {
      const label = `lists.${list.name}: ${source}`;
      let text: string;
      try {
        text = await readSource(source);
      } catch (err) {
        unreadable = true;
        process.stdout.write(`${label}: cannot be read: ${(err as Error).message}\n`);
        continue;
      }
      rejected += report(label, text, source, list.match);
    }
  }
  return { rejected, unreadable };
}

function exitCode({ rejected, unreadable }: Checked): number {
  return unreadable ? 2 : rejected > 0 ? 1 : 0;
}
