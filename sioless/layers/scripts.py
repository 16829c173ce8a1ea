"""The Lua scripts of sioless' Redis layer, and how they are run (by SHA, taught to Redis once)."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from redis.exceptions import NoScriptError

#: KEYS: two for each change, in turn: a message's channel key and wake-up list (a durable
#: channel's; else unused), or a group's key twice; ARGV: now, the expiry, the group expiry, then
#: four for each change: what it is ("send", "durable": a message; "add", "discard": a group
#: membership) and its arguments (a message's score, body and channel capacity; a membership's
#: score and channel). Makes the changes in order; answers 1 for each one made, 0 for each message
#: refused (its channel was full). A plain channel's expired messages are dropped, and its expiry
#: renewed, once; a durable channel's messages never expire (its capacity bounds it, and its
#: senders wait: flow control), so a worker away for any time loses none.
SEND_SCRIPT = """
local now, expiry, group_expiry = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local seen, durable, made = {}, {}, {}
for i = 1, #KEYS / 2 do
    local key, wake, at = KEYS[2 * i - 1], KEYS[2 * i], 4 + 4 * (i - 1)
    local change = ARGV[at]
    made[i] = 1
    if change == 'add' then
        redis.call('ZADD', key, ARGV[at + 1], ARGV[at + 2])
        redis.call('EXPIRE', key, group_expiry)
    elseif change == 'discard' then
        redis.call('ZREM', key, ARGV[at + 2])
    else
        if change == 'durable' then
            durable[key] = true
        elseif not seen[key] then
            seen[key] = true
            redis.call('ZREMRANGEBYSCORE', key, 0, math.floor(now) - expiry)
        end
        if redis.call('ZCARD', key) >= tonumber(ARGV[at + 3]) then
            made[i] = 0
        else
            redis.call('ZADD', key, ARGV[at + 1], ARGV[at + 2])
            if change == 'durable' then
                redis.call('RPUSH', wake, 1)
                redis.call('EXPIRE', wake, expiry)
            end
        end
    end
end
for key in pairs(seen) do
    redis.call('EXPIRE', key, expiry)
end
for key in pairs(durable) do
    redis.call('PERSIST', key)
end
return made
"""
#: KEYS: a durable channel, its in-flight set, its wake-up list; ARGV: the most messages to take.
#: Moves the first messages into the in-flight set, where each stays until acknowledged (for as
#: long as it takes: the set never expires). Clears the wake-ups once it took the last message
#: (fewer than asked for: the next message sent wakes the receiver up again).
TAKE_SCRIPT = """
local taken = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
if #taken / 2 < tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[3])
end
if #taken == 0 then
    return taken
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #taken / 2 - 1)
for i = 1, #taken, 2 do
    redis.call('ZADD', KEYS[2], taken[i + 1], taken[i])
end
return taken
"""
#: KEYS: a durable channel, its in-flight set. Puts every message taken and not acknowledged back
#: where it was (its score is when it was sent: ahead of the later ones).
RESTORE_SCRIPT = """
local taken = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #taken, 2 do
    redis.call('ZADD', KEYS[1], taken[i + 1], taken[i])
end
redis.call('DEL', KEYS[2])
return #taken / 2
"""
#: KEYS: the channel, its in-flight backup, the backup's batch token; ARGV: the batch size, the token
#: of the last batch handed over, a token for this batch, the expiry. The backup is cleared if it
#: holds the batch handed over, else put back into the channel (its receive was cancelled).
RECEIVE_SCRIPT = """
local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
    for i = #backed_up, 1, -2 do
        redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
    end
end
redis.call('DEL', KEYS[2])
local batch = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
if #batch > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #batch / 2 - 1)
    for i = 1, #batch, 2 do
        redis.call('ZADD', KEYS[2], batch[i + 1], batch[i])
    end
    redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
return batch
"""
#: KEYS: a group; ARGV: when memberships added before it have expired. Drops those; answers, for
#: each Redis channel holding members (a server process's, or a plain one), its name and its
#: members, space-separated (one reply element a process, not one a member: far less to parse).
GROUP_MEMBERS_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, tonumber(ARGV[1]))
local names, members_of = {}, {}
for _, channel in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local bang = string.find(channel, '!', 1, true)
    local name = bang and string.sub(channel, 1, bang) or channel
    if not members_of[name] then
        members_of[name] = {}
        names[#names + 1] = name
    end
    table.insert(members_of[name], channel)
end
local grouped = {}
for _, name in ipairs(names) do
    grouped[#grouped + 1] = name
    grouped[#grouped + 1] = table.concat(members_of[name], ' ')
end
return grouped
"""


@functools.cache
def _script_sha(script: str) -> str:
    """The SHA Redis knows a Lua script by."""
    return hashlib.sha1(script.encode()).hexdigest()


async def run_script(connection: Any, script: str, keys: list[str] | list[bytes], *arguments: Any) -> Any:
    """Run a Lua script by its SHA; the first time since Redis started, Redis learns it."""
    try:
        return await connection.evalsha(_script_sha(script), len(keys), *keys, *arguments)
    except NoScriptError:
        return await connection.eval(script, len(keys), *keys, *arguments)


async def run_script_after_wait(
    connection: Any, wait_for: str, timeout: float, script: str, keys: list[str], *arguments: Any
) -> Any:
    """Wait for an entry of the list ``wait_for`` (up to ``timeout`` seconds), then run a Lua
    script, in one round trip: Redis runs the script the moment the wait returns."""
    async with connection.pipeline(transaction=False) as pipeline:
        pipeline.blpop([wait_for], timeout=timeout)
        pipeline.evalsha(_script_sha(script), len(keys), *keys, *arguments)
        try:
            return (await pipeline.execute())[1]
        except NoScriptError:  # the wait is over: the script runs by itself
            return await run_script(connection, script, keys, *arguments)
