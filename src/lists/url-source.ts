/**
 * One URL list source over the life of the process: the copy held (downloaded now, or the last
 * good copy from stateDir), its ETag/Last-Modified for conditional requests, and when it last
 * succeeded or why it last failed. `update()` asks the server; `accept()`/`refuse()` are the
 * sanity guard's verdict on a changed body, and only an accepted body reaches the disk.
 */
import { download, type DownloadOptions, type Validators } from './download.js';
import type { StateDir } from './state-dir.js';

export type SourceState = 'fresh' | 'copy' | 'missing';

export interface SourceStatus {
  readonly source: string;
  /** fresh: downloaded (or confirmed by a 304) by this process; copy: the last good copy from stateDir; missing: no rules yet. */
  readonly state: SourceState;
  /** Last successful download or 304, else when the copy served was downloaded (ms since the epoch). */
  readonly lastSuccess: number | null;
  readonly lastError: string | null;
}

/** A changed body waiting for the sanity guard's verdict. */
export interface Candidate {
  readonly text: string;
  readonly validators: Validators;
}

export class UrlSource {
  private text: string | undefined;
  private validators: Validators = {};
  private state: SourceState = 'missing';
  private lastSuccess: number | null = null;
  private lastError: string | null = null;
  private diskRead = false;

  constructor(readonly url: string, private readonly disk: StateDir, private readonly now: () => number = Date.now,
    private readonly warn: (msg: string) => void = () => undefined) {}

  /** The body served now (undefined while missing). */
  get current(): string | undefined {
    return this.text;
  }

  status(): SourceStatus {
    return { source: this.url, state: this.state, lastSuccess: this.lastSuccess, lastError: this.lastError };
  }

  /**
   * Asks the server (conditionally when a copy is held). Returns the changed body for the guard,
   * or null when the copy held stays (304). Throws the download error; the copy held stays then too.
   */
  async update(opts: Omit<DownloadOptions, 'validators'>): Promise<Candidate | null> {
    await this.loadDiskCopy();
    try {
      const got = await download(this.url, { ...opts, ...(this.text !== undefined ? { validators: this.validators } : {}) });
      if (got.status === 'not-modified') {
        this.succeeded();
        return null;
      }
      return { text: got.text, validators: got.validators };
    } catch (err) {
      this.lastError = (err as Error).message;
      throw err;
    }
  }

  /** The guard passed: serve the body and keep it as the last good copy (a failed disk write only warns). */
  async accept(candidate: Candidate): Promise<void> {
    this.text = candidate.text;
    this.validators = candidate.validators;
    this.succeeded();
    await this.disk.write(this.url, { text: candidate.text, validators: candidate.validators, fetchedAt: this.lastSuccess ?? this.now() })
      .catch((err: unknown) => this.warn(`cannot keep the copy of ${this.url} in ${this.disk.dir}: ${(err as Error).message}`));
  }

  refuse(reason: string): void {
    this.lastError = reason;
  }

  private succeeded(): void {
    this.state = 'fresh';
    this.lastSuccess = this.now();
    this.lastError = null;
  }

  /** Once per process: the last good copy in stateDir becomes the copy held (and its validators are sent). */
  private async loadDiskCopy(): Promise<void> {
    if (this.diskRead || this.text !== undefined) return;
    this.diskRead = true;
    const read = await this.disk.read(this.url);
    if ('corrupt' in read) {
      this.warn(`ignoring the copy of ${this.url} in ${this.disk.dir}: ${read.corrupt}`);
      return;
    }
    if ('copy' in read) {
      this.text = read.copy.text;
      this.validators = read.copy.validators;
      this.state = 'copy';
      this.lastSuccess = read.copy.fetchedAt;
    }
  }
}
