-- bench/graphql_post.lua: the wrk script of bench/run_graphql.sh.
--
--   wrk ... -s bench/graphql_post.lua URL -- post   the graphql_http query
--   wrk ... -s bench/graphql_post.lua URL -- get    a bare GET (/healthz)
--
-- Every connection sends the same request; done() prints one JSON line,
-- prefixed "wrk-json ", with the request count, the duration, the errors
-- wrk saw (non-2xx/3xx statuses included) and the latency percentiles in
-- microseconds, so that the caller needs no parsing of wrk's text report.

local query = "{ liveStreams(first: 20) { edges { node { id title " ..
  "viewerCount broadcaster { username followerCount } } } } }"

function init(args)
  if args[1] == "get" then
    wrk.method = "GET"
    wrk.body = nil
  else
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Accept"] = "application/graphql-response+json, application/json"
    wrk.body = '{"query":"' .. query .. '"}'
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'wrk-json {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
