
local last = redis.call('GET', KEYS[3]) or '0'
if last ~= ARGV[4] then
  return redis.error_reply('OUT_OF_ORDER ' .. last)
end
-- The log entry goes first: it is the only write that can be refused (an id not above the
-- stream's top, which means last_seq and the stream disagree), and if it is, nothing has
-- been written yet.
local added = redis.pcall('XADD', KEYS[4], ARGV[5], 'b', ARGV[7])
if type(added) == 'table' and added.err then
  return redis.error_reply('CORRUPT log stream refused id ' .. ARGV[5] .. ' with last_seq '
    .. last .. ': ' .. added.err)
end
for i = 8, #ARGV do
  redis.call('XADD', KEYS[5], '*', 'o', ARGV[i])
end
redis.call('SET', KEYS[3], ARGV[6])
