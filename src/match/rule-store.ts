/**
 * The compact rule format shared by the list loader (lists/, which writes it) and the matcher
 * (match/, which reads it), defined once so the arrows point one way (lists → match) and the bit
 * layout is written in one place. One million rules must stay small: names go into one string
 * (each followed by '\n'), everything else into typed arrays.
 */
import type { WildRule } from './wildcard.js';
/** Lists per index: list i is mask bit i, and bit 31 would make masks negative. Defined by the config schema, which enforces it. */
export { MAX_LISTS } from '../config/schema.js';

export type RuleKind = 'subtree' | 'exact' | 'below';

/** Rule kinds as stored in compact form (info bits 0-1). */
export const KIND_SUBTREE = 0;
export const KIND_EXACT = 1;
export const KIND_BELOW = 2;
export const KIND_NAMES: readonly RuleKind[] = ['subtree', 'exact', 'below'];

/** How a rule was written (info bits 3-7), so it can be shown back to an admin in that form. */
export const FORMAT_PLAIN = 0;          // tiktok.com
export const FORMAT_WILDCARD = 1;       // *.tiktok.com
export const FORMAT_ADBLOCK = 2;        // ||tiktok.com^
export const FORMAT_ADBLOCK_BELOW = 3;  // ||*.tiktok.com^
export const FORMAT_HOSTS = 4;          // 0.0.0.0 tiktok.com

/** info bit 2: an `@@` exception rule. */
export const INFO_EXCEPTION = 4;
const FORMAT_SHIFT = 3;

/** The info byte of a rule: kind | exception << 2 | format << 3. */
export function ruleInfo(kind: number, exception: boolean, format: number): number {
  return kind | (exception ? INFO_EXCEPTION : 0) | (format << FORMAT_SHIFT);
}

export function infoFormat(info: number): number {
  return info >>> FORMAT_SHIFT;
}

/** Rule i: name = names[starts[i] .. next '\n'), info = ruleInfo(kind, exception, format). */
export interface RuleStore {
  readonly count: number;
  readonly names: string;
  readonly starts: Int32Array;
  readonly info: Uint8Array;
  readonly lines: Int32Array;
  /** Index into the list's sources. */
  readonly sourceIndex: Uint16Array;
}

/** What the matcher needs of one loaded list (list i of an index = mask bit i). */
export interface RuleList {
  readonly name: string;
  readonly sources: readonly string[];
  readonly rules: RuleStore;
  readonly ruleCount: number;
  /** Adblock rules with `*` inside their first label (match/wildcard.ts); their ids follow the store's. */
  readonly wildRules?: readonly Omit<WildRule, 'list'>[];
}

/** The name of rule i of a store (cold path: describe, tests). */
export function ruleName(store: RuleStore, i: number): string {
  const start = store.starts[i] ?? 0;
  return store.names.slice(start, store.names.indexOf('\n', start));
}
