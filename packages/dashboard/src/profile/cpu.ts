/**
 * CPU profiles: recorded through V8's sampling profiler (`Profiler.*` over `node:inspector`)
 * and summarised for the page — the top functions by self time and a call tree for the
 * flame graph. The recorded `Profiler.Profile` is returned untouched, so the `.cpuprofile`
 * file loads in Chrome DevTools (Performance panel) and speedscope.
 */
import type { Profiler, Runtime } from 'node:inspector';
import { wait, withSession } from './session.js';

/** A `.cpuprofile`: exactly V8's `Profiler.Profile`. */
export type CpuProfile = Profiler.Profile;

/** One function in the top list. Times in milliseconds. */
export interface CpuFunction {
  readonly functionName: string;
  readonly url: string;
  /** 1-based line (V8 reports 0-based; editors and DevTools show 1-based). */
  readonly line: number;
  readonly selfMs: number;
  /** Self time over the profile's sampled time, 0..1. */
  readonly selfShare: number;
  /** Inclusive time: samples with this function anywhere on the stack (recursion counted once). */
  readonly totalMs: number;
}

/** One frame of the flame graph (children merged by function, small frames pruned). */
export interface FlameNode {
  /** Function name (`(anonymous)` when V8 has none). */
  readonly n: string;
  /** Script URL. */
  readonly u: string;
  /** 1-based line. */
  readonly l: number;
  /** Self time, ms. */
  readonly s: number;
  /** Total time, ms. */
  readonly t: number;
  readonly c: readonly FlameNode[];
}

/** What `?format=summary` returns and the page shows. */
export interface CpuProfileSummary {
  readonly kind: 'cpu';
  /** When recording ended, ms since epoch. */
  readonly at: number;
  /** Requested length in seconds. */
  readonly seconds: number;
  /** Sampled time in ms (end minus start). */
  readonly durationMs: number;
  readonly samplingIntervalUs: number;
  readonly sampleCount: number;
  readonly nodeCount: number;
  /** True when the recording stopped early (client gone, dashboard closed). */
  readonly aborted: boolean;
  readonly top: readonly CpuFunction[];
  readonly flame: FlameNode;
}

/** Settings of one recording. */
export interface CpuRecording {
  readonly seconds: number;
  readonly samplingIntervalUs: number;
  /** Ends the recording early. */
  readonly signal: AbortSignal;
}

/**
 * Records a CPU profile of this process for `seconds` (less if `signal` aborts).
 *
 * @returns the profile as V8 produced it
 */
export function recordCpuProfile(recording: CpuRecording): Promise<CpuProfile> {
  return withSession(async (session) => {
    await session.post('Profiler.enable');
    try {
      // The interval must be set before start (V8 ignores it while a profile runs).
      await session.post('Profiler.setSamplingInterval', { interval: recording.samplingIntervalUs });
      await session.post('Profiler.start');
      await wait(recording.seconds * 1000, recording.signal);
      const { profile } = await session.post('Profiler.stop');
      return profile;
    } finally {
      await session.post('Profiler.disable').catch(() => undefined);
    }
  });
}

const keyOf = (frame: Runtime.CallFrame): string => `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}`;

/**
 * The time each node was on top of the stack, in µs: a sample lasts until the next one
 * (the last until `endTime`), as DevTools counts it.
 */
export function selfTimes(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    const next = i + 1 < samples.length ? at + (deltas[i + 1] ?? 0) : profile.endTime;
    const id = samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + Math.max(0, next - at));
  }
  return self;
}

interface TreeNode {
  readonly frame: Runtime.CallFrame;
  self: number;
  total: number;
  readonly children: TreeNode[];
}

/** Rebuilds the call tree with self and total µs per node. */
function callTree(profile: CpuProfile, self: Map<number, number>): TreeNode | undefined {
  const byId = new Map<number, Profiler.ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const root = profile.nodes[0];
  if (root === undefined) return undefined;
  // Iterative post-order walk: deep recursion in the profiled app must not overflow ours.
  const build = (node: Profiler.ProfileNode): TreeNode => ({
    frame: node.callFrame,
    self: self.get(node.id) ?? 0,
    total: 0,
    children: [],
  });
  const top = build(root);
  const stack: Array<{ node: Profiler.ProfileNode; tree: TreeNode; next: number }> = [
    { node: root, tree: top, next: 0 },
  ];
  while (stack.length > 0) {
    const entry = stack[stack.length - 1]!;
    const childIds = entry.node.children ?? [];
    if (entry.next < childIds.length) {
      const child = byId.get(childIds[entry.next++] as number);
      if (child === undefined) continue;
      const tree = build(child);
      entry.tree.children.push(tree);
      stack.push({ node: child, tree, next: 0 });
      continue;
    }
    stack.pop();
    entry.tree.total = entry.tree.self + entry.tree.children.reduce((sum, c) => sum + c.total, 0);
  }
  return top;
}

/** Aggregates self and total time by function (name + url + line). */
function functionTimes(root: TreeNode): Map<string, { frame: Runtime.CallFrame; self: number; total: number }> {
  const out = new Map<string, { frame: Runtime.CallFrame; self: number; total: number }>();
  const onStack = new Map<string, number>();
  const stack: Array<{ tree: TreeNode; next: number }> = [{ tree: root, next: -1 }];
  while (stack.length > 0) {
    const entry = stack[stack.length - 1]!;
    const key = keyOf(entry.tree.frame);
    if (entry.next === -1) {
      entry.next = 0;
      const fn = out.get(key) ?? { frame: entry.tree.frame, self: 0, total: 0 };
      fn.self += entry.tree.self;
      // Recursion: only the outermost frame of a function adds its total.
      if ((onStack.get(key) ?? 0) === 0) fn.total += entry.tree.total;
      out.set(key, fn);
      onStack.set(key, (onStack.get(key) ?? 0) + 1);
    }
    if (entry.next < entry.tree.children.length) {
      stack.push({ tree: entry.tree.children[entry.next++]!, next: -1 });
      continue;
    }
    stack.pop();
    onStack.set(key, (onStack.get(key) ?? 1) - 1);
  }
  return out;
}

const ms = (us: number) => Math.round(us) / 1000;
const nameOf = (frame: Runtime.CallFrame) => frame.functionName || '(anonymous)';

/** The flame graph: siblings merged by function, frames under `minUs` dropped, depth and size bounded. */
function flameOf(root: TreeNode, minUs: number, maxDepth: number, budget: { left: number }): FlameNode {
  const merged = new Map<string, TreeNode>();
  for (const child of root.children) {
    if (child.total < minUs) continue;
    const key = keyOf(child.frame);
    const seen = merged.get(key);
    if (seen === undefined) merged.set(key, { ...child, children: [...child.children] });
    else {
      seen.self += child.self;
      seen.total += child.total;
      seen.children.push(...child.children);
    }
  }
  const children: FlameNode[] = [];
  if (maxDepth > 0) {
    const sorted = [...merged.values()].sort((a, b) => b.total - a.total);
    for (const child of sorted) {
      if (budget.left <= 0) break;
      budget.left--;
      children.push(flameOf(child, minUs, maxDepth - 1, budget));
    }
  }
  return {
    n: nameOf(root.frame),
    u: root.frame.url,
    l: root.frame.lineNumber + 1,
    s: ms(root.self),
    t: ms(root.total),
    c: children,
  };
}

/** Options of {@link summarizeCpuProfile}. */
export interface SummaryOptions {
  /** Functions in the top list. @default 30 */
  readonly top?: number;
  /** Smallest frame kept in the flame graph, as a share of the total. @default 0.002 */
  readonly minFlameShare?: number;
  /** Deepest flame-graph level. @default 128 */
  readonly maxDepth?: number;
  /** Most flame-graph frames. @default 4000 */
  readonly maxFrames?: number;
}

/**
 * Summarises a profile: top functions by self time (sample durations summed per node, then
 * per function name + url + line) and the pruned call tree for the flame graph.
 */
export function summarizeCpuProfile(
  profile: CpuProfile,
  meta: {
    readonly at: number;
    readonly seconds: number;
    readonly samplingIntervalUs: number;
    readonly aborted: boolean;
  },
  options: SummaryOptions = {},
): CpuProfileSummary {
  const self = selfTimes(profile);
  const tree = callTree(profile, self);
  const sampled = Math.max(0, profile.endTime - profile.startTime);
  const totalSelf = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const top: CpuFunction[] = [];
  let flame: FlameNode = { n: '(root)', u: '', l: 0, s: 0, t: 0, c: [] };
  if (tree !== undefined) {
    const functions = [...functionTimes(tree).values()]
      .filter((f) => f.self > 0)
      .sort((a, b) => b.self - a.self)
      .slice(0, options.top ?? 30);
    for (const f of functions) {
      top.push({
        functionName: nameOf(f.frame),
        url: f.frame.url,
        line: f.frame.lineNumber + 1,
        selfMs: ms(f.self),
        selfShare: Math.round((f.self / totalSelf) * 10_000) / 10_000,
        totalMs: ms(f.total),
      });
    }
    flame = flameOf(tree, tree.total * (options.minFlameShare ?? 0.002), options.maxDepth ?? 128, {
      left: options.maxFrames ?? 4000,
    });
  }
  return {
    kind: 'cpu',
    at: meta.at,
    seconds: meta.seconds,
    durationMs: ms(sampled),
    samplingIntervalUs: meta.samplingIntervalUs,
    sampleCount: profile.samples?.length ?? 0,
    nodeCount: profile.nodes.length,
    aborted: meta.aborted,
    top,
    flame,
  };
}
