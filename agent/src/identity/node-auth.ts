// Who is calling the controller: every agent presents `authorization: Bearer <token>` naming
// its node. In the lab the controller signs the tokens itself (HMAC-SHA256 with a key in its
// state directory); in Kubernetes a projected service-account token is checked with
// TokenReview, behind the same NodeAuthenticator interface.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../common/errors.js';

export interface NodeCaller {
  /** node name the caller runs on */
  node: string;
  /** who the caller is, for logs (e.g. lab:node1 or system:serviceaccount:weft-system:weft-agent) */
  subject: string;
}

export class UnauthenticatedError extends WeftError {
  constructor(reason: string, hint = 'send `authorization: Bearer <token>` with a node token issued by the controller (weft controller token --node <name>)') {
    super('WEFT_E_UNAUTHENTICATED', `caller not authenticated: ${reason}`, { hint });
  }
}

export interface NodeAuthenticator {
  /** Resolves the caller's node from a bearer token; rejects with UnauthenticatedError. */
  authenticate(token: string): Promise<NodeCaller>;
}

/** Reads `authorization: Bearer x` out of gRPC metadata-like header values. */
export function bearerToken(values: Array<string | Buffer>): string {
  const v = values[0];
  if (v === undefined) throw new UnauthenticatedError('no authorization header');
  const m = /^Bearer\s+(\S+)$/i.exec(v.toString());
  if (!m) throw new UnauthenticatedError("the authorization header is not 'Bearer <token>'");
  return m[1]!;
}

const PREFIX = 'weft1';
const KEY_FILE = 'node-token-key';

/** Lab tokens: weft1.<base64url JSON {node, exp}>.<base64url HMAC-SHA256>. */
export class HmacNodeTokens implements NodeAuthenticator {
  constructor(private readonly key: Buffer, private readonly now: () => number = Date.now) {
    if (key.length < 32) throw new Error('HMAC key must be at least 32 bytes');
  }

  /** Loads the signing key from the state directory, creating it (0600) on first use. */
  static async fromStateDir(dir: string): Promise<HmacNodeTokens> {
    const p = join(dir, KEY_FILE);
    try {
      return new HmacNodeTokens(Buffer.from((await readFile(p, 'utf8')).trim(), 'base64'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const key = randomBytes(32);
      await writeFile(p, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      return new HmacNodeTokens(Buffer.from((await readFile(p, 'utf8')).trim(), 'base64'));
    }
  }

  issue(node: string, ttlSeconds = 365 * 86400): string {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node)) throw new Error(`'${node}' is not a valid node name`);
    const body = Buffer.from(JSON.stringify({ node, exp: Math.floor(this.now() / 1000) + ttlSeconds })).toString('base64url');
    return `${PREFIX}.${body}.${this.mac(body)}`;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(`${PREFIX}.${body}`).digest('base64url');
  }

  async authenticate(token: string): Promise<NodeCaller> {
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX) throw new UnauthenticatedError('the token is not a Weft node token');
    const [, body, sig] = parts as [string, string, string];
    const want = Buffer.from(this.mac(body));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw new UnauthenticatedError('the token signature is wrong (issued by another controller?)');
    let claims: { node?: unknown; exp?: unknown };
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as typeof claims;
    } catch {
      throw new UnauthenticatedError('the token body is not JSON');
    }
    if (typeof claims.node !== 'string' || typeof claims.exp !== 'number') throw new UnauthenticatedError('the token lacks node or exp');
    if (claims.exp * 1000 < this.now()) throw new UnauthenticatedError(`the token for node ${claims.node} expired`);
    return { node: claims.node, subject: `lab:${claims.node}` };
  }
}
