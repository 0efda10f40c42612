-- GameSync publish script (DESIGN section 3; contract: docs/publishing.md).
-- Stores the envelope as the game's latest and fans it out, atomically, only when its
-- version is newer than the stored one.
--
-- KEYS[1]  latest key     game:{ID}:latest   the envelope JSON, byte for byte
-- KEYS[2]  channel        game:{ID}  (declared as a key so a cluster client routes the call to
--                          the slot that owns every name here; the hash tag puts them in one slot)
-- KEYS[3]  version key    game:{ID}:version  the stored envelope's version, a decimal string
-- ARGV[1]  envelope JSON  stored and published byte for byte
-- ARGV[2]  version        the envelope's "version", a decimal integer in [0, 2^63-1]
-- ARGV[3]  TTL seconds    of the latest and version keys
-- ARGV[4]  "PUBLISH" (standalone Redis, the default when absent) or "SPUBLISH" (Redis Cluster)
-- Returns 1 when stored and published, 0 when the version is not newer (nothing changes).
--
-- Versions are compared as canonical decimal strings (a longer one is larger, then byte by
-- byte), never as Lua numbers: those are doubles, and above 2^53 two versions can look equal.
local MAX_VERSION = "9223372036854775807"

-- True when decimal string a is greater than b. Bytes, not `>`: Lua compares strings by locale.
local function greater(a, b)
  if #a ~= #b then
    return #a > #b
  end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x > y
    end
  end
  return false
end

local version = ARGV[2]
if type(version) ~= "string" or not string.match(version, "^%d+$") then
  return redis.error_reply("ERR gamesync publish: version must be a non-negative integer")
end
version = string.match(version, "^0*(%d+)$") -- one canonical spelling: no leading zeros
if greater(version, MAX_VERSION) then
  return redis.error_reply("ERR gamesync publish: version must be at most 2^63-1")
end
local ttl = tonumber(ARGV[3])
if ttl == nil or ttl < 1 then
  return redis.error_reply("ERR gamesync publish: ttl must be a positive integer")
end
local command = ARGV[4] or "PUBLISH"
if command ~= "PUBLISH" and command ~= "SPUBLISH" then
  return redis.error_reply("ERR gamesync publish: command must be PUBLISH or SPUBLISH")
end

-- The latest key says whether anything is stored; the version key says which version it is.
if redis.call("EXISTS", KEYS[1]) == 1 then
  local stored = redis.call("GET", KEYS[3])
  if not stored then
    -- Stored by an older script, which kept no version key: read it from the envelope once.
    -- An unreadable stored value never blocks a publish: it is replaced.
    local ok, doc = pcall(cjson.decode, redis.call("GET", KEYS[1]))
    local old = ok and type(doc) == "table" and doc["version"]
    if type(old) == "number" and old >= 0 then
      stored = string.format("%.0f", old)
    end
  end
  if stored and not greater(version, stored) then
    return 0
  end
end
redis.call("SET", KEYS[1], ARGV[1], "EX", ttl)
redis.call("SET", KEYS[3], version, "EX", ttl)
redis.call(command, KEYS[2], ARGV[1])
return 1
