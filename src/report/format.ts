/** The report as an aligned table (people), JSON (scripts) or CSV (spreadsheets). */
import type { DeviceRow, Report } from './aggregate.js';

export type ReportFormat = 'table' | 'json' | 'csv';
export const REPORT_FORMATS: readonly ReportFormat[] = ['table', 'json', 'csv'];

export interface ReportContext {
  generatedAt: string;
  since: string | null;
  group: string | null;
  files: string[];
  damaged: { file: string; error: string }[];
}

const topText = (row: DeviceRow, sep: string): string => row.topNames.map((n) => `${n.name} (${n.count})`).join(sep);

export function formatTable(report: Report, ctx: ReportContext): string {
  const head = ['DEVICE', 'VIA', 'GROUP', 'BLOCKS', 'AUDITS', 'FIRST SEEN', 'LAST SEEN', 'PATTERN', 'TOP NAMES'];
  const rows = report.devices.map((d) => [d.device, d.via, d.groups.join(',') || '-', String(d.blocks), String(d.audits),
    d.firstSeen.slice(0, 19).replace('T', ' '), d.lastSeen.slice(0, 19).replace('T', ' '),
    d.pattern === 'other' ? '-' : d.pattern.toUpperCase(), topText(d, ', ')]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(head), ...rows.map(line)];
  const apps = report.devices.filter((d) => d.pattern === 'app').length;
  const webs = report.devices.filter((d) => d.pattern === 'web').length;
  out.push('', `${report.devices.length} devices, ${report.events} events${ctx.since ? ` since ${ctx.since}` : ''}` +
    `${ctx.group ? ` in group ${ctx.group}` : ''}: ${apps} show the TikTok app, ${webs} only the web.`);
  out.push('APP = the app\'s own API/telemetry names were blocked (tiktokv.*); WEB = only pages, web assets or embeds. See docs/report.md.');
  if (report.suppressed > 0) out.push(`warning: the server could not write ${report.suppressed} events ("suppressed"); counts are low by that much.`);
  if (report.skippedLines > 0) out.push(`note: ${report.skippedLines} lines were not block-log events and were skipped.`);
  for (const d of ctx.damaged) out.push(`warning: ${d.file}: ${d.error}; read up to the damage.`);
  return out.join('\n') + '\n';
}

export function formatJson(report: Report, ctx: ReportContext): string {
  return JSON.stringify({ ...ctx, events: report.events, suppressed: report.suppressed, skippedLines: report.skippedLines,
    devices: report.devices }, null, 2) + '\n';
}

/** RFC 4180: quote a field that holds a comma, quote or line break; double inner quotes. */
function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatCsv(report: Report): string {
  const head = ['device', 'via', 'groups', 'clients', 'blocks', 'audits', 'first_seen', 'last_seen', 'distinct_names',
    'app_signals', 'web_signals', 'pattern', 'top_names'];
  const rows = report.devices.map((d) => [d.device, d.via, d.groups.join(' '), d.clients.join(' '), d.blocks, d.audits,
    d.firstSeen, d.lastSeen, d.distinctNames, d.appSignals, d.webSignals, d.pattern, topText(d, '; ')]);
  return [head, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
