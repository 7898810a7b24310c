/**
 * The Lua script of the Redis store: every limit of one request decided and written in
 * one atomic step, one round trip (`EVALSHA`). Its arithmetic is `algorithms.ts` line for
 * line (see there for the state layout and the semantics); keep the two in step.
 *
 * KEYS: one hash per limit (fields `a`, `b`, `c` = s0, s1, s2 and `x` = block end). All
 * keys of one call carry the same `{hash tag}`, so the script touches one Redis Cluster slot.
 * ARGV: `now` (ms; negative: use Redis `TIME`, one clock for the whole fleet), `cost`,
 * `dry` (`1`: read only), then `algorithm, limit, windowMs, blockMs` per limit.
 * Reply: the decision array of `store/types.ts`, integers only.
 */
import { createHash } from 'node:crypto';

export const DECIDE_SCRIPT = `
local now = tonumber(ARGV[1])
if now < 0 then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[2])
local dry = ARGV[3] == '1'
local n = #KEYS
local S = {}
local mask = 0
local retry = 0
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local alg, l, w, bd = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local h = redis.call('HMGET', KEYS[i], 'a', 'b', 'c', 'x')
  local p0, p1, p2, px = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0
  local r = 0
  if px > now then
    r = px - now
  elseif alg == 0 then
    if p1 <= 0 or now >= p0 + w then p0 = now; p1 = 0 end
    if p1 + cost > l then r = p0 + w - now end
  elseif alg == 1 then
    local ws = now - (now % w)
    if p0 ~= ws then
      if p0 == ws - w then p2 = p1 else p2 = 0 end
      p1 = 0
    end
    p0 = ws
    local est = (p2 * (w - (now - ws))) / w + p1
    if est + cost > l then
      if cost > l then r = ws + 2 * w - now
      elseif p1 + cost <= l then r = math.ceil(ws + w * (1 - (l - p1 - cost) / p2) - now)
      else r = math.ceil(ws + w + w * (1 - (l - cost) / p1) - now) end
    end
  else
    local el = now - p1
    if el < 0 then el = 0 end
    p0 = p0 - el * l
    if p0 < 0 then p0 = 0 end
    p1 = now
    if p0 + cost * w > l * w then r = math.ceil((p0 + cost * w - l * w) / l) end
  end
  local blocked = false
  if r > 0 and px <= now and bd > 0 then
    px = now + bd
    blocked = true
    if bd > r then r = bd end
  end
  if r ~= 0 and r < 1 then r = 1 end
  if r > 0 then
    mask = mask + 2 ^ (i - 1)
    if r > retry then retry = r end
  end
  S[i] = { alg, l, w, p0, p1, p2, px, blocked }
end
local out = { mask, retry }
for i = 1, n do
  local s = S[i]
  local alg, l, w, p0, p1, p2, px = s[1], s[2], s[3], s[4], s[5], s[6], s[7]
  local write = false
  if not dry then
    if mask == 0 then
      write = true
      if alg == 2 then p0 = p0 + cost * w else p1 = p1 + cost end
    elseif s[8] then
      write = true
    end
  end
  local remaining, reset
  if alg == 0 then
    remaining = l - p1
    if p1 > 0 then reset = p0 + w - now else reset = w end
  elseif alg == 1 then
    remaining = math.floor(l - ((p2 * (w - (now - p0))) / w + p1))
    if p1 > 0 then reset = p0 + 2 * w - now elseif p2 > 0 then reset = p0 + w - now else reset = 0 end
  else
    remaining = math.floor((l * w - p0) / w)
    reset = math.ceil(p0 / l)
  end
  if px > now then
    remaining = 0
    if px - now > reset then reset = px - now end
  end
  if remaining < 0 then remaining = 0 end
  if reset < 0 then reset = 0 end
  if write then
    redis.call('HSET', KEYS[i], 'a', p0, 'b', p1, 'c', p2, 'x', px)
    local ttl = reset
    if ttl < 1 then ttl = 1 end
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
  out[#out + 1] = remaining
  out[#out + 1] = reset
end
return out
`;

/** SHA1 of {@link DECIDE_SCRIPT}, for `EVALSHA`. */
export const DECIDE_SHA = createHash('sha1').update(DECIDE_SCRIPT).digest('hex');
