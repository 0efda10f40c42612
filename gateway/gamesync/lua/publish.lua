-- GameSync publish script (DESIGN section 3; contract: docs/publishing.md).
-- Stores the envelope as the game's latest and fans it out, atomically, only when its
-- version is newer than the stored one.
--
-- KEYS[1]  latest key     game:{ID}:latest
-- KEYS[2]  channel        game:{ID}  (declared as a key so a cluster client routes the call to
--                          the slot that owns both names; the hash tag puts them in one slot)
-- ARGV[1]  envelope JSON  stored and published byte for byte
-- ARGV[2]  version        the envelope's "version", as a decimal integer
-- ARGV[3]  TTL seconds    of the latest key
-- ARGV[4]  "PUBLISH" (standalone Redis, the default when absent) or "SPUBLISH" (Redis Cluster)
-- Returns 1 when stored and published, 0 when the version is not newer (nothing changes).
local version = tonumber(ARGV[2])
if version == nil then
  return redis.error_reply("ERR gamesync publish: version must be an integer")
end
local ttl = tonumber(ARGV[3])
if ttl == nil or ttl < 1 then
  return redis.error_reply("ERR gamesync publish: ttl must be a positive integer")
end
local command = ARGV[4] or "PUBLISH"
if command ~= "PUBLISH" and command ~= "SPUBLISH" then
  return redis.error_reply("ERR gamesync publish: command must be PUBLISH or SPUBLISH")
end
local stored = redis.call("GET", KEYS[1])
if stored then
  local ok, doc = pcall(cjson.decode, stored)
  -- An unreadable stored value never blocks a publish: it is replaced.
  if ok and type(doc) == "table" and type(doc["version"]) == "number"
      and version <= doc["version"] then
    return 0
  end
end
redis.call("SET", KEYS[1], ARGV[1], "EX", ttl)
redis.call(command, KEYS[2], ARGV[1])
return 1
