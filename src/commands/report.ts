/**
 * `appfence report [--since DURATION] [--group G] [--format table|json|csv] [FILE...]`: who still
 * tries to reach TikTok, from the block logs (FILE..., rotated and .gz ones too; stdin without FILE).
 */
import { realpath } from 'node:fs/promises';
import { parse } from './args.js';
import { UsageError } from '../errors.js';
import { ReportBuilder } from '../report/aggregate.js';
import { readLogFile, readLogStream } from '../report/read-log.js';
import { REPORT_FORMATS, formatCsv, formatJson, formatTable, type ReportFormat } from '../report/format.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90s", "30m", "4h", "1d", "2w" (as config durations, plus weeks) or an ISO date/time → the cut-off in ms. */
export function parseSince(text: string, nowMs: number): number {
  const m = /^(\d+)(s|m|h|d|w)$/.exec(text);
  if (m !== null) return nowMs - Number(m[1]) * UNIT_MS[m[2]!]!;
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new UsageError(`--since: "${text}" is neither a duration (90s, 30m, 4h, 1d, 2w) nor an ISO date (2026-12-01)`);
}

export async function reportCommand(args: readonly string[], nowMs = Date.now()): Promise<number> {
  const { values, positionals } = parse(args, {
    since: { type: 'string' },
    group: { type: 'string' },
    format: { type: 'string', default: 'table' },
  }, true);
  const format = values.format as ReportFormat;
  if (!REPORT_FORMATS.includes(format)) throw new UsageError(`--format: "${values.format}" is not one of ${REPORT_FORMATS.join(', ')}`);
  const sinceMs = values.since === undefined ? undefined : parseSince(values.since, nowMs);
  const builder = new ReportBuilder({ sinceMs, group: values.group });
  const damaged: { file: string; error: string }[] = [];
  const onDamage = (file: string, err: Error): void => { damaged.push({ file, error: err.message }); };

  // The same file named twice (blocks.log and ./blocks.log, or a glob plus a name) counts once.
  const seen = new Set<string>();
  const files: string[] = [];
  for (const file of positionals) {
    const real = await realpath(file).catch(() => file);
    if (seen.has(real)) continue;
    seen.add(real);
    files.push(file);
  }
  if (files.length === 0 || (files.length === 1 && files[0] === '-')) {
    for await (const line of readLogStream(process.stdin, 'stdin', onDamage)) builder.add(line);
  } else {
    for (const file of files) for await (const line of readLogFile(file, onDamage)) builder.add(line);
  }
  const report = builder.build();
  const ctx = { generatedAt: new Date(nowMs).toISOString(), since: values.since ?? null, group: values.group ?? null,
    files: files.length === 0 ? ['-'] : files, damaged };
  const out = format === 'json' ? formatJson(report, ctx) : format === 'csv' ? formatCsv(report) : formatTable(report, ctx);
  process.stdout.write(out);
  for (const d of damaged) if (format !== 'table') process.stderr.write(`appfence: warning: ${d.file}: ${d.error}; read up to the damage\n`);
  return 0;
}
