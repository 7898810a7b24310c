/**
 * The in-memory ring of continuous profiles: at most `keep` profiles and at most `maxBytes`
 * (each profile's `.cpuprofile` JSON, summary and function table), the oldest dropped first.
 * A single profile bigger than the whole budget keeps its summary and function table but not
 * its `.cpuprofile` (the listing says `hasProfile: false`).
 */
import type { CpuFunction, CpuProfileSummary } from './cpu.js';
import type { FunctionTable } from './diff.js';

/** One profile as the listing shows it. */
export interface ProfileEntry {
  /** `p-<base-36 time>-<6 hex>`: unique across the fleet, safe in a URL. */
  readonly id: string;
  readonly instanceId: string;
  /** When the recording ended, ms since the epoch. */
  readonly at: number;
  readonly durationMs: number;
  readonly samplingIntervalUs: number;
  readonly sampleCount: number;
  /** Size of the `.cpuprofile` JSON in bytes. */
  readonly profileBytes: number;
  /** False when the `.cpuprofile` was too big to keep (summary and function table only). */
  readonly hasProfile: boolean;
  /** The hottest functions by self time (up to 3). */
  readonly top: readonly CpuFunction[];
}

/** A stored profile: its listing entry, summary (flame graph), function table and file. */
export interface StoredProfile {
  readonly entry: ProfileEntry;
  readonly summary: CpuProfileSummary;
  readonly table: FunctionTable;
  /** The `.cpuprofile` JSON, or `null` when not kept. */
  readonly profileJson: string | null;
}

/** What a stored profile weighs in the ring. */
export function sizeOf(profile: StoredProfile): number {
  return (
    Buffer.byteLength(profile.profileJson ?? '') +
    Buffer.byteLength(JSON.stringify(profile.summary)) +
    Buffer.byteLength(JSON.stringify(profile.table))
  );
}

/** Bounded by count and bytes; newest first when read. */
export class ProfileRing {
  readonly #keep: number;
  readonly #maxBytes: number;
  readonly #items: Array<{ profile: StoredProfile; size: number }> = [];
  #bytes = 0;

  constructor(keep: number, maxBytes: number) {
    this.#keep = keep;
    this.#maxBytes = maxBytes;
  }

  /**
   * Adds a profile, dropping the oldest until both bounds hold.
   *
   * @returns the profile as kept (without its file when it alone exceeds `maxBytes`)
   */
  push(profile: StoredProfile): StoredProfile {
    let kept = profile;
    let size = sizeOf(kept);
    if (size > this.#maxBytes && kept.profileJson !== null) {
      kept = { ...kept, profileJson: null, entry: { ...kept.entry, hasProfile: false } };
      size = sizeOf(kept);
    }
    this.#items.push({ profile: kept, size });
    this.#bytes += size;
    while (this.#items.length > 1 && (this.#items.length > this.#keep || this.#bytes > this.#maxBytes)) {
      this.#bytes -= this.#items.shift()!.size;
    }
    return kept;
  }

  get(id: string): StoredProfile | undefined {
    return this.#items.find((i) => i.profile.entry.id === id)?.profile;
  }

  /** The newest profile, if any. */
  get latest(): StoredProfile | undefined {
    return this.#items.at(-1)?.profile;
  }

  /** Entries, newest first. */
  entries(): ProfileEntry[] {
    return this.#items.map((i) => i.profile.entry).reverse();
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#items.length;
  }
}
