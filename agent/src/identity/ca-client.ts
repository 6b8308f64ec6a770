// The agent's client for IstioCertificateService: one CSR per identity, asked on behalf of a
// pod with the ImpersonatedIdentity metadata, authenticated with the node's bearer token.
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ServiceError, type ChannelOptions } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { istioCertificateService } from '../xds/grpc-services.js';
import { IstioCertificateRequestSchema, type IstioCertificateRequest, type IstioCertificateResponse } from '../xds/gen/istio/v1/auth/ca_pb.js';
import { IMPERSONATED_IDENTITY } from './ca-service.js';
import { channelOptions, type ControlPlaneConnection } from '../xds/connection.js';

export type { ControlPlaneConnection };

type CaStub = Client & {
  CreateCertificate(req: IstioCertificateRequest, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res?: IstioCertificateResponse) => void): void;
};
const CaClientCtor = makeGenericClientConstructor(istioCertificateService as never, 'IstioCertificateService') as unknown as new (
  address: string, creds: ReturnType<typeof credentials.createSsl>, options?: ChannelOptions,
) => CaStub;

export class CaClient {
  private stub: CaStub;
  constructor(private readonly conn: ControlPlaneConnection) {
    this.stub = this.newStub();
  }

  private newStub(): CaStub {
    // A short channel backoff: after a CA outage the next refresh should not wait minutes.
    return new CaClientCtor(this.conn.address, credentials.createSsl(Buffer.from(this.conn.rootCertPem)), {
      ...channelOptions(this.conn), 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 5000,
    });
  }

  /** Sends a CSR for `spiffeId`; resolves to the PEM chain (leaf first, root last). */
  async createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number, timeoutMs = 10_000): Promise<string[]> {
    const md = new Metadata();
    md.set('authorization', `Bearer ${await this.conn.token()}`);
    const req = create(IstioCertificateRequestSchema, {
      csr: csrPem, validityDuration: BigInt(Math.round(ttlSeconds)), metadata: { [IMPERSONATED_IDENTITY]: spiffeId },
    });
    const stub = this.stub;
    return new Promise((resolve, reject) => {
      stub.CreateCertificate(req, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolve(res!.certChain);
        // grpc-js has no connect timeout: a connection attempt that is never answered (a Service
        // IP not yet programmed) would hold every later call until the kernel gives up, minutes
        // later. After a deadline, the next call starts on a new channel.
        if (err.code === status.DEADLINE_EXCEEDED && this.stub === stub) {
          this.stub = this.newStub();
          stub.close();
        }
        reject(err);
      });
    });
  }

  close(): void {
    this.stub.close();
  }
}
