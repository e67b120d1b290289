-- wrk script of tests/bench/serve_vs_python:
--   wrk -s tests/bench/serve_vs_python.lua ... http://HOST:PORT -- QUERY [RESPONSES]
-- Every request is GET /generate?QUERY&seed=N with a new seed (distinct across threads), so no
-- two requests ask for the same clip. With RESPONSES > 0 each thread stops after that many
-- responses. At the end one JSON line goes to stdout, after wrk's own summary: what the script
-- counted, wrk's summary and latency percentiles in microseconds.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   query = args[1] or "blend=cn"
   limit = tonumber(args[2] or "0") or 0
   sent = 0
   responses = 0
   ok = 0
end

function request()
   sent = sent + 1
   return wrk.format("GET", "/generate?" .. query .. "&seed=" .. (id * 1000000 + sent))
end

function response(status, headers, body)
   responses = responses + 1
   if status == 200 then
      ok = ok + 1
   end
   if limit > 0 and responses >= limit then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local counted, succeeded = 0, 0
   for _, thread in ipairs(threads) do
      counted = counted + (thread:get("responses") or 0)
      succeeded = succeeded + (thread:get("ok") or 0)
   end
   local percentiles = {}
   for _, p in ipairs({ 50, 90, 99, 100 }) do
      table.insert(percentiles, string.format('"%d": %d', p, latency:percentile(p)))
   end
   local e = summary.errors
   io.write(string.format(
      '{"duration_us": %d, "requests": %d, "responses": %d, "ok": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, "percentiles": {%s}}}\n',
      summary.duration, summary.requests, counted, succeeded, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max, table.concat(percentiles, ", ")))
end
