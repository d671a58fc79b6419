
local index = tonumber(ARGV[4])
local staged = redis.call('LLEN', KEYS[3])
if index ~= 0 and staged ~= index then
  return redis.error_reply('PARTS ' .. staged .. ' staged, this is part ' .. index)
end
if index == 0 then
  redis.call('DEL', KEYS[3])
end
redis.call('RPUSH', KEYS[3], ARGV[5])
