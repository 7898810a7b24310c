/** Hand-built `.cpuprofile`s with known self times, for the continuous-profiling tests. */
import type { CpuProfile } from '@perfstack/dashboard';

/**
 * A profile whose functions have exactly the given self times (ms): one sample per function,
 * each lasting until the next (the last until `endTime`), as the summary counts them.
 */
export function syntheticProfile(functions: ReadonlyArray<readonly [string, number]>): CpuProfile {
  const nodes: CpuProfile['nodes'] = [
    {
      id: 1,
      callFrame: { functionName: '(root)', scriptId: '0', url: '', lineNumber: -1, columnNumber: -1 },
      hitCount: 0,
      children: functions.map((_, i) => i + 2),
    },
  ];
  for (const [i, [name]] of functions.entries()) {
    nodes.push({
      id: i + 2,
      callFrame: { functionName: name, scriptId: '1', url: 'file:///srv/app.js', lineNumber: 10 * i, columnNumber: 0 },
      hitCount: 1,
    });
  }
  const us = functions.map(([, ms]) => ms * 1000);
  const startTime = 1_000_000;
  return {
    nodes,
    startTime,
    endTime: startTime + us.reduce((a, b) => a + b, 0),
    samples: functions.map((_, i) => i + 2),
    timeDeltas: [0, ...us.slice(0, -1)],
  };
}
