-- Grants up to the asked number of hits in fixed windows, never beyond the limit (leases).
--
-- For each key i: KEYS[i] the counter; ARGV[3i-2] the window in ms; ARGV[3i-1] the hits
-- asked for; ARGV[3i] the limit. Returns {hits granted, count after, ms until the window
-- ends} per key, flattened. A refused ask counts nothing.
local out = {}
for i, key in ipairs(KEYS) do
  local window = ARGV[3 * i - 2]
  local count = tonumber(redis.call('GET', key) or '0')
  local grant = math.min(tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]) - count)
  if grant > 0 then
    count = redis.call('INCRBY', key, grant)
  else
    grant = 0
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    if count > 0 then redis.call('PEXPIRE', key, window) end
    ttl = tonumber(window)
  end
  out[3 * i - 2] = grant
  out[3 * i - 1] = count
  out[3 * i] = ttl
end
return out
