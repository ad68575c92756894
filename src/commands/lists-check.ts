/** `appfence lists check FILE...`: parse each file as the server would; every rejected line as FILE:LINE. */
import { readFile } from 'node:fs/promises';
import { parseListText } from '../lists/parse-line.js';
import { ListSourceError, UsageError } from '../errors.js';
import { explainWildcard } from '../match/wildcard.js';

export async function listsCheckCommand(files: readonly string[]): Promise<number> {
  if (files.length === 0) throw new UsageError('name at least one list FILE');
  let rejected = 0;
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ListSourceError(file, err instanceof Error ? err.message : String(err), { cause: err });
    }
    const { rules, ipRules, wildRules, rejects } = parseListText(text, file, 'auto');
    const ips = ipRules.length > 0 ? `, ${ipRules.length} IP rules` : '';
    const wild = wildRules.length > 0 ? ` (${wildRules.length} with * in a label)` : '';
    process.stdout.write(`${file}: ${rules.length + wildRules.length} rules${wild}${ips}, ${rejects.length} rejected\n`);
    for (const w of wildRules) process.stdout.write(`${file}:${w.line}: ${w.text} ${explainWildcard(w.glob, w.anchor)}\n`);
    for (const r of rejects) process.stdout.write(`${r.source}:${r.line}: ${r.reason}: ${r.text}\n`);
    rejected += rejects.length;
  }
  return rejected > 0 ? 1 : 0;
}
