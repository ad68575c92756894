/**
 * Adblock rules with `*` inside their first label (`||p16-tiktok*.ibyteimg.com^`, AdGuard's syntax):
 * TikTok's own hosts inside ByteDance's shared zones, without blocking the zone. A rule is an anchor
 * (the literal labels right of the wildcard label, `ibyteimg.com`) and a glob for the label left of it
 * (`p16-tiktok*`), and covers matching names and everything below them.
 *
 * DomainIndex asks `matchAt` at every label boundary of its right-to-left walk with the suffix's hash it
 * has already computed, so a lookup stays one pass over the name: a filter bit rules most suffixes out,
 * an anchor hit globs the one label to its left in place. No allocation on the hot path.
 */

const DOT = 46;
const STAR = 42;

export interface WildRule {
  /** The literal suffix right of the wildcard label, e.g. "ibyteimg.com". */
  readonly anchor: string;
  /** The wildcard label as written, lowercase, e.g. "p16-tiktok*". */
  readonly glob: string;
  readonly list: number;
  /** The rule as written, for logs and explanations. */
  readonly text: string;
  readonly source: string;
  readonly line: number;
}

/** Case-insensitive glob of `glob` (only `*` is special) against name[start, end); no allocation. */
export function globMatches(glob: string, name: string, start: number, end: number): boolean {
  let g = 0;
  let n = start;
  let starG = -1;
  let starN = 0;
  while (n < end) {
    const gc = g < glob.length ? glob.charCodeAt(g) : -1;
    if (gc === STAR) {
      starG = g++;
      starN = n;
    } else if (gc !== -1 && gc === (name.charCodeAt(n) | (name.charCodeAt(n) >= 65 && name.charCodeAt(n) <= 90 ? 32 : 0))) {
      g++;
      n++;
    } else if (starG >= 0) {
      g = starG + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob.charCodeAt(g) === STAR) g++;
  return g === glob.length;
}

export class WildcardRules {
  readonly count: number;
  private readonly rules: readonly WildRule[];
  /** Anchor hash → indexes of the rules with that anchor. */
  private readonly byHash = new Map<number, number[]>();
  private readonly filter = new Int32Array(256); // 8192 bits
  readonly usedMask: number;

  /** `hash` must be the hash DomainIndex computes for a suffix (right to left, then mixed). */
  constructor(rules: readonly WildRule[], hash: (text: string) => number) {
    this.rules = rules;
    this.count = rules.length;
    let used = 0;
    rules.forEach((r, i) => {
      const h = hash(r.anchor);
      const f = h >>> 19;
      this.filter[f >>> 5]! |= 1 << (f & 31);
      const bucket = this.byHash.get(h);
      if (bucket === undefined) this.byHash.set(h, [i]);
      else bucket.push(i);
      used |= 1 << r.list;
    });
    this.usedMask = used;
  }

  /**
   * The first rule (in list and line order) of a list in `mask` anchored at name[anchorStart, end)
   * (hash `h`) whose glob matches the label just left of it; -1 when none. `anchorStart` > 0 and
   * name[anchorStart - 1] is a dot.
   */
  matchAt(name: string, anchorStart: number, end: number, h: number, mask: number): number {
    const f = h >>> 19;
    if ((this.filter[f >>> 5]! & (1 << (f & 31))) === 0) return -1;
    const bucket = this.byHash.get(h);
    if (bucket === undefined) return -1;
    const labelEnd = anchorStart - 1;
    let labelStart = labelEnd;
    while (labelStart > 0 && name.charCodeAt(labelStart - 1) !== DOT) labelStart--;
    for (const i of bucket) {
      const r = this.rules[i]!;
      if ((mask & (1 << r.list)) === 0 || r.anchor.length !== end - anchorStart) continue;
      if (!sameSuffix(r.anchor, name, anchorStart)) continue;
      if (globMatches(r.glob, name, labelStart, labelEnd)) return i;
    }
    return -1;
  }

  rule(i: number): WildRule {
    const r = this.rules[i];
    if (r === undefined) throw new RangeError(`no wildcard rule ${i}`);
    return r;
  }
}

function sameSuffix(anchor: string, name: string, start: number): boolean {
  for (let k = 0; k < anchor.length; k++) if (anchor.charCodeAt(k) !== name.charCodeAt(start + k)) return false;
  return true;
}

/** Plain words for `lists check` and `check`: what a wildcard rule covers. */
export function explainWildcard(glob: string, anchor: string): string {
  return `covers names in ${anchor} whose label left of it matches "${glob}" (* = any run of characters), ` +
    `and every name below them; ${anchor} itself and its other names are not covered`;
}

/** For the parser: "p16-tiktok*.ibyteimg.com" → glob and anchor, or a reason it is not supported. */
export function splitWildcard(body: string): { glob: string; anchor: string } | string {
  const dot = body.indexOf('.');
  if (dot <= 0) return 'a wildcard rule needs a literal zone after its first label (||p16-tiktok*.example.com^)';
  const glob = body.slice(0, dot).toLowerCase();
  const anchor = body.slice(dot + 1).toLowerCase();
  if (anchor.includes('*')) return '`*` is supported inside the first label only';
  if (!anchor.includes('.') && anchor.length > 0 && !/[a-z]/.test(anchor)) return 'invalid domain name';
  if (/^\*+$/.test(glob)) return 'a label of only `*`: write ||*.zone^ for the names below a zone';
  if (!/^[a-z0-9*_-]{1,63}$/.test(glob)) return 'invalid wildcard label';
  if (!/^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(anchor)) {
    return 'invalid domain name';
  }
  return { glob, anchor };
}
