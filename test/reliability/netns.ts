/**
 * A real remote client for security tests: a second network namespace joined to this one by
 * a veth pair with private addresses (10.213.X.1 here, 10.213.X.2 there). Requests are sent
 * by a node process run with `ip netns exec`, so the server sees a genuine non-loopback TCP
 * peer. When namespaces are not available (not root, no `ip`), falls back to a non-loopback
 * address of this host's own interfaces (the peer is then that address: still not loopback).
 */
import { execFileSync, spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';

/** What a remote request returns. */
export interface RemoteResponse {
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly error?: string;
}

/** A remote client. */
export interface Remote {
  /** `netns` (a real second host) or `interface` (fallback: another local address). */
  readonly kind: 'netns' | 'interface';
  /** The address the server must listen on to be reached by the client. */
  readonly serverAddress: string;
  /** The client's own address, as the server will see it. */
  readonly clientAddress: string;
  send(
    requests: readonly { url: string; method?: string; headers?: Record<string, string>; body?: string }[],
  ): Promise<RemoteResponse[]>;
  close(): void;
}

const client = fileURLToPath(new URL('./fixtures/remote-client.mjs', import.meta.url));

function run(args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

function tryNetns(): Remote | undefined {
  const id = `${process.pid % 10000}${Math.floor(Math.random() * 100)}`;
  const ns = `psrel${id}`;
  const host = `psrh${id}`;
  const peer = `psrp${id}`;
  const octet = 1 + Math.floor(Math.random() * 250);
  const serverAddress = `10.213.${octet}.1`;
  const clientAddress = `10.213.${octet}.2`;
  try {
    run(['netns', 'add', ns]);
  } catch {
    return undefined;
  }
  const close = () => {
    try {
      run(['link', 'del', host]);
    } catch {}
    try {
      run(['netns', 'del', ns]);
    } catch {}
  };
  try {
    run(['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    run(['link', 'set', peer, 'netns', ns]);
    run(['addr', 'add', `${serverAddress}/30`, 'dev', host]);
    run(['link', 'set', host, 'up']);
    run(['netns', 'exec', ns, 'ip', 'addr', 'add', `${clientAddress}/30`, 'dev', peer]);
    run(['netns', 'exec', ns, 'ip', 'link', 'set', peer, 'up']);
    run(['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  } catch {
    close();
    return undefined;
  }
  return {
    kind: 'netns',
    serverAddress,
    clientAddress,
    send: (requests) => exec(['ip', 'netns', 'exec', ns, process.execPath, client, JSON.stringify(requests)]),
    close,
  };
}

function exec(argv: string[]): Promise<RemoteResponse[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`remote client exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as RemoteResponse[]);
    });
  });
}

/** Makes the best remote client this machine allows. */
export function remoteClient(): Remote {
  const netns = tryNetns();
  if (netns) return netns;
  const address = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!address) throw new Error('no network namespace and no non-loopback interface: cannot test a remote client');
  return {
    kind: 'interface',
    serverAddress: address,
    clientAddress: address,
    send: (requests) => exec([process.execPath, client, JSON.stringify(requests)]),
    close: () => {},
  };
}
