// How an agent reaches the controller (xDS and CA share it): address, the roots that sign the
// controller's serving certificate, the node's bearer token and an optional TLS name.
import type { ChannelOptions } from '@grpc/grpc-js';

export interface ControlPlaneConnection {
  /** host:port of the controller */
  address: string;
  /** PEM roots that sign the controller's serving certificate */
  rootCertPem: string;
  /** bearer token naming this node; a function so a rotated token file is re-read */
  token: () => string | Promise<string>;
  /** TLS name to verify instead of the address host */
  serverName?: string;
}

export function channelOptions(conn: ControlPlaneConnection): ChannelOptions {
  return conn.serverName ? { 'grpc.ssl_target_name_override': conn.serverName, 'grpc.default_authority': conn.serverName } : {};
}

/**
 * A token source that re-reads a file on every (re)connect, so a rotated projected
 * service-account token (or a re-issued lab token) is picked up without a restart.
 */
export function tokenFromFile(path: string): () => Promise<string> {
  return async () => {
    const { readFile } = await import('node:fs/promises');
    const t = (await readFile(path, 'utf8')).trim();
    if (!t) throw new Error(`token file ${path} is empty`);
    return t;
  };
}
