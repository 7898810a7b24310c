/**
 * The default client key: the client's IP address, grouped by IPv6 subnet.
 *
 * Where the address comes from:
 * - with the `trustProxy` option: from the socket and `X-Forwarded-For`, walking the chain
 *   from the nearest hop and stopping at the first untrusted one — Express's own rules,
 *   through the same library Express uses (proxy-addr). Works on Koa and plain `node:http`.
 * - without it: `req.ip` when the framework set one (Express, honouring its `trust proxy`
 *   setting; when that trusts nothing, the socket's address is read directly — the value
 *   Express's getter would compute with proxy-addr on every read), else the socket's
 *   address. `X-Forwarded-For` is then ignored, and a request that carries one is reported
 *   once (likely a proxy the limiter was not told about: every client would share the
 *   proxy's address).
 *
 * The address then goes through express-rate-limit's `ipKeyGenerator`: IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`) becomes the IPv4 address, and IPv6 addresses are grouped by their
 * `/ipv6Subnet` network (a client usually holds a whole /56 or /64 and could otherwise
 * rotate addresses freely) — except that an IPv4 address, plain or mapped as Node writes
 * it, is used as it is without the IPv6 parser (the same key, for a fraction of the cost:
 * the refusal path of a flood is mostly key generation otherwise). Nothing here throws on a
 * malformed header.
 */
import type { IncomingMessage } from 'node:http';
import { isIP, isIPv4 } from 'node:net';
import type { OnceLogger } from '@perfstack/core';
import { ipKeyGenerator } from 'express-rate-limit';
import proxyaddr from 'proxy-addr';

/** The `trustProxy` option: like Express's `trust proxy` setting. */
export type TrustProxy = boolean | number | string | readonly string[] | ((address: string, hop: number) => boolean);

/** A compiled trust function. */
export type TrustFunction = (address: string, hop: number) => boolean;

/** Which serve-time checks may log (express-rate-limit's `validate` names). */
export interface AddressChecks {
  readonly ip: boolean;
  readonly trustProxy: boolean;
  readonly xForwardedForHeader: boolean;
}

/**
 * Compiles `trustProxy` like Express does (`true`: every hop; a number: that many hops;
 * addresses, CIDRs or `loopback`/`linklocal`/`uniquelocal`: those proxies).
 *
 * @throws {TypeError} on an address or range proxy-addr cannot parse
 */
export function compileTrust(value: TrustProxy): TrustFunction {
  if (typeof value === 'function') return value;
  if (value === true) return () => true;
  if (value === false) return () => false;
  if (typeof value === 'number') return (_address, hop) => hop < value;
  const list = typeof value === 'string' ? value.split(',').map((v) => v.trim()) : [...value];
  return proxyaddr.compile(list);
}

/** How Node writes an IPv4 peer's address on an IPv6 socket (RFC 4291 §2.5.5.2). */
const MAPPED_PREFIX = '::ffff:';

type IpRequest = IncomingMessage & {
  ip?: unknown;
  app?: { get?: (name: string) => unknown };
};

/** Computes the default key of a request. */
export class ClientAddress {
  readonly #trust: TrustFunction | undefined;
  readonly #subnet: number | false;
  readonly #log: OnceLogger;
  #checkXff: boolean;
  #checkTrust: boolean;
  #checkIp: boolean;

  constructor(trust: TrustFunction | undefined, subnet: number | false, log: OnceLogger, checks: AddressChecks) {
    this.#trust = trust;
    this.#subnet = subnet;
    this.#log = log;
    this.#checkXff = checks.xForwardedForHeader;
    this.#checkTrust = checks.trustProxy;
    this.#checkIp = checks.ip;
  }

  /**
   * The client's address as the limiter sees it (before subnet grouping), or undefined.
   *
   * @param app the Express app whose `trust proxy` applies (default `req.app`); the stack's
   *   early refusals pass it, as they run before Express has set `req.app`
   */
  address(req: IncomingMessage, app: IpRequest['app'] = (req as IpRequest).app): string | undefined {
    if (this.#trust !== undefined) {
      let forwarded: string | undefined;
      try {
        forwarded = proxyaddr(req, this.#trust);
      } catch {
        forwarded = undefined;
      }
      return this.#valid(forwarded, req);
    }
    const setting = typeof app?.get === 'function' ? app.get('trust proxy') : undefined;
    if (
      (setting === false || setting === 0 || setting === undefined) &&
      app !== undefined &&
      !Object.hasOwn(req, 'ip')
    ) {
      // Express with nothing trusted (its default): `req.ip` is a getter that would run
      // proxy-addr on every read only to return the socket's address; read that directly.
      const address = req.socket?.remoteAddress;
      if (typeof address === 'string') {
        if (this.#checkXff || this.#checkTrust) this.#checkExpress(req, setting);
        return address;
      }
    }
    let ip = (req as IpRequest).ip;
    if (ip === undefined && setting && app !== undefined && (req as IpRequest).app === undefined) {
      // Before Express has run (the stack's early refusals): what its `req.ip` getter computes.
      const trust = (app.get as (name: string) => unknown)('trust proxy fn');
      if (typeof trust === 'function') {
        try {
          ip = proxyaddr(req, trust as TrustFunction);
        } catch {
          ip = undefined;
        }
      }
    }
    if (typeof ip === 'string') {
      if (this.#checkXff || this.#checkTrust) this.#checkExpress(req, setting);
      return this.#valid(ip, req);
    }
    if (this.#checkXff && req.headers['x-forwarded-for'] !== undefined) {
      this.#checkXff = false;
      this.#log.warnOnce(
        'ERR_ERL_UNEXPECTED_X_FORWARDED_FOR',
        'The X-Forwarded-For header is set but the trustProxy option is not: it is ignored and every client behind that proxy shares its address. Set trustProxy to the proxies you run.',
      );
    }
    return req.socket?.remoteAddress;
  }

  /** The default key: the address, IPv4-mapped addresses unmapped and IPv6 grouped by subnet. */
  key(req: IncomingMessage, app?: IpRequest['app']): string {
    const address = app === undefined ? this.address(req) : this.address(req, app);
    if (address === undefined) {
      if (this.#checkIp) {
        this.#checkIp = false;
        this.#log.warnOnce(
          'ERR_ERL_UNDEFINED_IP_ADDRESS',
          'A client address is unknown (connection already gone?); such requests share the key "unknown".',
        );
      }
      return 'unknown';
    }
    if (address.indexOf(':') === -1) return address;
    // An IPv4 peer of a dual-stack server (`::ffff:1.2.3.4`, as Node writes it): the IPv4
    // address, what ipKeyGenerator returns too, without parsing an IPv6 address per request.
    if (address.startsWith(MAPPED_PREFIX)) {
      const v4 = address.slice(MAPPED_PREFIX.length);
      if (isIPv4(v4)) return v4;
    }
    try {
      return ipKeyGenerator(address, this.#subnet);
    } catch {
      return address;
    }
  }

  /**
   * An address from a header chain is only used when it is an IP address; otherwise
   * (a malformed `X-Forwarded-For` from a trusted hop) the socket's address is used.
   */
  #valid(address: string | undefined, req: IncomingMessage): string | undefined {
    if (address !== undefined && isIP(address) !== 0) return address;
    if (this.#checkIp) {
      this.#checkIp = false;
      this.#log.warnOnce(
        'ERR_ERL_INVALID_IP_ADDRESS',
        `The forwarded client address ${JSON.stringify(String(address).slice(0, 64))} is not an IP address; the socket address is used instead. Check the proxies in trustProxy.`,
      );
    }
    return req.socket?.remoteAddress;
  }

  #checkExpress(req: IncomingMessage, setting: unknown): void {
    if (this.#checkTrust && setting === true) {
      this.#checkTrust = false;
      this.#log.warnOnce(
        'ERR_ERL_PERMISSIVE_TRUST_PROXY',
        "The Express 'trust proxy' setting is true, which lets any client choose its own address with X-Forwarded-For and bypass IP-based limits. Trust only your proxies (a hop count or their addresses).",
      );
    }
    if (this.#checkXff && !setting && req.headers['x-forwarded-for'] !== undefined) {
      this.#checkXff = false;
      this.#log.warnOnce(
        'ERR_ERL_UNEXPECTED_X_FORWARDED_FOR',
        "The X-Forwarded-For header is set but the Express 'trust proxy' setting is false: every client behind that proxy shares its address. Set 'trust proxy' (or the trustProxy option) to the proxies you run.",
      );
    }
  }
}
