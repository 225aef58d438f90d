/**
 * The one place @peculiar/x509 is set up. Everyone imports the library
 * through this module so that its crypto provider is always node's
 * webcrypto (which is node:crypto underneath) and reflect-metadata is
 * loaded before the library's ASN.1 schema decorators run.
 *
 *   import { x509 } from '../pki/x509.js';
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
