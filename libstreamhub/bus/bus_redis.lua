-- libstreamhub/bus/bus_redis.lua: a channel's numbering, history and
-- ordered publication, atomic in Redis (bus_redis.c says why).
--
-- KEYS[1]  the channel's hash (also its PUBLISH channel); fields:
--          e epoch, s last offset handed out, p last offset published,
--          l history lost up to (entries exist only above it), b base
--          (the epoch's first offset is b + 1), n entries in history,
--          o<N> event N ("ts\ntype\ndata"; ts may be followed by " " and
--          the producer's W3C traceparent), w<N> event N released and
--          waiting for earlier claims ("" gives N up), c<N> claim on N
--          (its deadline, ms).
-- KEYS[2]  the set of channel hashes with claims outstanding.
-- ARGV     op, epoch if made now, floor ("" = unknown: NOEPOCH), history
--          size, TTL seconds, claim timeout ms, then the op's own.
local k, stalled = KEYS[1], KEYS[2]
local op = ARGV[1]
local hmax, ttl, ctime = tonumber(ARGV[4]), tonumber(ARGV[5]),
    tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function d(n) return string.format('%d', n) end

-- The channel's state; made with a new epoch when absent (never made,
-- expired, evicted, flushed: history lost), unless the floor is unknown.
local function meta(make)
    local m = redis.call('HMGET', k, 'e', 's', 'p', 'l', 'b', 'n')
    if m[1] then
        return { m[1], tonumber(m[2]), tonumber(m[3]), tonumber(m[4]),
                 tonumber(m[5]), tonumber(m[6]) }
    end
    if not make or ARGV[3] == '' then return nil end
    local f = tonumber(ARGV[3])
    redis.call('HSET', k, 'e', ARGV[2], 's', d(f), 'p', d(f), 'l', d(f),
               'b', d(f), 'n', 0)
    redis.call('EXPIRE', k, ttl)
    return { ARGV[2], f, f, f, f, 0 }
end

local function save(m)
    redis.call('HSET', k, 's', d(m[2]), 'p', d(m[3]), 'l', d(m[4]),
               'n', m[6])
    redis.call('EXPIRE', k, ttl)
end

-- Event o enters the history (trimmed to hmax from the oldest) and goes
-- to every node.
local function emit(m, o, rec)
    redis.call('HSET', k, 'o' .. d(o), rec)
    m[6] = m[6] + 1
    while m[6] > hmax and m[4] < o do
        m[4] = m[4] + 1
        m[6] = m[6] - redis.call('HDEL', k, 'o' .. d(m[4]))
    end
    redis.call('PUBLISH', k, m[1] .. '\n' .. d(o) .. '\n' .. rec)
end

-- Publish in offset order: everything released after p, up to the first
-- claim still out and not past its deadline (a node that died holding it).
local function advance(m)
    while m[3] < m[2] do
        local n = m[3] + 1
        local w = redis.call('HGET', k, 'w' .. d(n))
        if w then
            redis.call('HDEL', k, 'w' .. d(n))
            if w ~= '' then emit(m, n, w) end
        else
            local c = redis.call('HGET', k, 'c' .. d(n))
            if c and tonumber(c) > now then break end
            if c then redis.call('HDEL', k, 'c' .. d(n)) end
        end
        m[3] = n
    end
    if m[3] < m[2] then
        redis.call('SADD', stalled, k)
    else
        redis.call('SREM', stalled, k)
    end
end

if op == 'pub' or op == 'claim' then
    -- pub: ARGV[7] ts, [8] type, [9] head, [10] tail, [11] '1' to splice
    local m = meta(true)
    if not m then return { 'NOEPOCH' } end
    local o = m[2] + 1
    m[2] = o
    if op == 'pub' then
        local data = ARGV[9]
        if ARGV[11] == '1' then data = data .. d(o) .. ARGV[10] end
        if m[3] == o - 1 then
            m[3] = o
            emit(m, o, ARGV[7] .. '\n' .. ARGV[8] .. '\n' .. data)
        else
            redis.call('HSET', k, 'w' .. d(o),
                       ARGV[7] .. '\n' .. ARGV[8] .. '\n' .. data)
            advance(m)
        end
    else
        redis.call('HSET', k, 'c' .. d(o), d(now + ctime))
        redis.call('SADD', stalled, k)
    end
    save(m)
    return { m[1], d(o) }
elseif op == 'rel' then
    -- ARGV[7] epoch, [8] offset, [9] the event ("" gives it up)
    local m = meta(false)
    if not m or m[1] ~= ARGV[7] then return { 'LOST' } end
    if redis.call('HDEL', k, 'c' .. ARGV[8]) == 0 then return { 'LATE' } end
    redis.call('HSET', k, 'w' .. ARGV[8], ARGV[9])
    advance(m)
    save(m)
    return { 'OK' }
elseif op == 'pos' or op == 'hist' then
    -- hist: ARGV[7] epoch, [8] offset ('' = all the history)
    local m = meta(true)
    if not m then return { 'NOEPOCH' } end
    if m[3] < m[2] then
        advance(m)
        save(m)
    end
    local r = { m[1], d(m[3]), d(m[4]), d(m[5]) }
    if op == 'hist' and ARGV[7] == m[1] then
        local from = m[4]
        if ARGV[8] ~= '' then
            from = tonumber(ARGV[8])
            -- 0 is "before the first event": the base, if nothing is lost
            if from == 0 and m[4] == m[5] then from = m[5] end
        end
        if from >= m[4] and from <= m[3] then
            r[5] = 'R'
            for o = from + 1, m[3] do
                local v = redis.call('HGET', k, 'o' .. d(o))
                if v then
                    r[#r + 1] = d(o)
                    r[#r + 1] = v
                end
            end
        end
    end
    return r
elseif op == 'rw' then
    -- ARGV[7] epoch, then offset, event pairs
    if redis.call('HGET', k, 'e') ~= ARGV[7] then return 0 end
    local n = 0
    for i = 8, #ARGV - 1, 2 do
        if redis.call('HEXISTS', k, 'o' .. ARGV[i]) == 1 then
            redis.call('HSET', k, 'o' .. ARGV[i], ARGV[i + 1])
            n = n + 1
        end
    end
    return n
elseif op == 'tick' then
    -- claims of dead nodes: publish what waits behind them
    local ks = redis.call('SRANDMEMBER', stalled, 64)
    for _, kk in ipairs(ks) do
        k = kk
        local m = meta(false)
        if m then
            advance(m)
            save(m)
        else
            redis.call('SREM', stalled, kk)
        end
    end
    return #ks
end
return redis.error_reply('bus: unknown op')
