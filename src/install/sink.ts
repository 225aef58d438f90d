/**
 * The verifier's ArtifactSink for an install: each artifact streams into a
 * new file of the staging slot while the verifier hashes it. finish()
 * fsyncs the file; abort() removes it. File-system failures (disk full,
 * read-only) surface as InstallError with a code a technician can act on.
 */
import type { ArtifactSink, ArtifactWriter } from '../bundle/types.js';
import type { Manifest, ManifestArtifact } from '../manifest/types.js';
import { fsFailure, type InstallError } from './errors.js';
import type { SlotStaging } from './slot.js';

export class SlotSink implements ArtifactSink {
  /** Artifacts finished (size and digest matched, file fsynced), in order. */
  readonly finished: string[] = [];
  bytesWritten = 0;
  /** The first file-system failure, kept so the installer reports it rather than a generic error. */
  failure: InstallError | null = null;

  constructor(private readonly staging: SlotStaging) {}

  async begin(artifact: ManifestArtifact, _manifest: Manifest): Promise<ArtifactWriter> {
    let file;
    try {
      file = await this.staging.createArtifact(artifact.name);
    } catch (err) {
      throw (this.failure ??= fsFailure(err, `creating ${artifact.name} in slot ${this.staging.slot}`));
    }
    const what = `writing ${artifact.name} into slot ${this.staging.slot}`;
    return {
      write: async (chunk: Buffer) => {
        try {
          await file.write(chunk);
          this.bytesWritten += chunk.length;
        } catch (err) {
          throw (this.failure ??= fsFailure(err, what));
        }
      },
      finish: async () => {
        try {
          await file.finish();
          this.finished.push(artifact.name);
        } catch (err) {
          throw (this.failure ??= fsFailure(err, what));
        }
      },
      abort: async () => {
        await file.abort().catch(() => undefined);
      },
    };
  }
}
