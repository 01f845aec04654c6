package redis

// The Lua scripts. Each touches keys of one hash slot only (a document's
// keys share a hash tag; the token scripts take one key), so each runs
// atomically on a single server and on a Redis Cluster alike. Versions are
// compared as the decimal strings Go wrote (see formatVersion): Lua numbers
// are doubles and print big ones as 1e+15.
//
// A script that fails halfway (only possible if a key has the wrong type,
// i.e. the data is already corrupt) keeps the writes it made before the
// failure: Redis scripts are isolated, not transactional. Every script
// therefore checks everything it can before its first write.

// appendLua is Append's contract:
//
//	KEYS  head, ops, clients, snap, snaps, recent  (streamKeys.list), doc
//	ARGV  1 id       random id of this Append call
//	      2 expect   head the first record follows ("" if no records)
//	      3 newhead  version of the last record ("" if no records)
//	      4 snapv    snapshot version ("" if no snapshot)
//	      5 snap     snapshot json
//	      6 nrec, 7 ncli
//	      then nrec pairs (version, record json), then ncli pairs (src, ClientSeq json)
//
// Returns {"notfound"} if the stream has no head; {"adopted", head} if
// there are records and the document is adopted; {"conflict", head} if
// expect is not the head, or the snapshot is not at the head the append
// leaves; {"done", head} if an append with this id was already applied (a
// retry after a lost reply); else writes the records, the client seqs, the
// head and the snapshot (newest and history), remembers the id, and returns
// {"ok", head}. An append without records or snapshot writes nothing.
const appendLua = `
local head = redis.call('GET', KEYS[1])
if not head then return {'notfound'} end
local expect, newhead, snapv = ARGV[2], ARGV[3], ARGV[4]
if expect ~= '' then
  local doc = redis.call('GET', KEYS[7])
  if doc and cjson.decode(doc)['adopted'] == true then return {'adopted', head} end
end
if expect == '' then newhead = head end
if (expect ~= '' and head ~= expect) or (snapv ~= '' and snapv ~= newhead) then
  local recent = redis.call('LRANGE', KEYS[6], 0, -1)
  for i = 1, #recent do
    if recent[i] == ARGV[1] then return {'done', head} end
  end
  return {'conflict', head}
end
local nrec, ncli = tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
for _ = 1, nrec do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, ncli do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if nrec > 0 then redis.call('SET', KEYS[1], newhead) end
if snapv ~= '' then
  redis.call('SET', KEYS[4], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], snapv, snapv)
  redis.call('ZADD', KEYS[5], snapv, ARGV[5])
end
if nrec > 0 or snapv ~= '' then
  redis.call('LPUSH', KEYS[6], ARGV[1])
  redis.call('LTRIM', KEYS[6], 0, 15)
end
return {'ok', newhead}
`

// adoptDocLua stores the adopted document's metadata only while both of
// its streams are at the versions the chair adopted.
//
//	KEYS  doc, draft head, approved head
//	ARGV  doc json, draft version, approved version
//
// Returns "notfound" without the doc or a head, "conflict" if a head moved,
// else "ok".
const adoptDocLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'notfound' end
local d, a = redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])
if not d or not a then return 'notfound' end
if d ~= ARGV[2] or a ~= ARGV[3] then return 'conflict' end
redis.call('SET', KEYS[1], ARGV[1])
return 'ok'
`

// createDocLua creates a document's metadata and both streams at version 0.
//
//	KEYS  doc, then head, snap, snaps of the draft, then of the approved stream
//	ARGV  doc json, version-0 snapshot json
//
// Returns "exists" if the doc exists, "orphan" if a stream exists without
// it (left by a failed earlier create; never overwritten), else "ok".
const createDocLua = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[5]) == 1 then return 'orphan' end
redis.call('SET', KEYS[1], ARGV[1])
for _, b in ipairs({2, 5}) do
  redis.call('SET', KEYS[b], '0')
  redis.call('SET', KEYS[b + 1], ARGV[2])
  redis.call('ZADD', KEYS[b + 2], 0, ARGV[2])
end
return 'ok'
`

// updateDocLua replaces KEYS[1] with ARGV[1] if it exists; returns 1 if it did.
const updateDocLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`

// swapTokenLua sets field ARGV[1] of hash KEYS[1] to ARGV[2] and returns
// the value it replaces (nil if none).
const swapTokenLua = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
`

// takeTokenLua deletes field ARGV[1] of hash KEYS[1] and returns its value
// (nil if none).
const takeTokenLua = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then redis.call('HDEL', KEYS[1], ARGV[1]) end
return old
`

// dropPtrLua deletes KEYS[1] if its value is ARGV[1]: a token pointer is
// removed only by the token it points to.
const dropPtrLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`
