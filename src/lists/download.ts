/**
 * One HTTP(S) download of a list, conditional when a copy is held (If-None-Match /
 * If-Modified-Since → 304 "not modified"), bounded in time (one signal for connect, headers and
 * body, so a server that trickles bytes is cut off too) and in size.
 *
 * Node's global fetch rather than make-fetch-happen: its on-disk cache would store a 200 HTML error
 * page before appfence could refuse it, while the last good copy must only ever hold a download
 * that passed the sanity guard (lists/state-dir.ts writes it). Conditional requests are two headers.
 */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Far above any public DNS list (HaGeZi Ultimate hosts ≈ 20 MB); a bound against a runaway server. */
export const MAX_LIST_BYTES = 64 * 1024 * 1024;

export interface Validators {
  readonly etag?: string;
  readonly lastModified?: string;
}

export type Downloaded =
  | { readonly status: 'changed'; readonly text: string; readonly validators: Validators }
  | { readonly status: 'not-modified' };

export interface DownloadOptions {
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  /** From the copy held; sent so an unchanged list costs a 304. */
  readonly validators?: Validators;
}

/** A failed download, with whether trying again soon can help (network, timeout, 5xx, 429) or not (404, too big). */
export class DownloadError extends Error {
  constructor(message: string, readonly transient: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export async function download(url: string, opts: DownloadOptions = {}): Promise<Downloaded> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = opts.maxBytes ?? MAX_LIST_BYTES;
  const signal = AbortSignal.timeout(timeoutMs);
  const timedOut = (): DownloadError => new DownloadError(`timed out after ${timeoutMs} ms`, true);
  const headers: Record<string, string> = { 'user-agent': 'appfence', accept: 'text/plain, */*;q=0.5' };
  if (opts.validators?.etag !== undefined) headers['if-none-match'] = opts.validators.etag;
  if (opts.validators?.lastModified !== undefined) headers['if-modified-since'] = opts.validators.lastModified;
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: 'follow', headers });
  } catch (err) {
    throw signal.aborted ? timedOut() : describeFetchError(err);
  }
  if (response.status === 304 && opts.validators !== undefined) {
    await response.body?.cancel().catch(() => undefined);
    return { status: 'not-modified' };
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new DownloadError(`HTTP ${response.status}`, response.status >= 500 || response.status === 429 || response.status === 408);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new DownloadError(`larger than ${maxBytes} bytes`, false);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength;
      if (size > maxBytes) throw new DownloadError(`larger than ${maxBytes} bytes`, false);
      chunks.push(chunk);
    }
  } catch (err) {
    throw signal.aborted ? timedOut() : err instanceof DownloadError ? err : describeFetchError(err);
  }
  const validators: Validators = {
    ...(response.headers.get('etag') !== null ? { etag: response.headers.get('etag') as string } : {}),
    ...(response.headers.get('last-modified') !== null ? { lastModified: response.headers.get('last-modified') as string } : {}),
  };
  return { status: 'changed', text: Buffer.concat(chunks, size).toString('utf8'), validators };
}

function describeFetchError(err: unknown): DownloadError {
  // undici hides the useful part (ECONNREFUSED, ENOTFOUND ...) in `cause`.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  const message = (err as Error).message;
  return new DownloadError(detail ? `${message} (${detail})` : message, true, { cause: err });
}
