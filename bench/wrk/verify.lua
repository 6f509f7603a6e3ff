-- POST /api/api-keys/verify with one key (warm cache). Needs KEY and ADMIN_TOKEN.
wrk.method = "POST"
wrk.body = string.format('{"key": "%s", "permissions": ["READ_GRAPH"]}', os.getenv("KEY"))
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ADMIN_TOKEN")
