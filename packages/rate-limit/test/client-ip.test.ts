/**
 * The default key's IPv4 fast path: an IPv4 peer, plain or IPv4-mapped as Node writes it on
 * a dual-stack socket, gets exactly the key express-rate-limit's ipKeyGenerator gives it,
 * without going through the IPv6 parser; every other address still does.
 */
import type { IncomingMessage } from 'node:http';
import { OnceLogger } from '@perfstack/core';
import { ipKeyGenerator } from 'express-rate-limit';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientAddress } from '../src/client-ip.js';

const checks = { ip: false, trustProxy: false, xForwardedForHeader: false };
const keyOf = (address: string, subnet: number | false = 56) =>
  new ClientAddress(undefined, subnet, new OnceLogger(undefined), checks).key({
    headers: {},
    socket: { remoteAddress: address },
  } as unknown as IncomingMessage);

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));

describe('the default key of a socket address', () => {
  it('is ipKeyGenerator’s key for every IPv4 address, plain or mapped', () => {
    fc.assert(
      fc.property(ipv4, fc.constantFrom<number | false>(56, 64, false), (address, subnet) => {
        expect(keyOf(address, subnet)).toBe(ipKeyGenerator(address, subnet));
        expect(keyOf(`::ffff:${address}`, subnet)).toBe(ipKeyGenerator(`::ffff:${address}`, subnet));
        expect(keyOf(`::ffff:${address}`, subnet)).toBe(address);
      }),
    );
  });

  it.each([
    ['a mapped address in hex', '::ffff:a00:1'],
    ['an upper-case mapped prefix', '::FFFF:10.0.0.1'],
    ['a mapped prefix with a bad IPv4 part', '::ffff:10.0.0.256'],
    ['an IPv6 address, grouped by /56', '2001:db8:1234:5678::1'],
    ['loopback', '::1'],
  ])('is ipKeyGenerator’s key for %s', (_name, address) => {
    expect(keyOf(address)).toBe(ipKeyGenerator(address, 56));
  });
});
