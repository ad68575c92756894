/**
 * The last good copy of every URL source, on disk in `stateDir`, so a restart during an outage
 * of a list's host still blocks. Per URL two files: `<host>-<hash>.txt` (the body as downloaded)
 * and `<host>-<hash>.json` (URL, ETag/Last-Modified, when, and the body's SHA-256). Both are
 * written to a temporary name and renamed, so a crash leaves the old copy or the new one, never
 * half of one; a body whose hash does not match its metadata is reported as corrupt and not used.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Validators } from './download.js';

export interface StoredCopy {
  readonly text: string;
  readonly validators: Validators;
  /** When this body was downloaded (ms since the epoch). */
  readonly fetchedAt: number;
}

interface Meta {
  readonly url: string;
  readonly sha256: string;
  readonly fetchedAt: number;
  readonly etag?: string;
  readonly lastModified?: string;
}

export type ReadCopy = { readonly copy: StoredCopy } | { readonly missing: true } | { readonly corrupt: string };

export class StateDir {
  constructor(readonly dir: string) {}

  /** Base path of a URL's two files: readable host, hash of the whole URL for uniqueness. */
  fileOf(url: string): string {
    let host = 'list';
    try {
      host = new URL(url).hostname.replace(/[^a-z0-9.-]/gi, '_') || host;
    } catch { /* config validation admits only URLs; keep the generic name */ }
    return join(this.dir, 'lists', `${host}-${sha256(url).slice(0, 16)}`);
  }

  async read(url: string): Promise<ReadCopy> {
    const base = this.fileOf(url);
    let metaText: string;
    let text: string;
    try {
      [metaText, text] = await Promise.all([readFile(`${base}.json`, 'utf8'), readFile(`${base}.txt`, 'utf8')]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
      return { corrupt: `cannot read ${base}.txt: ${(err as Error).message}` };
    }
    let meta: Meta;
    try {
      meta = JSON.parse(metaText) as Meta;
    } catch {
      return { corrupt: `${base}.json is not JSON` };
    }
    if (meta.url !== url) return { corrupt: `${base}.json belongs to ${String(meta.url)}` };
    if (sha256(text) !== meta.sha256) return { corrupt: `${base}.txt does not match its checksum` };
    const validators: Validators = {
      ...(typeof meta.etag === 'string' ? { etag: meta.etag } : {}),
      ...(typeof meta.lastModified === 'string' ? { lastModified: meta.lastModified } : {}),
    };
    return { copy: { text, validators, fetchedAt: Number(meta.fetchedAt) || 0 } };
  }

  /** Body first, then the metadata that vouches for it: until the second rename the old metadata no longer matches, so a crash in between reads as "corrupt", never as the wrong list. */
  async write(url: string, copy: StoredCopy): Promise<void> {
    const base = this.fileOf(url);
    await mkdir(join(this.dir, 'lists'), { recursive: true });
    const meta: Meta = { url, sha256: sha256(copy.text), fetchedAt: copy.fetchedAt, ...copy.validators };
    await atomicWrite(`${base}.txt`, copy.text);
    await atomicWrite(`${base}.json`, `${JSON.stringify(meta, null, 2)}\n`);
  }
}

async function atomicWrite(file: string, data: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { flush: true });
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
