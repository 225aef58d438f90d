/** Types of bundle-v1 section 2 (the manifest) and section 4 (egress rules). */

export type ArtifactRole = 'rootfs' | 'kernel' | 'app' | 'config' | 'sbom' | 'provenance' | 'trust' | 'other';

export interface ManifestArtifact {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  readonly role: ArtifactRole;
}

interface EgressRuleBase {
  readonly id: string;
  readonly purpose: string;
  readonly proto: 'tcp' | 'udp';
  /** Exactly one of port / ports. */
  readonly port?: number;
  readonly ports?: readonly [number, number];
}
export type EgressRule = EgressRuleBase & ({ readonly host: string; readonly cidr?: never } | { readonly cidr: string; readonly host?: never });

export interface Provenance {
  readonly sourceRepository: string;
  readonly sourceCommit: string;
  readonly builder: string;
  readonly buildFinished: string;
}

export interface Manifest {
  readonly schema: 'glassbox.manifest/v1';
  readonly product: string;
  readonly hardware: readonly string[];
  readonly version: string;
  readonly securityVersion: number;
  readonly released: string;
  readonly expires: string;
  readonly artifacts: readonly ManifestArtifact[];
  readonly egress: readonly EgressRule[];
  readonly provenance: Provenance;
  readonly notes?: string;
}

/** Hard limit of section 5: a manifest over 1 MiB is MANIFEST_INVALID. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;
