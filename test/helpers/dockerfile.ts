/**
 * A Dockerfile read into stages of instructions, for the static checks and the build replay: line
 * continuations joined, comments and parser directives dropped, ARG defaults substituted into FROM.
 */
export interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

export interface Stage {
  /** `FROM image AS name`: the name, else its index as text. */
  readonly name: string;
  readonly image: string;
  readonly instructions: readonly Instruction[];
}

export function instructions(text: string): Instruction[] {
  return text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const [keyword, ...rest] = l.split(/\s+/);
    return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
  });
}

export function stages(text: string): Stage[] {
  const all = instructions(text);
  const globalArgs = new Map<string, string>();
  const out: { name: string; image: string; instructions: Instruction[] }[] = [];
  for (const ins of all) {
    if (ins.keyword === 'ARG' && out.length === 0) {
      const [k, v = ''] = ins.args.split('=');
      globalArgs.set(k!, v);
    } else if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args.replace(/\$\{(\w+)\}/g, (_s, n: string) => globalArgs.get(n) ?? ''));
      out.push({ name: m?.[2] ?? String(out.length), image: m?.[1] ?? '', instructions: [] });
    } else {
      out[out.length - 1]?.instructions.push(ins);
    }
  }
  return out;
}

/** `["a", "b"]` (exec form) → ['a', 'b']. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not exec form: ${args}`);
  return parsed as string[];
}
