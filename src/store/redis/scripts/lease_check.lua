
local relet = false
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then
  local epoch = redis.call('GET', KEYS[2])
  if cur == false and epoch == ARGV[2] then
    relet = true
  else
    return redis.error_reply('FENCED lease=' .. (cur or 'none') .. ' epoch=' .. (epoch or 'none')
      .. ' ours=' .. ARGV[1])
  end
end
