/**
 * Heap on demand: a full heap snapshot streamed chunk by chunk to the response, and a
 * sampling heap profile (V8's allocation sampler) summarised as top allocation sites.
 * Both are refused when memory is too tight to take them safely ({@link checkHeadroom}).
 */

import type { HeapProfiler, Runtime } from 'node:inspector';
import { freemem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { type MemoryFigures, MemoryTightError, type ProfileKind } from '../errors.js';
import { wait, withSession } from './session.js';

/** What the memory check reads; injectable for tests. */
export interface MemoryReading {
  readonly heapUsedBytes: number;
  readonly heapLimitBytes: number;
  /** Memory the process may still take from the system. */
  readonly availableBytes: number;
}

/** Reads the heap and the memory left to the process (the container limit counts when there is one). */
export function readMemory(): MemoryReading {
  const heap = getHeapStatistics();
  let available = freemem();
  // Node 20: the cgroup limit, when the process runs in a container that sets one (0 otherwise).
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.() ?? 0;
  if (constrained > 0) available = Math.min(available, Math.max(0, constrained - process.memoryUsage.rss()));
  return { heapUsedBytes: heap.used_heap_size, heapLimitBytes: heap.heap_size_limit, availableBytes: available };
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const pct = (share: number) => `${Math.round(share * 100)}%`;

/**
 * Refuses an operation that could push the process out of memory.
 *
 * The estimate: a heap snapshot builds V8's snapshot graph outside the JS heap and writes
 * its JSON (a few times the graph) through the socket, about `snapshotCostFactor` × the heap in use;
 * a sampling profile keeps one record per sampled allocation (estimated at 2% of the heap).
 * Refused when heap used + estimate exceeds `maxHeapShare` of the heap limit, or when the
 * estimate exceeds the memory the system (or the container) has left.
 *
 * @throws {MemoryTightError} 503 `OVERLOADED`, `reason: 'memory-tight'`
 */
export function checkHeadroom(
  kind: ProfileKind,
  limits: { readonly maxHeapShare: number; readonly snapshotCostFactor: number },
  reading: MemoryReading = readMemory(),
): MemoryFigures {
  const factor = kind === 'heap-snapshot' ? limits.snapshotCostFactor : 0.02;
  const estimated = Math.round(reading.heapUsedBytes * factor);
  const figures: MemoryFigures = {
    heapUsedBytes: reading.heapUsedBytes,
    heapLimitBytes: reading.heapLimitBytes,
    estimatedBytes: estimated,
    availableBytes: reading.availableBytes,
    maxHeapShare: limits.maxHeapShare,
  };
  const share = (reading.heapUsedBytes + estimated) / reading.heapLimitBytes;
  if (share > limits.maxHeapShare) {
    throw new MemoryTightError(
      kind,
      `heap used ${mb(reading.heapUsedBytes)} + estimated cost ${mb(estimated)} is ${pct(share)} of the ` +
        `${mb(reading.heapLimitBytes)} heap limit, over profiling.maxHeapShare (${pct(limits.maxHeapShare)}). ` +
        'Try again when the heap is smaller, or raise maxHeapShare if the machine has the memory.',
      figures,
    );
  }
  if (estimated > reading.availableBytes) {
    throw new MemoryTightError(
      kind,
      `the estimated cost ${mb(estimated)} exceeds the ${mb(reading.availableBytes)} of memory the system has left.`,
      figures,
    );
  }
  return figures;
}

/**
 * Takes a heap snapshot and hands each chunk to `write` as V8 produces it (never joined into
 * one string). V8 serialises synchronously, so the chunks reach the socket while the
 * snapshot is written; what the kernel cannot take at once waits in the socket's queue.
 *
 * @returns how many bytes were written
 */
export function streamHeapSnapshot(write: (chunk: string) => void): Promise<number> {
  return withSession(async (session) => {
    let bytes = 0;
    const onChunk = (message: { params: HeapProfiler.AddHeapSnapshotChunkEventDataType }) => {
      bytes += Buffer.byteLength(message.params.chunk);
      write(message.params.chunk);
    };
    session.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
    try {
      await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      session.off('HeapProfiler.addHeapSnapshotChunk', onChunk);
    }
    return bytes;
  });
}

/** One allocation site in a sampling heap profile. */
export interface AllocationSite {
  readonly functionName: string;
  readonly url: string;
  /** 1-based line. */
  readonly line: number;
  /** Sampled bytes allocated here and still live when the profile was read. */
  readonly selfBytes: number;
  /** Share of all sampled bytes, 0..1. */
  readonly share: number;
}

/** What `POST /api/profile/heap-sampling` returns (unless `format=heapprofile`). */
export interface HeapSamplingSummary {
  readonly kind: 'heap-sampling';
  readonly at: number;
  readonly seconds: number;
  readonly samplingIntervalBytes: number;
  readonly totalBytes: number;
  readonly aborted: boolean;
  readonly top: readonly AllocationSite[];
}

/** A `.heapprofile` (loads in Chrome DevTools' Memory panel). */
export type SamplingHeapProfile = HeapProfiler.SamplingHeapProfile;

/** Runs V8's sampling heap profiler for `seconds`. */
export function recordHeapSampling(recording: {
  readonly seconds: number;
  readonly samplingIntervalBytes: number;
  readonly signal: AbortSignal;
}): Promise<SamplingHeapProfile> {
  return withSession(async (session) => {
    await session.post('HeapProfiler.enable');
    try {
      await session.post('HeapProfiler.startSampling', { samplingInterval: recording.samplingIntervalBytes });
      try {
        await wait(recording.seconds * 1000, recording.signal);
        const { profile } = await session.post('HeapProfiler.getSamplingProfile');
        return profile;
      } finally {
        await session.post('HeapProfiler.stopSampling').catch(() => undefined);
      }
    } finally {
      await session.post('HeapProfiler.disable').catch(() => undefined);
    }
  });
}

/** Top allocation sites of a sampling profile, by self bytes, aggregated by function + url + line. */
export function summarizeHeapSampling(
  profile: SamplingHeapProfile,
  meta: {
    readonly at: number;
    readonly seconds: number;
    readonly samplingIntervalBytes: number;
    readonly aborted: boolean;
  },
  top = 30,
): HeapSamplingSummary {
  const sites = new Map<string, { frame: Runtime.CallFrame; bytes: number }>();
  let total = 0;
  const stack: HeapProfiler.SamplingHeapProfileNode[] = [profile.head];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.selfSize > 0) {
      const f = node.callFrame;
      const key = `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}`;
      const site = sites.get(key) ?? { frame: f, bytes: 0 };
      site.bytes += node.selfSize;
      sites.set(key, site);
      total += node.selfSize;
    }
    for (const child of node.children) stack.push(child);
  }
  const list = [...sites.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, top)
    .map((s) => ({
      functionName: s.frame.functionName || '(anonymous)',
      url: s.frame.url,
      line: s.frame.lineNumber + 1,
      selfBytes: s.bytes,
      share: total > 0 ? Math.round((s.bytes / total) * 10_000) / 10_000 : 0,
    }));
  return { kind: 'heap-sampling', ...meta, totalBytes: total, top: list };
}
