-- POST /api/api-keys/verify, cycling through many distinct keys.
--
-- Environment: KEYS_FILE (one key per line), KEYS_FIRST and KEYS_COUNT (the slice of
-- the file to use), WRK_THREADS (wrk's -t), ADMIN_TOKEN (the service token), and
-- CLIENT_IP (optional: the end client's address, sent as `client_ip`).
-- Each wrk thread takes every WRK_THREADS-th key of the slice, so with KEYS_COUNT at
-- least the number of requests sent, every key is presented once (a cold cache);
-- with a small slice the keys repeat (a warm cache). Requests are built before the
-- run starts, so the load generator spends its time sending, not formatting.

local index = 0
function setup(thread)
  thread:set("thread_index", index)
  index = index + 1
end

function init(args)
  local first = tonumber(os.getenv("KEYS_FIRST") or "0")
  local count = tonumber(os.getenv("KEYS_COUNT"))
  local threads = tonumber(os.getenv("WRK_THREADS") or "1")
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("ADMIN_TOKEN"),
  }
  local client = os.getenv("CLIENT_IP")
  local extra = (client and client ~= "") and (',"client_ip":"' .. client .. '"') or ""
  requests = {}
  local i = 0
  for line in io.lines(os.getenv("KEYS_FILE")) do
    if i >= first + count then break end
    if i >= first and (i - first) % threads == thread_index then
      requests[#requests + 1] = wrk.format("POST", "/api/api-keys/verify", headers,
        '{"key":"' .. line .. '","permissions":["READ_GRAPH"]' .. extra .. '}')
    end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end
