/**
 * Typed errors. A blocked name, a refused client or an NXDOMAIN are results, not errors;
 * these are for things that went wrong. `code` is stable (AF_ERR_<AREA>_<WHAT>) so logs and
 * tests can match on it; `exitCode` is what the CLI exits with when one reaches it.
 */
export class AppfenceError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options?.exitCode ?? 70;
  }
}

/** A config (or CLI usage) problem; the message names the key path. Exit 2. */
export class ConfigError extends AppfenceError {
  readonly keyPath: string;
  constructor(keyPath: string, message: string, options?: { cause?: unknown }) {
    super('AF_ERR_CONFIG_INVALID', keyPath ? `${keyPath}: ${message}` : message, { ...options, exitCode: 2 });
    this.keyPath = keyPath;
  }
}

/** Several config problems at once: an admin fixes them all in one go rather than one per run. */
export class ConfigErrors extends AppfenceError {
  readonly errors: readonly ConfigError[];
  constructor(source: string, errors: readonly ConfigError[]) {
    super('AF_ERR_CONFIG_INVALID', `${source}: ${errors.length} error${errors.length === 1 ? '' : 's'}\n` +
      errors.map((e) => `  ${e.message}`).join('\n'), { exitCode: 2 });
    this.errors = errors;
  }
}

/** Wrong command-line usage. Exit 2. */
export class UsageError extends AppfenceError {
  constructor(message: string) {
    super('AF_ERR_USAGE', message, { exitCode: 2 });
  }
}

/** A list source (file or URL) could not be read at all. Bad lines are not errors: they are collected. */
export class ListSourceError extends AppfenceError {
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super('AF_ERR_LIST_SOURCE', `${source}: ${message}`, { ...options, exitCode: 2 });
    this.source = source;
  }
}

/** 'overload': not sent at all, the cap on outstanding upstream queries was reached. */
export type UpstreamFailure = 'timeout' | 'mismatch' | 'network' | 'truncated' | 'format' | 'overload';

/** One upstream try failed; the resolver moves on to the next upstream, then answers SERVFAIL. */
export class UpstreamError extends AppfenceError {
  readonly upstream: string;
  readonly reason: UpstreamFailure;
  constructor(upstream: string, reason: UpstreamFailure, message: string, options?: { cause?: unknown }) {
    super(`AF_ERR_UPSTREAM_${reason.toUpperCase()}`, `${upstream}: ${message}`, options);
    this.upstream = upstream;
    this.reason = reason;
  }
}
