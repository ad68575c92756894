/**
 * Server TLS options for any TLS listener (DoT, DoH, the coming TLS proxy) from the config:
 * certificate and key read from disk (so a SIGHUP picks up renewed files) and, with `clientCerts`,
 * the device-certificate fragment the identity layer gives. Read errors name the config key, like
 * every other config problem. swapSecureContext applies new options to a running server.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext, type Server, type TlsOptions } from 'node:tls';
import type { TlsListenerConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';

/** A handshake that has not completed by then is a stalled or hostile client. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export async function readPem(file: string, keyPath: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(keyPath, `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/** `clientAuth`: ca/requestCert/rejectUnauthorized for device certificates (CertificateIdentifier.tlsOptions), if any. */
export async function serverTlsOptions(listener: TlsListenerConfig, keyPath: string, clientAuth?: TlsOptions): Promise<TlsOptions> {
  const [cert, key] = await Promise.all([readPem(listener.cert, `${keyPath}.cert`), readPem(listener.key, `${keyPath}.key`)]);
  const options: TlsOptions = { cert, key, minVersion: 'TLSv1.2', ...clientAuth };
  try {
    // fail here, at load or reload, rather than on the first handshake: a key that does not match, a bad PEM
    createSecureContext(options);
  } catch (err) {
    throw new ConfigError(keyPath, `unusable certificate or key: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return options;
}

/**
 * Reload: connections accepted from now on use the new certificate, key and client CA. Whether a
 * client certificate is asked for (and required) is a server property, not part of the secure
 * context, so it is carried over too (clientCerts added, removed or `require` flipped by a reload).
 */
export function swapSecureContext(server: Server, options: TlsOptions): void {
  server.setSecureContext(options);
  const settings = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
  settings.requestCert = options.requestCert === true;
  settings.rejectUnauthorized = options.rejectUnauthorized !== false;
}
