/**
 * Per-function self time of a CPU profile, and the difference between two profiles: for each
 * function (name + url + line), its share of the sampled time before and after, and the change,
 * largest change first. Self time is counted as the summary and DevTools count it (a sample
 * lasts until the next one, the last until `endTime`).
 */
import type { CpuProfile } from './cpu.js';
import { selfTimes } from './cpu.js';

/** One function's self time in a profile. */
export interface FunctionSelfTime {
  readonly functionName: string;
  readonly url: string;
  /** 1-based line. */
  readonly line: number;
  /** Self time, µs. */
  readonly selfUs: number;
}

/** Every function with self time, and the sampled total (µs) the shares are taken of. */
export interface FunctionTable {
  readonly totalUs: number;
  readonly functions: readonly FunctionSelfTime[];
}

/** One row of a diff. Times in ms; shares 0..1; `delta` = `afterShare` − `beforeShare`. */
export interface ProfileDiffRow {
  readonly functionName: string;
  readonly url: string;
  readonly line: number;
  readonly beforeMs: number;
  readonly afterMs: number;
  readonly beforeShare: number;
  readonly afterShare: number;
  readonly delta: number;
}

/** `GET /api/profiles/diff`. */
export interface ProfileDiff {
  readonly before: { readonly id: string; readonly at: number; readonly totalMs: number };
  readonly after: { readonly id: string; readonly at: number; readonly totalMs: number };
  /** Functions in either profile, by |delta| descending (then by name), at most `limit`. */
  readonly rows: readonly ProfileDiffRow[];
  /** Rows left out by the limit. */
  readonly omitted: number;
}

const keyOf = (f: { functionName: string; url: string; line: number }) =>
  `${f.functionName}\u0000${f.url}\u0000${f.line}`;

/** Self time per function (name + url + line) of a profile. */
export function functionTable(profile: CpuProfile): FunctionTable {
  const self = selfTimes(profile);
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const out = new Map<string, { functionName: string; url: string; line: number; selfUs: number }>();
  let totalUs = 0;
  for (const [id, us] of self) {
    totalUs += us;
    const frame = byId.get(id);
    if (frame === undefined || us <= 0) continue;
    const row = { functionName: frame.functionName || '(anonymous)', url: frame.url, line: frame.lineNumber + 1 };
    const key = keyOf(row);
    const seen = out.get(key);
    if (seen === undefined) out.set(key, { ...row, selfUs: us });
    else seen.selfUs += us;
  }
  const functions = [...out.values()].sort((a, b) => b.selfUs - a.selfUs);
  return { totalUs, functions };
}

const round6 = (v: number) => Math.round(v * 1e6) / 1e6;
const ms = (us: number) => Math.round(us) / 1000;

/**
 * The per-function difference between two profiles' self-time shares.
 *
 * @param before the earlier profile's table (and its id and time)
 * @param after the later one
 * @param limit most rows returned
 */
export function diffProfiles(
  before: { readonly id: string; readonly at: number; readonly table: FunctionTable },
  after: { readonly id: string; readonly at: number; readonly table: FunctionTable },
  limit = 200,
): ProfileDiff {
  const rows = new Map<string, { functionName: string; url: string; line: number; b: number; a: number }>();
  for (const [side, table] of [
    ['b', before.table],
    ['a', after.table],
  ] as const) {
    for (const f of table.functions) {
      const key = keyOf(f);
      const row = rows.get(key) ?? { functionName: f.functionName, url: f.url, line: f.line, b: 0, a: 0 };
      row[side] += f.selfUs;
      rows.set(key, row);
    }
  }
  const share = (us: number, total: number) => (total > 0 ? us / total : 0);
  const all: ProfileDiffRow[] = [...rows.values()].map((r) => {
    const beforeShare = share(r.b, before.table.totalUs);
    const afterShare = share(r.a, after.table.totalUs);
    return {
      functionName: r.functionName,
      url: r.url,
      line: r.line,
      beforeMs: ms(r.b),
      afterMs: ms(r.a),
      beforeShare: round6(beforeShare),
      afterShare: round6(afterShare),
      delta: round6(afterShare - beforeShare),
    };
  });
  all.sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta) || x.functionName.localeCompare(y.functionName));
  return {
    before: { id: before.id, at: before.at, totalMs: ms(before.table.totalUs) },
    after: { id: after.id, at: after.at, totalMs: ms(after.table.totalUs) },
    rows: all.slice(0, limit),
    omitted: Math.max(0, all.length - limit),
  };
}
