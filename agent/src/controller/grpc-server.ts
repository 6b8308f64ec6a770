// The controller's one gRPC port (15012): delta ADS and the CA, over TLS with a serving
// certificate from the mesh CA.
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import type { CertificateAuthority } from '../identity/ca.js';
import { WeftError } from '../common/errors.js';

export class ListenError extends WeftError {
  constructor(address: string, cause: unknown, flag = 'listen') {
    super('WEFT_E_LISTEN', `cannot listen on ${address}: ${(cause as Error).message ?? String(cause)}`, {
      cause, hint: `pick a free port with --${flag} HOST:PORT, or stop what is using it`,
    });
  }
}

export interface GrpcService {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface RunningServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export const CONTROLLER_SERVICE = 'weft-controller';
export const DEFAULT_NAMESPACE = 'weft-system';

/**
 * Hostnames the serving certificate carries, so agents can verify whichever they dial: the
 * Service `weft-controller` of the controller's namespace in every form a pod resolves
 * (agents dial weft-controller.<ns>.svc:15012), localhost, and the listen address.
 */
export function servingNames(listenHost: string, namespace = DEFAULT_NAMESPACE): { dns: string[]; ips: string[] } {
  const svc = `${CONTROLLER_SERVICE}.${namespace}`;
  const dns = [`${svc}.svc`, `${svc}.svc.cluster.local`, svc, CONTROLLER_SERVICE, 'localhost'];
  const ips = ['127.0.0.1'];
  if (isIP(listenHost) && listenHost !== '0.0.0.0' && !ips.includes(listenHost)) ips.push(listenHost);
  else if (!isIP(listenHost) && !dns.includes(listenHost)) dns.push(listenHost);
  return { dns, ips };
}

export async function startGrpcServer(ca: CertificateAuthority, listen: string, services: GrpcService[], extraIps: string[] = [], namespace = DEFAULT_NAMESPACE): Promise<RunningServer> {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const names = servingNames(host, namespace);
  const serving = await ca.issueServing(names.dns, [...names.ips, ...extraIps.filter((i) => !names.ips.includes(i))]);
  const server = new Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
    // a reconnecting agent's initial_resource_versions names every resource it holds
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  for (const s of services) server.addService(s.definition, s.implementation);
  const creds = ServerCredentials.createSsl(Buffer.from(ca.rootsPem), [
    { private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certChainPem) },
  ], false);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, creds, (err, p) => (err ? reject(new ListenError(listen, err)) : resolve(p)));
  });
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => {
      const t = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
      server.tryShutdown(() => { clearTimeout(t); resolve(); });
    }),
  };
}
