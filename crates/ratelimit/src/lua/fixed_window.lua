-- Counts hits in fixed windows that start at each key's first hit.
--
-- For each key i: KEYS[i] the counter; ARGV[2i-1] the window in ms; ARGV[2i] the cost.
-- Returns {count after the hit, ms until the window ends} per key, flattened.
-- INCRBY and PEXPIRE run atomically in the script: no read-then-write race between gateways,
-- and a counter can never be left without an expiry. A key listed twice is counted twice, in
-- order, as two calls would.
local out = {}
for i, key in ipairs(KEYS) do
  local window = ARGV[2 * i - 1]
  local count = redis.call('INCRBY', key, ARGV[2 * i])
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  out[2 * i - 1] = count
  out[2 * i] = ttl
end
return out
