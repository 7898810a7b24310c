/** Command-line options of run.js. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export const USAGE = `Usage: node benchmarks/run.js [options]   (or: pnpm bench -- [options])

  --duration <s>       seconds per timed round (default 6)
  --warmup <s>         seconds of discarded warm-up per scenario (default 3)
  --connections <n>    concurrent connections (default 50)
  --rounds <n>         rounds, interleaved A B C A B C (default 3)
  --scenarios <list>   comma-separated names, globs (peer-*) or prefixes (stack-express);
                       the first one is the ratio baseline (default: all, bare Express first)
  --path <path>        override the timed request's path for every scenario
  --method <m>         override the timed request's method
  --body <json|@file>  override the timed request's body (implies POST unless --method)
  --header 'n: v'      add a header to the timed request (repeatable)
  --retries <n>        re-measure a round up to n times when other processes took more
                       than --max-foreign of the server's core (default 2)
  --max-foreign <f>    share of the server core other processes may take (default 0.1)
  --loader <name>      wrk | autocannon (default: wrk when installed)
  --rate <req/s>       a fixed request rate instead of saturation: each round sends
                       rate × duration requests, paced, from this process (pinned to the
                       load core); CPU µs/req then includes the server's per-second work
                       at that rate. Warm-up still saturates (wrk or autocannon)
  --quick              smoke test: every scenario starts, passes its checks and answers
                       a short burst without errors; no timing; exit 1 on any failure
  --require-all        also fail when a scenario is unavailable (perfstack export missing)
  --profile <dir>      run every server with node --cpu-prof into <dir> and print each
                       one's hot spots (self time share) after the run
  --json <file>        write every figure as JSON
  --markdown <file>    write the Markdown report to a file too
  --server-core <n>    core the servers are pinned to (default 1)
  --load-core <n>      core the load generator is pinned to (default 0)
  --list               list scenarios and exit
  --help               this text`;

const positiveNumber = (name, value, { integer = false } = {}) => {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0 || (integer && !Number.isInteger(number))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  }
  return number;
};

/** Parses argv into the run's settings. */
export function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rounds: { type: 'string' },
      scenarios: { type: 'string' },
      path: { type: 'string' },
      method: { type: 'string' },
      body: { type: 'string' },
      header: { type: 'string', multiple: true },
      loader: { type: 'string' },
      rate: { type: 'string' },
      retries: { type: 'string' },
      'max-foreign': { type: 'string' },
      quick: { type: 'boolean', default: false },
      'require-all': { type: 'boolean', default: false },
      json: { type: 'string' },
      profile: { type: 'string' },
      markdown: { type: 'string' },
      'server-core': { type: 'string' },
      'load-core': { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.path !== undefined && !values.path.startsWith('/')) throw new Error('--path must start with /');
  if (values.loader !== undefined && !['wrk', 'autocannon'].includes(values.loader)) {
    throw new Error(`--loader must be wrk or autocannon, got ${values.loader}`);
  }
  let body = values.body;
  if (body?.startsWith('@')) body = readFileSync(body.slice(1), 'utf8');
  const headers = {};
  for (const header of values.header ?? []) {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new Error(`--header must be "name: value", got ${header}`);
    headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
  }
  return {
    duration: values.duration ? positiveNumber('duration', values.duration) : 6,
    warmup: values.warmup ? positiveNumber('warmup', values.warmup) : 3,
    connections: values.connections ? positiveNumber('connections', values.connections, { integer: true }) : 50,
    rounds: values.rounds ? positiveNumber('rounds', values.rounds, { integer: true }) : 3,
    scenarios: values.scenarios,
    override: {
      path: values.path,
      method: values.method?.toUpperCase() ?? (body !== undefined ? 'POST' : undefined),
      body,
      headers,
    },
    loader: values.loader,
    rate: values.rate !== undefined ? positiveNumber('rate', values.rate) : undefined,
    retries: values.retries !== undefined ? Number(values.retries) : 2,
    maxForeign: values['max-foreign'] !== undefined ? Number(values['max-foreign']) : 0.1,
    quick: values.quick,
    requireAll: values['require-all'],
    json: values.json,
    profile: values.profile,
    markdown: values.markdown,
    serverCore: values['server-core'] !== undefined ? Number(values['server-core']) : 1,
    loadCore: values['load-core'] !== undefined ? Number(values['load-core']) : 0,
    list: values.list,
    help: values.help,
  };
}

/** The request a scenario's load generator sends, after the CLI overrides. */
export function timedRequest(scenario, override) {
  const base = scenario.request;
  const method = override.method ?? base.method;
  const body = override.body ?? (override.method && override.method !== base.method ? undefined : base.body);
  const headers = { ...(base.headers ?? {}), ...override.headers };
  if (body === undefined) delete headers['content-type'];
  return { method, path: override.path ?? base.path, body, headers };
}
