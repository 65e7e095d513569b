// api.ts — the only module that knows the query API's routes and JSON field
// names (src/server/api.h, api_json.h, detect/json.cc). Pages see the typed
// values below; a renamed field is a one-line change here.

const TOKEN_KEY = "cpuledger.token";

// takeTokenFromFragment() — `#token=...` (what a shared link or `cpuledger
// serve`'s banner carries) moves into sessionStorage and off the URL bar.
export function takeTokenFromFragment(): void {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(history.state, "", location.pathname + location.search);
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

// ApiError — a non-2xx answer; status 401 means the token is missing or wrong.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | string[] | undefined>;

async function fetchAuthorized(path: string, params: Params, body?: unknown): Promise<Response> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const headers: Record<string, string> = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const init: RequestInit = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path + "?" + q.toString(), init);
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.error ?? res.statusText);
  }
  return res;
}

async function get(path: string, params: Params): Promise<any> {
  return (await fetchAuthorized(path, params)).json();
}

// TimeRange — since=DURATION, or from/to in unix seconds.
export interface TimeRange {
  since?: string;
  from?: string;
  to?: string;
}

// Measure — one measure's distribution over a group's samples; null: absent.
export interface Distribution {
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  estTotal: number;
}

export interface Row {
  keys: Record<string, string>;
  bucketS: number; // bucket start, unix seconds (0 without buckets)
  samples: number;
  estRequests: number;
  instructions: Distribution | null;
  cpuNs: Distribution | null;
  wallUs: Distribution | null;
  dbUsMean: number;
  cacheUsMean: number;
  dbCallsMean: number;
  cacheCallsMean: number;
}

function dist(j: any): Distribution | null {
  if (!j) return null;
  return { n: j.n, mean: j.mean, p50: j.p50, p90: j.p90, p99: j.p99, estTotal: j.est_total };
}

function row(j: any): Row {
  return {
    keys: j.keys ?? {},
    bucketS: (j.bucket_start_us ?? 0) / 1e6,
    samples: j.samples,
    estRequests: j.est_requests,
    instructions: dist(j.instructions),
    cpuNs: dist(j.cpu_ns),
    wallUs: dist(j.wall_us),
    dbUsMean: j.db_us_mean,
    cacheUsMean: j.cache_us_mean,
    dbCallsMean: j.db_calls_mean,
    cacheCallsMean: j.cache_calls_mean,
  };
}

export interface QueryArgs {
  groupBy?: string[];
  where?: string[]; // "DIM=VALUE"
  bucket?: string; // none | minute | hour | day
  limit?: number;
}

export interface QueryResult {
  rows: Row[];
  fromS: number;
  toS: number;
  truncated: boolean;
}

function queryParams(range: TimeRange, a: QueryArgs): Params {
  return {
    ...range,
    group_by: a.groupBy?.join(","),
    where: a.where,
    bucket: a.bucket,
    limit: a.limit?.toString(),
  };
}

function result(j: any): QueryResult {
  return { rows: j.rows.map(row), fromS: j.from_us / 1e6, toS: j.to_us / 1e6, truncated: j.truncated };
}

export async function breakdown(range: TimeRange, a: QueryArgs): Promise<QueryResult> {
  return result(await get("/v1/query/breakdown", queryParams(range, a)));
}

// timeseries() — NOTE: the server's limit counts rows (groups x buckets), so
// the default here is its maximum; pick the groups to draw from breakdown().
export async function timeseries(range: TimeRange, a: QueryArgs): Promise<QueryResult> {
  return result(await get("/v1/query/timeseries", queryParams(range, { limit: 100000, ...a })));
}

export interface ServiceEfficiency {
  service: string;
  unit: string; // "instructions" or "cpu_ns"
  peakMinuteS: number;
  perActiveUser: number;
  cpuTotal: number;
  requests: number;
  activeUsers: number;
}

export async function efficiency(range: TimeRange, service?: string): Promise<ServiceEfficiency[]> {
  const j = await get("/v1/query/efficiency", { ...range, service });
  return j.services.map((s: any) => ({
    service: s.service,
    unit: s.unit,
    peakMinuteS: s.peak_minute_unix,
    perActiveUser: s.per_active_user,
    cpuTotal: s.cpu_total,
    requests: s.requests,
    activeUsers: s.active_users,
  }));
}

export interface Deploy {
  service: string;
  cluster: string;
  commit: string;
  firstSeenS: number;
  lastSeenS: number;
}

export async function deploys(service?: string): Promise<Deploy[]> {
  const j = await get("/v1/query/deploys", { service });
  return j.deploys.map((d: any) => ({
    service: d.service,
    cluster: d.cluster,
    commit: d.commit,
    firstSeenS: d.first_seen_us / 1e6,
    lastSeenS: d.last_seen_us / 1e6,
  }));
}

// Slice — which profiles: a time range, exact service/endpoint/commit, and
// the requests carrying flag = flag_value (both or neither).
export interface Slice extends TimeRange {
  service?: string;
  endpoint?: string;
  commit?: string;
  flag?: string;
  flag_value?: string;
}

export interface FunctionCost {
  key: string; // file:line:name, the function key
  name: string;
  calls: number;
  self: number; // per profiled request
  total: number;
}

export async function functions(
  slice: Slice,
  limit = 15,
): Promise<{ unit: string; profiled: number; functions: FunctionCost[] }> {
  const j = await get("/v1/query/functions", { ...slice, limit: String(limit) });
  return {
    unit: j.unit,
    profiled: j.profiled_requests,
    functions: j.functions.map((f: any) => ({
      key: `${f.file}:${f.line}:${f.name}`,
      name: f.name,
      calls: f.calls,
      self: f.self,
      total: f.total,
    })),
  };
}

// TreeNode — one call path of a merged profile; costs summed over requests.
export interface TreeNode {
  name: string;
  key: string; // function key; "" for the root
  self: number;
  total: number;
  children: TreeNode[];
}

export interface Tree {
  unit: string;
  requests: number;
  root: TreeNode;
}

function treeNode(j: any): TreeNode {
  return {
    name: j.name,
    key: j.file === undefined ? "" : `${j.file}:${j.line}:${j.name}`,
    self: j.self,
    total: j.total,
    children: (j.children ?? []).map(treeNode),
  };
}

export async function tree(slice: Slice): Promise<Tree> {
  const j = await get("/v1/query/tree", { ...slice });
  return { unit: j.unit, requests: j.profiled_requests, root: treeNode(j.root) };
}

export interface Culprit {
  function: string;
  path: string;
  before: number;
  after: number;
  added: number;
}

// Alert — a stored alert. base/target: the two sides (commits, or flag
// reference/value).
export interface Alert {
  id: number;
  state: string; // open | acknowledged | resolved
  updatedS: number;
  reopens: number; // the resolved alert this one reopens; 0 none
  kind: string;
  service: string;
  endpoint: string;
  cause: string;
  unit: string;
  estimate: number;
  lo: number;
  hi: number;
  confidence: number;
  meanBase: number;
  meanTarget: number;
  threshold: number;
  thresholdSource: string;
  samplesBase: number;
  samplesTarget: number;
  fromS: number;
  toS: number;
  openedS: number;
  reason: string;
  culprits: Culprit[];
  explainedShare: number | null;
  baseCommit: string;
  targetCommit: string;
  commits: string[];
  flag: string;
  flagValue: string;
  flagReference: string;
}

function alert(j: any): Alert {
  const e = j.effect ?? {};
  return {
    id: j.id,
    state: j.state,
    updatedS: j.updated ?? j.opened,
    reopens: j.reopens ?? 0,
    kind: j.kind,
    service: j.service,
    endpoint: j.endpoint,
    cause: j.cause ?? "",
    unit: j.unit ?? "",
    estimate: e.estimate,
    lo: e.lo,
    hi: e.hi,
    confidence: e.confidence,
    meanBase: j.mean_before,
    meanTarget: j.mean_after,
    threshold: j.threshold,
    thresholdSource: j.threshold_source ?? "",
    samplesBase: j.samples_before,
    samplesTarget: j.samples_after,
    fromS: j.from,
    toS: j.to,
    openedS: j.opened,
    reason: j.reason ?? "",
    culprits: (j.top_functions ?? []).map((c: any) => ({
      function: c.function,
      // A call path: outermost first, as a list (or one string in older alerts).
      path: Array.isArray(c.path) ? c.path.join(" → ") : c.path ?? "",
      before: c.before,
      after: c.after,
      added: c.added,
    })),
    // A function-level alert is one function's own test: there is no split
    // of the endpoint's added cost to explain (the detector leaves it 0).
    explainedShare: String(j.kind ?? "").startsWith("function-") ? null : (j.explained_share ?? null),
    // Stored alerts say base_commit/target_commit since store schema 6; older
    // bodies and fresh detector output may still say base_commit/after.
    baseCommit: j.base_commit ?? "",
    targetCommit: j.target_commit ?? "",
    commits: j.commits ?? [],
    flag: j.flag ?? "",
    flagValue: j.flag_value ?? "",
    flagReference: j.flag_reference ?? "",
  };
}

export async function alerts(args: { state?: string; service?: string; since?: string }): Promise<Alert[]> {
  const j = await get("/v1/alerts", { state: args.state, service: args.service, since: args.since ?? "30d", limit: "500" });
  return j.alerts.map(alert);
}

// AlertEvent — one change of an alert's lifecycle, oldest first.
export interface AlertEvent {
  atS: number;
  state: string;
  by: string; // "detector", "api" or a user's name
  note: string;
  detail: any; // the detector's comparison when it resolved the alert; null otherwise
}

function alertWithEvents(j: any): { alert: Alert; events: AlertEvent[] } {
  return {
    alert: alert(j.alert),
    events: (j.events ?? []).map((e: any) => ({ atS: e.at, state: e.state, by: e.by, note: e.note ?? "", detail: e.detail ?? null })),
  };
}

// alertDetail() — one alert and its events (GET /v1/alerts/ID).
export async function alertDetail(id: number): Promise<{ alert: Alert; events: AlertEvent[] }> {
  return alertWithEvents(await get(`/v1/alerts/${id}`, {}));
}

// transition() — acknowledge or resolve by hand (POST /v1/alerts/ID); an
// ApiError with status 409 when the alert's state does not allow it.
export async function transition(id: number, state: "acknowledged" | "resolved", note = ""): Promise<{ alert: Alert; events: AlertEvent[] }> {
  const res = await fetchAuthorized(`/v1/alerts/${id}`, {}, { state, by: "dashboard", note });
  return alertWithEvents(await res.json());
}

export const EXPORT_FORMATS = ["speedscope", "pprof", "pstats", "collapsed"] as const;

// exportTree() — the slice's merged profile as a file (profile/export.h's
// formats) and the name the server gives it.
export async function exportTree(slice: Slice, format: string): Promise<{ blob: Blob; name: string }> {
  const res = await fetchAuthorized("/v1/query/tree", { ...slice, format });
  const m = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") ?? "");
  return { blob: await res.blob(), name: m ? m[1] : "profile" };
}
