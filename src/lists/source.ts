/**
 * Turns a list source (a file path or an http(s) URL) into text for the list loader. A URL that
 * cannot be fetched falls back to the last copy this process fetched from it, with a warning, so a
 * reload during an outage of the list's host keeps blocking; without such a copy it is an error.
 */
import { readFile } from 'node:fs/promises';
import { ListSourceError } from '../errors.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Far above any public DNS list (HaGeZi Ultimate hosts ≈ 20 MB); a bound against a runaway server. */
export const MAX_LIST_BYTES = 64 * 1024 * 1024;

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
    const text = await download(source, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.maxBytes ?? MAX_LIST_BYTES);
    lastGoodCopy.set(source, text);
    return text;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const copy = lastGoodCopy.get(source);
    if (copy === undefined) throw new ListSourceError(source, `download failed: ${reason}`, { cause: err });
    opts.onWarning?.(`${source}: download failed (${reason}); using the last good copy`);
    return copy;
  }
}

async function readFileSource(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? String(err)})`;
    throw new ListSourceError(path, what, { cause: err });
  }
}

async function download(url: string, timeoutMs: number, maxBytes: number): Promise<string> {
  // One signal for connect, headers and body: a server that trickles bytes is cut off too.
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    throw signal.aborted ? new Error(`timed out after ${timeoutMs} ms`) : describeFetchError(err);
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new Error(`HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new Error(`larger than ${maxBytes} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength;
      if (size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    throw signal.aborted ? new Error(`timed out after ${timeoutMs} ms`) : err;
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

function describeFetchError(err: unknown): Error {
  // undici hides the useful part (ECONNREFUSED, ENOTFOUND ...) in `cause`.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  return new Error(detail ? `${(err as Error).message} (${detail})` : (err as Error).message);
}
