#!/usr/bin/env node
/**
 * perfstack benchmark harness.
 *
 * Every scenario is a small server in its own child process, pinned to one core
 * (`taskset -c 1`); the load generator (wrk when installed, else autocannon) runs on the
 * other core. Each server is first checked to answer correctly, then warmed up (the
 * warm-up is discarded), then timed in rounds interleaved A B C A B C so that drift on a
 * shared machine hits every scenario alike. Server CPU per request comes from
 * /proc/<pid>/stat (utime + stime around each timed round), peak RSS from VmHWM.
 *
 *   node benchmarks/run.js --quick                         # CI smoke test, correctness only
 *   node benchmarks/run.js --scenarios express-bare,peer-stack,stack-express
 *
 * See benchmarks/README.md for every option.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCli, timedRequest, USAGE } from './lib/cli.js';
import { request } from './lib/http-client.js';
import { hasWrk, runLoad } from './lib/load.js';
import { hotSpotsTable } from './lib/profile.js';
import { resolveRedis } from './lib/redis.js';
import { allScenarios, selectScenarios } from './lib/registry.js';
import { evaluateTargets, httpTable, microTable, summarize, summarizeMicro, targetsTable } from './lib/report.js';
import {
  childrenCpuMicros,
  coreBusyMicros,
  cpuMicros,
  hasTaskset,
  peakRss,
  pinSelf,
  reapedChildrenCpuMicros,
  runToCompletion,
  startServer,
} from './lib/server-process.js';

const log = (message) => process.stderr.write(`${message}\n`);

/**
 * Answers of a load run that were not what the scenario expects: non-2xx ones, or for a
 * refusal scenario (`expectStatus`, always ≥ 400) the ones that were not refused — both
 * loaders count every answer ≥ 400 (wrk) or non-2xx (autocannon), so a refusal scenario's
 * count must equal its requests.
 */
/** Runs a scenario's checks in order; the first failure throws, named after its check. */
async function runChecks(scenario, context) {
  for (const check of scenario.checks) {
    try {
      await check.run(context);
    } catch (error) {
      if (error.message.startsWith(check.name)) throw error;
      throw new Error(`${check.name}: ${error.message}`);
    }
  }
}

function unexpectedAnswers(scenario, result) {
  if (scenario.expectStatus === undefined) return result.non2xx;
  return Math.max(0, result.requests - result.non2xx);
}

async function main() {
  let options;
  try {
    options = parseCli(process.argv.slice(2));
  } catch (error) {
    log(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.list) {
    for (const s of allScenarios) process.stdout.write(`${s.name.padEnd(32)} ${s.group.padEnd(22)} ${s.title}\n`);
    return 0;
  }
  let scenarios;
  try {
    scenarios = selectScenarios(options.scenarios);
  } catch (error) {
    log(error.message);
    return 2;
  }

  const loader = options.loader ?? (options.quick ? 'autocannon' : hasWrk ? 'wrk' : 'autocannon');
  if (loader === 'wrk' && !hasWrk) {
    log('--loader wrk: wrk is not installed (apt-get install -y wrk)');
    return 2;
  }
  const pinning = !options.quick && hasTaskset && cpus().length >= 2;
  // --rate: the timed rounds are paced from this process; the warm-up still saturates.
  const roundLoader = options.rate !== undefined && !options.quick ? 'paced' : loader;
  if (pinning && (loader === 'autocannon' || roundLoader === 'paced')) pinSelf(options.loadCore);
  const serverCore = pinning ? options.serverCore : undefined;
  const loadCore = pinning ? options.loadCore : undefined;

  const workDir = mkdtempSync(join(tmpdir(), 'perfstack-bench-'));
  if (options.profile) {
    options.profile = resolve(options.profile);
    mkdirSync(options.profile, { recursive: true });
  }
  const rows = scenarios.map((scenario) => ({ scenario, status: 'pending', rounds: [] }));
  // Ctrl-C or a CI timeout: stop every server this run started before going.
  const interrupt = (signal) => {
    log(`\n${signal}: stopping the scenario servers`);
    Promise.all(rows.map((row) => row.server?.stop()))
      .catch(() => {})
      .finally(() => {
        rmSync(workDir, { recursive: true, force: true });
        process.exit(130);
      });
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const failures = [];
  const markFailed = (row, message) => {
    row.status = 'failed';
    row.error = message;
    failures.push(`${row.scenario.name}: ${message}`);
    log(`  ✗ ${row.scenario.name}: ${message}`);
  };

  let redis;
  if (scenarios.some((s) => s.redis)) {
    redis = await resolveRedis();
    if (redis.unavailable) log(`Redis: ${redis.unavailable}`);
    else log(`Redis: ${redis.source}, key prefix ${redis.prefix}`);
  }

  log(
    `perfstack bench: ${scenarios.length} scenarios, ${options.quick ? 'quick (correctness only)' : `${options.rounds} rounds × ${options.duration}s, warm-up ${options.warmup}s`}, ${options.connections} connections, loader ${loader}, ${pinning ? `server on core ${serverCore}, load on core ${loadCore}` : 'no pinning'}`,
  );

  const envFor = (row, index) => {
    const env = { ...row.scenario.env };
    if (row.scenario.logFile) {
      row.logFile = join(workDir, `${index}-${row.scenario.name}.log`);
      env.BENCH_LOG_FILE = row.logFile;
    }
    if (row.scenario.redis && redis && !redis.unavailable) {
      env.REDIS_URL = redis.url;
      env.BENCH_REDIS_PREFIX = `${redis.prefix}${row.scenario.name}:`;
    }
    return env;
  };

  /** Starts and checks one HTTP scenario; leaves row.server set when it is good to time. */
  const prepare = async (row, index) => {
    const { scenario } = row;
    if (scenario.redis && (!redis || redis.unavailable)) {
      row.status = 'unavailable';
      row.reason = redis?.unavailable ?? 'no Redis';
      return;
    }
    let server;
    try {
      const nodeArgs = options.profile
        ? ['--cpu-prof', `--cpu-prof-dir=${options.profile}`, `--cpu-prof-name=${scenario.name}.cpuprofile`]
        : [];
      if (options.profile) row.profileFile = join(options.profile, `${scenario.name}.cpuprofile`);
      // `unpinned`: a multi-process server (node:cluster) that needs every core.
      server = await startServer({
        file: scenario.file,
        env: envFor(row, index),
        core: scenario.unpinned ? undefined : serverCore,
        nodeArgs,
      });
    } catch (error) {
      markFailed(row, `did not start: ${error.message}`);
      return;
    }
    if (server.unavailable) {
      row.status = 'unavailable';
      row.reason = server.unavailable;
      log(`  - ${scenario.name}: unavailable (${server.unavailable})`);
      return;
    }
    row.server = server;
    try {
      // A stack that sheds load answers 503 OVERLOADED while its event loop was held up —
      // which starting several servers on a busy machine does: wait and check again.
      for (let attempt = 1; ; attempt++) {
        try {
          await runChecks(scenario, { url: server.url, logFile: row.logFile });
          break;
        } catch (error) {
          if (attempt >= 4 || !error.message.includes('urn:perfstack:problem:overloaded')) throw error;
          log(`  ${scenario.name}: answered 503 OVERLOADED (a busy machine), checking again`);
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      }
      row.request = timedRequest(scenario, options.override);
      const probe = await request(`${server.url}${row.request.path}`, row.request);
      const wanted = scenario.expectStatus;
      if (wanted === undefined ? probe.status < 200 || probe.status >= 300 : probe.status !== wanted) {
        throw new Error(
          `timed request ${row.request.method} ${row.request.path} answered ${probe.status}, expected ${wanted ?? '2xx'}`,
        );
      }
      row.status = 'ready';
      log(`  ✓ ${scenario.name} (${scenario.checks.length + 1} checks)`);
    } catch (error) {
      markFailed(row, `check failed: ${error.message}`);
      await server.stop();
      row.server = undefined;
    }
  };

  /** One timed run of a server, with its CPU time and the other load on its core. */
  const timedRound = async (row) => {
    const before = cpuMicros(row.server.pid);
    const coreBefore = coreBusyMicros(serverCore);
    // node:cluster (`unpinned`): the workers' CPU, and the load generator's (it shares the cores).
    const unpinned = row.scenario.unpinned === true;
    const workersBefore = unpinned ? childrenCpuMicros(row.server.pid) : undefined;
    const loadBefore = unpinned ? reapedChildrenCpuMicros() : undefined;
    const started = performance.now();
    const result = await runLoad(roundLoader, {
      url: row.server.url,
      request: row.request,
      connections: options.connections,
      seconds: options.duration,
      core: loadCore,
      rate: options.rate,
    });
    const elapsedMicros = (performance.now() - started) * 1000;
    const after = cpuMicros(row.server.pid);
    const coreAfter = coreBusyMicros(serverCore);
    result.cpuMicros = before === undefined || after === undefined ? undefined : after - before;
    if (unpinned) {
      const workersAfter = childrenCpuMicros(row.server.pid);
      const loadAfter = reapedChildrenCpuMicros();
      result.elapsedMicros = elapsedMicros;
      if (workersBefore !== undefined && workersAfter !== undefined)
        result.workersCpuMicros = workersAfter - workersBefore;
      if (loadBefore !== undefined && loadAfter !== undefined) result.loadCpuMicros = loadAfter - loadBefore;
    }
    if (result.cpuMicros !== undefined && coreBefore !== undefined && coreAfter !== undefined) {
      result.foreign = Math.max(0, coreAfter - coreBefore - result.cpuMicros) / elapsedMicros;
    }
    return result;
  };

  const runMicro = async (row, seconds, warmupSeconds) => {
    const result = await runToCompletion({
      file: row.scenario.file,
      env: {
        ...row.scenario.env,
        MICRO_DURATION_MS: String(Math.round(seconds * 1000)),
        MICRO_WARMUP_MS: String(Math.round(warmupSeconds * 1000)),
      },
      core: serverCore,
    });
    return result;
  };

  try {
    const httpRows = rows.filter((row) => row.scenario.kind === 'http');
    const microRows = rows.filter((row) => row.scenario.kind === 'micro');

    if (options.quick) {
      // Smoke test: a small pool, every server started, checked, given a short burst, stopped.
      let next = 0;
      const worker = async () => {
        while (next < httpRows.length) {
          const index = next++;
          const row = httpRows[index];
          await prepare(row, index);
          if (!row.server) continue;
          try {
            const burst = await runLoad('autocannon', {
              url: row.server.url,
              request: row.request,
              connections: 10,
              amount: 300,
            });
            const unexpected = unexpectedAnswers(row.scenario, burst);
            if (unexpected > 0 || burst.errors > 0) {
              markFailed(
                row,
                `burst of 300 requests: ${unexpected} not ${row.scenario.expectStatus ?? '2xx'}, ${burst.errors} errors`,
              );
            } else row.status = 'ok';
          } finally {
            await row.server.stop();
          }
        }
      };
      await Promise.all([worker(), worker(), worker()]);
      for (const row of microRows) {
        try {
          const result = await runMicro(row, 0.2, 0.05);
          if (result.unavailable) {
            row.status = 'unavailable';
            row.reason = result.unavailable;
            log(`  - ${row.scenario.name}: unavailable (${result.unavailable})`);
          } else {
            row.status = 'ok';
            log(`  ✓ ${row.scenario.name} (${Math.round(result.opsPerSecond)} ops/s, result checked)`);
          }
        } catch (error) {
          markFailed(row, error.message);
        }
      }
    } else {
      log('Starting and checking servers:');
      for (const [index, row] of httpRows.entries()) await prepare(row, index);
      const ready = httpRows.filter((row) => row.status === 'ready');

      log(`Warm-up (${options.warmup}s each, discarded):`);
      for (const row of ready) {
        try {
          await runLoad(loader, {
            url: row.server.url,
            request: row.request,
            connections: options.connections,
            seconds: options.warmup,
            core: loadCore,
          });
        } catch (error) {
          markFailed(row, `warm-up: ${error.message}`);
        }
      }
      for (let round = 1; round <= options.rounds; round++) {
        log(`Round ${round}/${options.rounds}:`);
        for (const row of ready) {
          if (row.status === 'failed') continue;
          // A round whose server core was busy with other processes (a shared machine)
          // is measured again, up to --retries times; the least disturbed attempt counts.
          let best;
          for (let attempt = 0; attempt <= options.retries; attempt++) {
            let result;
            try {
              result = await timedRound(row);
            } catch (error) {
              markFailed(row, `round ${round}: ${error.message}`);
              break;
            }
            result.retries = attempt;
            if (!best || (result.foreign ?? 0) < (best.foreign ?? 0)) best = result;
            if (result.foreign === undefined || result.foreign <= options.maxForeign) break;
            log(
              `  ${row.scenario.name}: ${(result.foreign * 100).toFixed(0)}% of the server core went to other processes, again`,
            );
          }
          if (!best || row.status === 'failed') continue;
          row.rounds.push(best);
          log(
            `  ${row.scenario.name.padEnd(30)} ${Math.round(best.rps).toString().padStart(7)} req/s  p99 ${best.p99.toFixed(2)} ms  ${best.cpuMicros === undefined ? '' : `${(best.cpuMicros / best.requests).toFixed(1)} µs/req`}${best.foreign === undefined ? '' : `  other load ${(best.foreign * 100).toFixed(0)}%`}${unexpectedAnswers(row.scenario, best) || best.errors ? `  ⚠ ${unexpectedAnswers(row.scenario, best)} not ${row.scenario.expectStatus ?? '2xx'}, ${best.errors} errors` : ''}`,
          );
        }
        for (const row of microRows) {
          if (row.status === 'failed' || row.status === 'unavailable') continue;
          try {
            const result = await runMicro(row, options.duration, round === 1 ? options.warmup : 1);
            if (result.unavailable) {
              row.status = 'unavailable';
              row.reason = result.unavailable;
              log(`  - ${row.scenario.name}: unavailable (${result.unavailable})`);
              continue;
            }
            row.rounds.push(result);
            log(`  ${row.scenario.name.padEnd(30)} ${Math.round(result.opsPerSecond)} ops/s`);
          } catch (error) {
            markFailed(row, error.message);
          }
        }
      }
      for (const row of ready) {
        if (row.status === 'failed' || row.rounds.length === 0) continue;
        row.peakRss = peakRss(row.server.pid);
        row.summary = summarize(row);
        row.status = 'ok';
      }
      for (const row of microRows) if (row.rounds.length > 0) row.summary = summarizeMicro(row);
    }
  } finally {
    await Promise.all(rows.map((row) => row.server?.stop()));
    if (redis && !redis.unavailable) await redis.close().catch((error) => log(`Redis cleanup: ${error.message}`));
    rmSync(workDir, { recursive: true, force: true });
  }

  const unavailable = rows.filter((row) => row.status === 'unavailable');
  let report = buildReport({ options, loader, pinning, rows, unavailable, failures });
  if (options.profile) {
    const tables = [];
    for (const row of rows) {
      if (!row.profileFile || !existsSync(row.profileFile)) continue;
      tables.push(hotSpotsTable(row.scenario.name, row.profileFile, 15));
    }
    if (tables.length > 0) report += `\n\n### CPU profiles (${options.profile})\n\n${tables.join('\n\n')}`;
  }
  process.stdout.write(`${report}\n`);
  if (options.markdown) writeFileSync(options.markdown, `${report}\n`);
  if (options.json) {
    const json = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loader,
      pinned: pinning,
      settings: {
        duration: options.duration,
        warmup: options.warmup,
        connections: options.connections,
        rate: options.rate,
        rounds: options.rounds,
        quick: options.quick,
        retries: options.retries,
        maxForeign: options.maxForeign,
        override: options.override,
      },
      scenarios: rows.map((row) => ({
        name: row.scenario.name,
        title: row.scenario.title,
        group: row.scenario.group,
        status: row.status,
        reason: row.reason ?? row.error,
        request: row.request,
        rounds: row.rounds,
        summary: row.summary,
      })),
      targets: options.quick ? [] : evaluateTargets(rows),
    };
    writeFileSync(options.json, `${JSON.stringify(json, null, 2)}\n`);
  }
  const passed = rows.filter((row) => row.status === 'ok').length;
  if (failures.length > 0)
    log(`\n${failures.length} scenario(s) FAILED:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
  if (unavailable.length > 0)
    log(
      `${unavailable.length} scenario(s) unavailable (skipped)${options.requireAll ? ': --require-all makes this a failure' : ''}`,
    );
  // The plain closing line CI reads.
  process.stdout.write(`\n${passed} passed, ${failures.length} failed, ${unavailable.length} skipped\n`);
  if (failures.length > 0) return 1;
  if (options.requireAll && unavailable.length > 0) return 1;
  return 0;
}

function buildReport({ options, loader, pinning, rows, unavailable, failures }) {
  const parts = [];
  const settings = options.quick
    ? `quick smoke test (correctness only), loader autocannon`
    : `${options.rounds} rounds × ${options.duration}s (warm-up ${options.warmup}s discarded), ${options.connections} connections, loader ${loader}${options.rate === undefined ? '' : ` (rounds paced at ${options.rate} req/s)`}, ${pinning ? `server pinned to core ${options.serverCore}, load to core ${options.loadCore}` : 'not pinned'}`;
  parts.push(`## perfstack benchmark — ${process.version}, ${cpus().length} cores`, '', settings, '');
  if (options.quick) {
    parts.push('| scenario | result |', '|---|---|');
    for (const row of rows) {
      const result =
        row.status === 'ok'
          ? 'ok'
          : row.status === 'unavailable'
            ? `unavailable: ${row.reason}`
            : `FAILED: ${row.error}`;
      parts.push(`| ${row.scenario.name} | ${result.replace(/\n/g, ' ').replace(/\|/g, '\\|')} |`);
    }
  } else {
    parts.push(httpTable(rows));
    const micro = microTable(rows);
    if (micro) parts.push('', micro);
    const targets = targetsTable(evaluateTargets(rows));
    if (targets) parts.push('', '### Targets (issue 8)', '', targets);
  }
  if (!options.quick && unavailable.length > 0) {
    parts.push('', 'Unavailable:', ...unavailable.map((row) => `- ${row.scenario.name}: ${row.reason}`));
  }
  if (!options.quick && failures.length > 0) {
    parts.push('', 'Failed:', ...failures.map((f) => `- ${f.replace(/\n/g, ' ')}`));
  }
  return parts.join('\n');
}

process.exitCode = await main();
