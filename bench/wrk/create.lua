-- POST /api/api-keys, cycling through the user tokens in the file TOKENS_FILE (one per
-- line), so the per-user key cap is not reached.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end
local n = 0
request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/api/api-keys", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, '{"name": "load", "permissions": ["READ_GRAPH"]}')
end
