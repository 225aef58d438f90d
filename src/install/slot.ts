/**
 * The slot interface. A slot's content mirrors the bundle layout:
 *   manifest.json            exact bytes that were signed
 *   signatures/<k>.sig|.pem  the signature pairs
 *   artifacts/<name>         one file per manifest artifact
 * so boot-check can re-verify signatures and digests without the bundle,
 * and a technician can check a slot by hand with the same openssl /
 * sha256sum steps as a bundle (bundle-v1 section 6).
 *
 * Content is addressed by a `ref` (recorded in state.json). A new install
 * stages into a fresh ref that nothing references; the state switch makes
 * it the slot's content; the old ref is swept afterwards. The directory
 * store below implements this with directories. A block-device store (one
 * partition per slot) cannot keep the old content while staging: it would
 * report `stagingIsInPlace`, and the installer must then mark the slot
 * `empty` in state before the first write (see docs/install.md).
 */
import type { SlotId } from './state.js';

export interface SignaturePair {
  readonly index: number;
  readonly signature: Buffer;
  readonly chainPem: Buffer;
}

/** One artifact being written; exactly one of finish() or abort() ends it. */
export interface SlotFileWriter {
  write(chunk: Buffer): Promise<void>;
  /** fsync and close. */
  finish(): Promise<void>;
  /** close and remove. */
  abort(): Promise<void>;
}

export interface SlotStaging {
  readonly slot: SlotId;
  readonly ref: string;
  createArtifact(name: string): Promise<SlotFileWriter>;
  writeManifest(bytes: Buffer): Promise<void>;
  writeSignatures(pairs: readonly SignaturePair[]): Promise<void>;
  /** Makes every file and directory written durable (fsync), before the state may point at it. */
  seal(): Promise<void>;
  /** Removes everything staged. */
  discard(): Promise<void>;
}

export interface SlotContent {
  readonly ref: string;
  /** Where a health hook can find the content (directory path, or device node). */
  readonly location: string;
  readManifest(): Promise<Buffer>;
  readSignatures(): Promise<SignaturePair[]>;
  /** Names of the files present in artifacts/, sorted; throws when something other than a regular file is there. */
  listArtifacts(): Promise<string[]>;
  /** Byte size of an artifact file (regular files only). */
  artifactSize(name: string): Promise<number>;
  /** Reads an artifact in chunks; each chunk is valid until the next is pulled. */
  readArtifact(name: string): AsyncIterable<Buffer>;
}

export interface SlotStore {
  /** True when staging overwrites the slot's current content (block devices). */
  readonly stagingIsInPlace: boolean;
  stage(slot: SlotId): Promise<SlotStaging>;
  open(ref: string): SlotContent;
  /** Removes content whose ref is not in `keep` (and leftovers of interrupted installs). Returns what was removed. */
  sweep(keep: readonly string[]): Promise<string[]>;
}
