// The one entry to @peculiar/x509: it uses tsyringe, which needs a Reflect polyfill loaded
// before it, and ES module imports run in order, so every module imports x509 from here.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
