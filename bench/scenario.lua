-- wrk script for the certapi benchmark: one scenario per run, chosen by the first
-- argument (enroll | get | list_first | list_last | progress | attempt | mix | stats).
--
-- Rows are addressed by index: bench/ids.py defines the uuid scheme and the layout, and
-- the arguments (key=value) carry the layout's numbers. Writes walk pools so that no
-- request repeats a write that would now conflict:
--   enroll   walks (small certification, free user) pairs, each used once;
--   progress walks the progress pool with a fixed value per run (equal is allowed);
--   attempt  walks the attempt pool; one in four first attempts passes (and closes the
--            enrollment); on a later lap those are skipped and every score fails,
--            which an open enrollment with unlimited attempts always accepts.
-- A run writes only its own part of each pool (part of parts: the runner gives every
-- round's single-endpoint run and its mix run a part of their own), and each wrk thread
-- takes every T-th item of that part, so threads and runs never collide.

local ACCOUNT, PARTNER, USER, CERTIFICATION, ENROLLMENT = 1, 2, 3, 4, 5

local function uid(kind, index)
  return string.format("%08x-0000-4000-8000-%012x", kind, index)
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local cfg = {}
local counters = {}
local get_headers, body_headers
statuses = {}
wraps = 0

-- This thread's n-th item of the run's part of a pool; second value: whether it lapped.
local function walk(name, size)
  local n = counters[name] or 0
  counters[name] = n + 1
  local share = math.floor(size / cfg.parts)
  local k = id + cfg.threads * n
  if k >= share then wraps = wraps + 1 end
  return cfg.part * share + (k % share), k >= share
end

local function cert_of(e)
  if e < cfg.big then return 0 end
  return 1 + (e - cfg.big) % (cfg.certifications - 1)
end

local function partner_of(u)
  if u % cfg.partner_every ~= 0 then return nil end
  return math.floor(u / cfg.partner_every) % cfg.partners
end

local function enrollment_path(e)
  return string.format("/v1/certifications/%s/enrollments/%s",
                       uid(CERTIFICATION, cert_of(e)), uid(ENROLLMENT, e))
end

local builders = {}

-- idem=P: P writes in every 100 carry an Idempotency-Key of their own (the nonce is new
-- for each run, so keys never repeat on one database); the rest carry none.
local function write(method, path, body)
  counters.idem = (counters.idem or 0) + 1
  if (counters.idem % 100) < (cfg.idem or 0) then
    body_headers["Idempotency-Key"] = string.format("%s-%s-%d-%d", cfg.scenario, cfg.nonce, id, counters.idem)
  else
    body_headers["Idempotency-Key"] = nil
  end
  return wrk.format(method, path, body_headers, body)
end

function builders.enroll()
  local p = walk("enroll", cfg.free_users * (cfg.certifications - 1))
  local c = 1 + p % (cfg.certifications - 1)
  local u = cfg.big + math.floor(p / (cfg.certifications - 1))
  local partner = partner_of(u)
  local body
  if partner then
    body = string.format('{"user_uuid":"%s","partnership_uuid":"%s"}', uid(USER, u), uid(PARTNER, partner))
  else
    body = string.format('{"user_uuid":"%s"}', uid(USER, u))
  end
  return write("POST", string.format("/v1/certifications/%s/enrollments", uid(CERTIFICATION, c)), body)
end

function builders.get()
  local n = counters.get or 0
  counters.get = n + 1
  -- A fixed pseudo-random walk over every enrollment (7919 is prime, so it visits all).
  local e = (n * 7919 + id * 104729) % cfg.enrollments
  return wrk.format("GET", enrollment_path(e), get_headers)
end

local function list(page)
  return wrk.format("GET", string.format("/v1/certifications/%s/enrollments?page=%d&per_page=%d",
                    uid(CERTIFICATION, 0), page, cfg.per_page), get_headers)
end

function builders.list_first() return list(1) end

-- The big certification's stats, in all and for one partnership (every other request).
function builders.stats()
  local n = counters.stats or 0
  counters.stats = n + 1
  local path = string.format("/v1/certifications/%s/stats", uid(CERTIFICATION, 0))
  if (n + id) % 2 == 1 then
    path = path .. "?partnership_uuid=" .. uid(PARTNER, (n + id) % cfg.partners)
  end
  return wrk.format("GET", path, get_headers)
end
function builders.list_last() return list(math.ceil(cfg.big / cfg.per_page)) end

function builders.progress()
  local j = walk("progress", cfg.progress_pool)
  local body = string.format('{"progress_percentage":%d}', cfg.progress)
  return write("PATCH", enrollment_path(cfg.big + j), body)
end

function builders.attempt()
  local i, lapped = walk("attempt", cfg.attempt_pool)
  local j = cfg.progress_pool + i
  local score = 40 + j % 25
  if not lapped and j % 4 == 0 then
    score = 85
  elseif j % 4 == 0 then
    -- Completed on the first lap: a neighbour never passes, so it is still open.
    if j + 1 < cfg.progress_pool + cfg.attempt_pool then j = j + 1 else j = j - 1 end
  end
  return write("POST", enrollment_path(cfg.big + j) .. "/assessment-attempts",
               string.format('{"score":%d}', score))
end

-- The mix: 20 slots, 55% reads and 45% writes.
local MIX = {
  "get", "progress", "get", "list_first", "get", "enroll", "progress", "get", "attempt", "get",
  "list_first", "progress", "get", "list_last", "progress", "get", "enroll", "list_first",
  "attempt", "progress",
}

function builders.mix()
  local n = counters.mix or 0
  counters.mix = n + 1
  return builders[MIX[(n + id) % #MIX + 1]]()
end

local build

function init(args)
  cfg.scenario = args[1]
  for i = 2, #args do
    local key, value = string.match(args[i], "^([%w_]+)=(.*)$")
    cfg[key] = tonumber(value) or value
  end
  build = builders[cfg.scenario]
  if not build then error("unknown scenario " .. tostring(cfg.scenario)) end
  get_headers = {["Authorization"] = "Bearer " .. cfg.key}
  body_headers = {["Authorization"] = "Bearer " .. cfg.key, ["Content-Type"] = "application/json"}
end

function request()
  return build()
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  local wrapped = 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
    wrapped = wrapped + thread:get("wraps")
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"socket_errors":%d,"wraps":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout,
    wrapped, table.concat(parts, ",")))
end
