/**
 * Config file → Config: YAML (JSON is YAML too, so .json files need no second parser), then
 * ${VAR} substitution, then validation (config/validate.ts). Every problem is thrown at once as
 * ConfigErrors (exit 2): YAML syntax errors as file:line:col, the rest with their key path.
 * Used by `serve` (start and SIGHUP) and `check`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, ConfigErrors } from '../errors.js';
import type { Config } from './types.js';
import { validateConfig } from './validate.js';

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const source = resolve(file);
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigErrors(source, [new ConfigError('', `cannot read ${source}: ${reason}`, { cause: err })]);
  }
  return parseConfig(text, source, env);
}

/** `file` names the config in messages and is the folder relative paths resolve against. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const source = resolve(file);
  const raw = parseYaml(text, source);
  const errors: ConfigError[] = [];
  const reported = new Set<string>();
  const substituted = substituteEnv(raw, '', env, (path, message) => {
    errors.push(new ConfigError(path, message));
    reported.add(path);
  });
  return validateConfig(substituted, { source, dir: dirname(source), reported, earlier: errors });
}

function parseYaml(text: string, source: string): unknown {
  const lines = new LineCounter();
  // logLevel 'error': YAML warnings (e.g. collection keys) would otherwise go to process warnings.
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lines, uniqueKeys: true, logLevel: 'error' });
  if (doc.errors.length > 0) {
    throw new ConfigErrors(source, doc.errors.map((e) => {
      const { line, col } = lines.linePos(e.pos[0]);
      return new ConfigError('', `${source}:${line}:${col}: ${e.message}`, { cause: e });
    }));
  }
  try {
    // maxAliasCount bounds "billion laughs" alias expansion.
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (err) {
    throw new ConfigErrors(source, [new ConfigError('', `${source}: ${(err as Error).message}`, { cause: err })]);
  }
}

function child(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/**
 * `${NAME}` in a string value becomes the environment variable NAME; `$${NAME}` is a literal
 * `${NAME}`. Substitution runs on parsed values, never on the YAML text, so a variable's content
 * cannot add keys or change types. Keys are not substituted.
 */
function substituteEnv(value: unknown, path: string, env: NodeJS.ProcessEnv,
  fail: (path: string, message: string) => void): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    return value.replace(/\$(\$?)\{([^}]*)\}/g, (whole, escaped: string, name: string) => {
      if (escaped !== '') return whole.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        fail(path, `"\${${name}}" is not a variable reference (names are letters, digits and _; write $\${ for a literal \${)`);
        return whole;
      }
      const replacement = env[name];
      if (replacement === undefined) {
        fail(path, `environment variable ${name} is not set`);
        return whole;
      }
      return replacement;
    });
  }
  if (Array.isArray(value)) return value.map((v: unknown, i) => substituteEnv(v, child(path, i), env, fail));
  if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !(value instanceof Uint8Array)) {
    // fromEntries, not assignment: a `__proto__` key must stay a key (and be reported as unknown).
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, child(path, k), env, fail)]));
  }
  return value;
}
