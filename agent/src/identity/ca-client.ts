// The agent's client for IstioCertificateService: one CSR per identity, asked on behalf of a
// pod with the ImpersonatedIdentity metadata, authenticated with the node's bearer token.
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ServiceError, type ChannelOptions } from '@grpc/grpc-js';
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
  private readonly stub: CaStub;
  constructor(private readonly conn: ControlPlaneConnection) {
    // A short channel backoff: after a CA outage the next refresh should not wait minutes.
    this.stub = new CaClientCtor(conn.address, credentials.createSsl(Buffer.from(conn.rootCertPem)), {
      ...channelOptions(conn), 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 5000,
    });
  }

  /** Sends a CSR for `spiffeId`; resolves to the PEM chain (leaf first, root last). */
  async createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number, timeoutMs = 10_000): Promise<string[]> {
    const md = new Metadata();
    md.set('authorization', `Bearer ${await this.conn.token()}`);
    const req = create(IstioCertificateRequestSchema, {
      csr: csrPem, validityDuration: BigInt(Math.round(ttlSeconds)), metadata: { [IMPERSONATED_IDENTITY]: spiffeId },
    });
    return new Promise((resolve, reject) => {
      this.stub.CreateCertificate(req, md, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res!.certChain)));
    });
  }

  close(): void {
    this.stub.close();
  }
}
