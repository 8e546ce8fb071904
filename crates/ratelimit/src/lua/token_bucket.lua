-- Token buckets kept as their theoretical arrival time (TAT), in µs of the Redis server clock
-- (`TIME`, read once per call), so gateway clocks do not matter.
--
-- For each key i: KEYS[i] the bucket; ARGV[3i-2] µs per token; ARGV[3i-1] capacity;
-- ARGV[3i] tokens asked for (1 for a check, B for a lease: granted as far as the bucket
-- holds). Returns {tokens granted, whole tokens left, µs until full, µs until one token} per
-- key, flattened. All values are integers below 2^53, exact in Lua's doubles. A key expires
-- when its bucket would be full, which is the state of a missing key.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = interval * tonumber(ARGV[3 * i - 1])
  local tat = tonumber(redis.call('GET', key))
  if not tat or tat < now then tat = now end
  local available = math.floor((burst - (tat - now)) / interval)
  local grant = math.min(tonumber(ARGV[3 * i]), available)
  local o = 4 * i - 4
  if grant > 0 then
    local next_tat = tat + interval * grant
    local ahead = next_tat - now
    redis.call('SET', key, string.format('%d', next_tat), 'PX', math.ceil(ahead / 1000))
    out[o + 1] = grant
    out[o + 2] = available - grant
    out[o + 3] = ahead
    out[o + 4] = 0
  else
    out[o + 1] = 0
    out[o + 2] = 0
    out[o + 3] = tat - now
    out[o + 4] = tat - now + interval - burst
  end
end
return out
