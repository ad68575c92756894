/**
 * The worker's side of the primary's asks (runtime/workers.ts): with dns.workers > 1 the primary
 * serves the admin API and answers each request from what the workers say. Metrics travel as
 * prom-client's JSON (getMetricsAsJSON), so the primary can aggregate them with AggregatorRegistry.
 */
import type { Runtime } from './runtime.js';
import type { CheckRequest } from '../admin/server.js';
import type { PrimaryMessage, WorkerError, WorkerMessage } from './workers.js';

export function answerPrimary(runtime: Runtime): void {
  process.on('message', (m: PrimaryMessage) => {
    if (m?.type !== 'ask') return;
    answer(runtime, m).then(
      (value) => send({ type: 'answer', id: m.id, value }),
      (err: unknown) => send({ type: 'answer', id: m.id, error: workerError(err) }),
    );
  });
}

async function answer(runtime: Runtime, m: PrimaryMessage): Promise<unknown> {
  switch (m.what) {
    case 'metrics': return runtime.observability.metrics.registry.getMetricsAsJSON();
    case 'readiness': return runtime.observability.readiness();
    case 'check': return runtime.check(m.request as CheckRequest);
    case 'reload': {
      const err = await runtime.reload();
      if (err !== null) throw err;
      return null;
    }
  }
}

function workerError(err: unknown): WorkerError {
  const e = err instanceof Error ? err : new Error(String(err));
  const keyPath = (e as { keyPath?: unknown }).keyPath;
  const exitCode = (e as { exitCode?: unknown }).exitCode;
  return { message: e.message, ...(typeof keyPath === 'string' ? { keyPath } : {}), ...(typeof exitCode === 'number' ? { exitCode } : {}) };
}

function send(message: WorkerMessage): void {
  // the channel is gone when the primary died; the worker stops on 'disconnect' anyway
  if (process.connected) process.send?.(message);
}
