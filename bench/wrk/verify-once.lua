-- POST /api/api-keys/verify for each of a slice of keys once, then stop (one
-- thread). Environment: KEYS_FILE (one key per line), KEYS_FIRST and KEYS_COUNT (the
-- slice), ADMIN_TOKEN (the service token). Used with -t1 -c1 and a long -d: wrk exits
-- when the last answer has come back (its own summary is not printed; wrk would
-- otherwise wait for the end of -d).

function init(args)
  local first = tonumber(os.getenv("KEYS_FIRST") or "0")
  local count = tonumber(os.getenv("KEYS_COUNT"))
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("ADMIN_TOKEN"),
  }
  requests = {}
  local i = 0
  for line in io.lines(os.getenv("KEYS_FILE")) do
    if i >= first + count then break end
    if i >= first then
      requests[#requests + 1] = wrk.format("POST", "/api/api-keys/verify", headers,
        '{"key":"' .. line .. '","permissions":["READ_GRAPH"]}')
    end
    i = i + 1
  end
  sent, answered = 0, 0
end

function request()
  sent = sent + 1
  -- Past the slice (only while the last answers are on their way): the first key
  -- again, already cached.
  return requests[math.min(sent, #requests)]
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= #requests then
    io.stderr:write(string.format("answered %d\n", answered))
    os.exit(0)
  end
end
