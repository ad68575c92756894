/**
 * Turns a list source (a file path or an http(s) URL) into text, once: for `appfence check` and
 * `lists check`. A URL that cannot be fetched falls back to the last copy this process fetched from
 * it, with a warning; without such a copy it is an error. The server keeps its lists alive with
 * lists/list-keeper.ts instead (refresh, copies on disk, retries).
 */
import { readFile } from 'node:fs/promises';
import { ListSourceError } from '../errors.js';
import { DEFAULT_TIMEOUT_MS, MAX_LIST_BYTES, download } from './download.js';

const lastGoodCopy = new Map<string, string>();

export interface ReadSourceOptions {
  timeoutMs?: number;
  onWarning?: (msg: string) => void;
  /** Tests lower it; the default is MAX_LIST_BYTES. */
  maxBytes?: number;
}

export function isUrlSource(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source);
}

export async function readSource(source: string, opts: ReadSourceOptions = {}): Promise<string> {
  if (!isUrlSource(source)) return readFileSource(source);
  const scheme = source.slice(0, source.indexOf(':')).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    throw new ListSourceError(source, `unsupported URL scheme "${scheme}:" (only http and https)`);
  }
  try {
    const got = await download(source, { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBytes: opts.maxBytes ?? MAX_LIST_BYTES });
    if (got.status !== 'changed') throw new Error('unexpected 304 to an unconditional request');
    lastGoodCopy.set(source, got.text);
    return got.text;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const copy = lastGoodCopy.get(source);
    if (copy === undefined) throw new ListSourceError(source, `download failed: ${reason}`, { cause: err });
    opts.onWarning?.(`${source}: download failed (${reason}); using the last good copy`);
    return copy;
  }
}

/** Also the list keeper's way to read file sources. */
export async function readFileSource(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? String(err)})`;
    throw new ListSourceError(path, what, { cause: err });
  }
}
