/**
 * RFC 9111 §4.1 secondary keys: one entry per variant; request field values normalised
 * before keying (list whitespace, combined lines, field-name case); `Vary: *` never
 * stored; many variants of one URL.
 */
import { describe } from 'vitest';
import { type Case, conformance, type Origin } from './harness.js';

const byLanguage: Origin = (req, res, call) => {
  res.setHeader('Cache-Control', 'max-age=60');
  res.setHeader('Vary', 'Accept-Language');
  res.send(`lang=${req.headers['accept-language'] ?? '-'} #${call}`);
};

const cases: Case[] = [
  {
    name: '§4.1 two values, two entries; each served to its own value only',
    origin: byLanguage,
    steps: [
      { headers: { 'accept-language': 'en' }, expect: { status: 200, cache: 'MISS', body: 'lang=en #1' } },
      { headers: { 'accept-language': 'fr' }, expect: { status: 200, cache: 'MISS', body: 'lang=fr #2' } },
      { headers: { 'accept-language': 'en' }, expect: { status: 200, cache: 'HIT', body: 'lang=en #1' } },
      { headers: { 'accept-language': 'fr' }, expect: { status: 200, cache: 'HIT', body: 'lang=fr #2' } },
      { expect: { status: 200, cache: 'MISS', body: 'lang=- #3' } },
    ],
  },
  {
    name: '§4.1 whitespace around list commas and parameters is normalised',
    origin: byLanguage,
    steps: [
      { headers: { 'accept-language': 'en-US, fr;q=0.8' }, expect: { status: 200, cache: 'MISS', calls: 1 } },
      { headers: { 'accept-language': 'en-US,fr;q=0.8' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
      { headers: { 'accept-language': '  en-US ,  fr ; q=0.8 ' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
      { headers: { 'accept-language': 'en-US, fr;q=0.9' }, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§4.1 Vary field names are case-insensitive',
    origin: (req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=60');
      res.setHeader('Vary', call === 1 ? 'X-Tenant' : 'x-tenant');
      res.send(`tenant=${req.headers['x-tenant']} #${call}`);
    },
    steps: [
      { headers: { 'X-Tenant': 'a' }, expect: { status: 200, cache: 'MISS', body: 'tenant=a #1' } },
      { headers: { 'x-tenant': 'a' }, expect: { status: 200, cache: 'HIT', body: 'tenant=a #1' } },
      { headers: { 'x-tenant': 'b' }, expect: { status: 200, cache: 'MISS', body: 'tenant=b #2' } },
    ],
  },
  {
    name: '§4.1 an absent header matches only absent, not an empty value',
    origin: byLanguage,
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'lang=- #1' } },
      { expect: { status: 200, cache: 'HIT', body: 'lang=- #1' } },
      { headers: { 'accept-language': '' }, expect: { status: 200, cache: 'MISS', body: 'lang= #2' } },
      { headers: { 'accept-language': '' }, expect: { status: 200, cache: 'HIT', body: 'lang= #2' } },
      { headers: { 'accept-language': 'de' }, expect: { status: 200, cache: 'MISS', body: 'lang=de #3' } },
    ],
  },
  {
    name: '§4.1 twenty variants of one URL, each a hit for its own value',
    origin: byLanguage,
    steps: [
      ...Array.from({ length: 20 }, (_, i) => ({
        headers: { 'accept-language': `l${i}` },
        expect: { status: 200, cache: 'MISS', body: `lang=l${i} #${i + 1}` },
      })),
      ...Array.from({ length: 20 }, (_, i) => ({
        headers: { 'accept-language': `l${19 - i}` },
        expect: { status: 200, cache: 'HIT', body: `lang=l${19 - i} #${20 - i}`, calls: 20 },
      })),
    ],
  },
  {
    name: '§4.1 Vary: * is never stored',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=60');
      res.setHeader('Vary', 'Accept, *');
      res.send(`#${call}`);
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: '#1' } },
      { expect: { status: 200, cache: 'MISS', body: '#2' } },
    ],
  },
];

describe('RFC 9111 §4.1 Vary', () => {
  conformance(cases);
});
