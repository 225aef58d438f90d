/**
 * The one place @peculiar/x509 is set up. Everyone imports the library
 * through this module so that its crypto provider is always node's
 * webcrypto (which is node:crypto underneath) and reflect-metadata is
 * loaded before the library's ASN.1 schema decorators run.
 *
 *   import { x509 } from '../pki/x509.js';
 *
 * Loaded on first use, through require: the library and its ~200 CommonJS
 * modules (asn1js, tsyringe, the @peculiar/asn1-* packages) cost about
 * 100–200 ms to load, so importing this module costs nothing until a
 * property of `x509` is first read (a command that never reads a
 * certificate never pays). require, not import(): loading the library's
 * ES build makes node scan every one of those CommonJS modules for export
 * names (cjs-module-lexer), which measured ~40% slower, and it keeps
 * first use synchronous for the pure chain code.
 *
 * `x509.Foo` works as a value exactly as with `import * as x509`. As a
 * type, `x509.Foo` resolves through the namespace below, which lists the
 * library types the code uses: add one there when you need another.
 */
import { webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Lib from '@peculiar/x509';

const require = createRequire(import.meta.url);
let lib: typeof Lib | undefined;

function load(): typeof Lib {
  if (lib === undefined) {
    require('reflect-metadata');
    const loaded = require('@peculiar/x509') as typeof Lib;
    loaded.cryptoProvider.set(webcrypto as unknown as Parameters<typeof loaded.cryptoProvider.set>[0]);
    lib = loaded;
  }
  return lib;
}

export const x509: typeof Lib = new Proxy({} as typeof Lib, {
  get: (_target, key) => Reflect.get(load(), key) as unknown,
  has: (_target, key) => Reflect.has(load(), key),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_target, key) => {
    const d = Reflect.getOwnPropertyDescriptor(load(), key);
    return d === undefined ? undefined : { ...d, configurable: true };
  },
  set: () => false,
  defineProperty: () => false,
  deleteProperty: () => false,
});

// The library's types under the same name as the value (declaration merging).
export declare namespace x509 {
  type AuthorityKeyIdentifierExtension = Lib.AuthorityKeyIdentifierExtension;
  type BasicConstraintsExtension = Lib.BasicConstraintsExtension;
  type ExtendedKeyUsageExtension = Lib.ExtendedKeyUsageExtension;
  type Extension = Lib.Extension;
  type KeyUsageFlags = Lib.KeyUsageFlags;
  type KeyUsagesExtension = Lib.KeyUsagesExtension;
  type Name = Lib.Name;
  type Pkcs10CertificateRequest = Lib.Pkcs10CertificateRequest;
  type Pkcs10CertificateRequestCreateParams = Lib.Pkcs10CertificateRequestCreateParams;
  type Pkcs10CertificateRequestGenerator = Lib.Pkcs10CertificateRequestGenerator;
  type PublicKey = Lib.PublicKey;
  type SubjectAlternativeNameExtension = Lib.SubjectAlternativeNameExtension;
  type SubjectKeyIdentifierExtension = Lib.SubjectKeyIdentifierExtension;
  type X509Certificate = Lib.X509Certificate;
  type X509CertificateCreateWithKeyParams = Lib.X509CertificateCreateWithKeyParams;
  type X509CertificateGenerator = Lib.X509CertificateGenerator;
}
