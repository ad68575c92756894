/**
 * Reading Prometheus text exposition in tests: scrape an admin listener, then look samples up by
 * name and labels (label order does not matter). An independent parser, not prom-client's.
 */
import { spawnSync } from 'node:child_process';

export interface Exposition {
  readonly text: string;
  /** Families named by # TYPE lines, with their type. */
  readonly types: ReadonlyMap<string, string>;
  /** Value of one series; undefined when it is not exposed. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every series of a sample name, as [labels, value]. */
  series(name: string): [Record<string, string>, number][];
}

export const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;

export async function scrape(port: number, host = '127.0.0.1'): Promise<Exposition> {
  const res = await fetch(`http://${host}:${port}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples = new Map<string, [Record<string, string>, number][]>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) types.set(type[1]!, type[2]!);
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (m === null) throw new Error(`unreadable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    const list = samples.get(m[1]!) ?? [];
    list.push([labels, Number(m[3])]);
    samples.set(m[1]!, list);
  }
  return {
    text,
    types,
    series: (name) => samples.get(name) ?? [],
    value(name, labels = {}) {
      const want = Object.entries(labels);
      const found = (samples.get(name) ?? []).find(([l]) => Object.keys(l).length === want.length && want.every(([k, v]) => l[k] === v));
      return found?.[1];
    },
  };
}

/** `promtool check metrics` on the text: its exit status and what it said. */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
