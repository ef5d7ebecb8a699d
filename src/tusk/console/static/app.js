// tusk web console, served by `tusk serve` (see docs/console.md).
//
// This module owns everything the browser does: the access token (taken from the URL's
// `#token=`, kept in sessionStorage, asked for when a call is refused), the calls to the /v1
// API, the hash router and the views:
//
//   #/                                        the DAG of repos and pipelines, live job states
//   #/repo/<repo>?branch=&commit=&path=&file=  branches, commits, files, a file's preview
//   #/pipeline/<name>[/job/<id>[/datum/<id>]]  spec, jobs, a job's datums, a datum's log
//   #/lineage/<repo>@<ref>:<path>              where a file came from (and what it went into)
//
// Repo and pipeline names are `[project/]name`, as on the command line. The views keep no state
// of their own: each is drawn from API answers, and the live ones poll every POLL_MS and redraw
// only what changed (so a click is never lost to a redraw).

const POLL_MS = 1500;
const PREVIEW_BYTES = 64 * 1024;
const IMAGE_PREVIEW_LIMIT = 32 * 1024 * 1024;
const MAX_ROWS = 1000; // rows a table shows (a directory, a job's datums); the rest is counted
const MAX_LINEAGE_INPUTS = 200; // input files shown under one lineage node
const MAX_LOG_LINES = 5000; // the newest lines of a datum's log the view shows
const TOKEN_KEY = "tusk.token";
const DEFAULT_PROJECT = "default";
const TERMINAL = ["SUCCESS", "FAILURE", "KILLED", "UNRUNNABLE"];
const IMAGE_TYPES = {
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif",
  svg: "image/svg+xml", webp: "image/webp", bmp: "image/bmp", ico: "image/x-icon",
  avif: "image/avif",
};

// -- the access token ----------------------------------------------------------------------

/** Move a `token=` from the URL (fragment or query) to sessionStorage, and off the URL. */
function takeTokenFromUrl() {
  const re = /(^|[#?&])token=([^&#]*)/;
  let { hash, search } = location;
  let token = null;
  const inHash = hash.match(re);
  if (inHash) {
    token = decodeURIComponent(inHash[2]);
    hash = hash.replace(re, "$1").replace(/[?&]$/, "").replace(/^#$/, "");
  }
  const inQuery = search.match(re);
  if (inQuery) {
    token = token ?? decodeURIComponent(inQuery[2]);
    search = search.replace(re, "$1").replace(/[?&]$/, "").replace(/^\?$/, "");
  }
  if (token !== null) {
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + search + hash);
  }
}

let tokenWanted = false;

/** Show the token form (a call was refused with 401). */
function askForToken() {
  if (tokenWanted) return;
  tokenWanted = true;
  const had = sessionStorage.getItem(TOKEN_KEY);
  const err = document.getElementById("token-error");
  err.hidden = !had;
  err.textContent = had ? "The server refused that token." : "";
  document.getElementById("token-overlay").hidden = false;
  document.getElementById("token-input").focus();
}

function setUpTokenForm() {
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("token-input");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    document.getElementById("token-overlay").hidden = true;
    tokenWanted = false;
    render();
  });
}

// -- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorOf(resp) {
  let type = "HTTPError";
  let message = `HTTP ${resp.status}`;
  try {
    const body = await resp.json();
    ({ type, message } = body.error);
  } catch {
    // not a JSON error body: keep the status line
  }
  if (resp.status === 401) askForToken();
  return new ApiError(resp.status, type, message);
}

/** POST a method's keyword arguments; the Response, or an ApiError thrown. */
async function post(path, args) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(args ?? {}),
  });
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

async function call(domain, method, args) {
  const resp = await post(`/v1/${domain}/${method}`, args);
  return (await resp.json()).result;
}

/** A STREAM method's items (JSON lines; an `{"error"}` line ends it badly). */
async function stream(domain, method, args) {
  const resp = await post(`/v1/${domain}/${method}`, args);
  const items = [];
  for (const line of (await resp.text()).split("\n")) {
    if (!line) continue;
    const record = JSON.parse(line);
    if (record.error) throw new ApiError(500, record.error.type, record.error.message);
    items.push(record.item);
  }
  return items;
}

const pfs = (method, args) => call("pfs", method, args);
const pps = (method, args) => call("pps", method, args);

/** The first `limit` bytes of a file (the rest is not downloaded). */
async function readHead(ref, limit) {
  const resp = await post("/v1/pfs/read_file", { ref });
  const reader = resp.body.getReader();
  const parts = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    total += value.length;
    if (total >= limit) {
      await reader.cancel();
      break;
    }
  }
  const bytes = new Uint8Array(Math.min(total, limit));
  let at = 0;
  for (const part of parts) {
    const take = part.subarray(0, bytes.length - at);
    bytes.set(take, at);
    at += take.length;
  }
  return bytes;
}

async function readBlob(ref, type) {
  const resp = await post("/v1/pfs/read_file", { ref });
  return new Blob([await resp.blob()], { type });
}

// -- references, as the codec sends dataclasses --------------------------------------------

function splitName(text) {
  const i = text.indexOf("/");
  return i < 0 ? { project: DEFAULT_PROJECT, name: text }
    : { project: text.slice(0, i), name: text.slice(i + 1) };
}

const qualified = (project, name) => (!project || project === DEFAULT_PROJECT ? name : `${project}/${name}`);
const isCommitId = (ref) => /^[0-9a-f]{32}$/.test(ref);
const repoRef = (project, repo) => ({ __type__: "RepoRef", project, repo });

function commitRef(project, repo, ref) {
  const id = isCommitId(ref);
  return { __type__: "CommitRef", repo: repoRef(project, repo), branch: id ? null : ref, commit_id: id ? ref : null };
}

const fileRef = (project, repo, ref, path) => ({ __type__: "FileRef", commit: commitRef(project, repo, ref), path });

// -- links ---------------------------------------------------------------------------------

function query(params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== ""));
  const text = q.toString();
  return text ? `?${text}` : "";
}

const repoLink = (name, params = {}) => `#/repo/${encodeURIComponent(name)}${query(params)}`;

function pipelineLink(name, job, datum) {
  let link = `#/pipeline/${encodeURIComponent(name)}`;
  if (job) link += `/job/${encodeURIComponent(job)}`;
  if (job && datum) link += `/datum/${encodeURIComponent(datum)}`;
  return link;
}

function lineageLink(repo, ref, path) {
  const text = encodeURIComponent(`${repo}@${ref}:${path}`);
  return `#/lineage/${text.replace(/%2F/g, "/").replace(/%40/g, "@").replace(/%3A/g, ":")}`;
}

const dirname = (path) => path.slice(0, path.lastIndexOf("/")) || "/";
const basename = (path) => path.slice(path.lastIndexOf("/") + 1);

// -- DOM helpers ---------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
}

/** Replace an element's children (nulls and falses skipped, as in h()). */
function fill(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
}

/** An HTML element: h("a", {href: "#/"}, "text", child, ...). Strings are text, never HTML. */
function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function svg(tag, attrs = {}, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

const lastDrawn = new WeakMap();

/** Replace `holder`'s content with draw(data), unless data is what it already shows. */
function redraw(holder, data, draw) {
  const key = JSON.stringify(data);
  if (lastDrawn.get(holder) === key) return;
  lastDrawn.set(holder, key);
  fill(holder, draw(data));
}

// -- formatting ----------------------------------------------------------------------------

const short = (id, n = 8) => (id ? id.slice(0, n) : "-");
const mono = (text, title) => h("code", { class: "mono", title: title ?? text }, text);

function fmtBytes(n) {
  if (n == null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i ? `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}` : `${n} B`;
}

function fmtTime(ts) {
  if (!ts) return "-";
  const d = new Date(ts * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function ago(ts) {
  if (!ts) return "-";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return fmtTime(ts).slice(0, 10);
}

function duration(seconds) {
  if (seconds == null) return "-";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m}m ${Math.round(seconds % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

const when = (ts) => h("span", { title: fmtTime(ts) }, ago(ts));

/** The color class of a job, datum or pipeline state. */
function tone(state) {
  const s = String(state || "").toUpperCase();
  if (s === "SUCCESS" || s === "RECOVERED" || s === "FINISHED") return "ok";
  if (s === "FAILURE" || s === "FAILED" || s === "UNRUNNABLE" || s === "CRASHING") return "bad";
  if (["RUNNING", "STARTING", "CREATED", "EGRESSING", "STARTED"].includes(s)) return "busy";
  if (s === "SKIPPED") return "skip";
  if (s === "KILLED" || s === "PAUSED") return "off";
  return "none";
}

const badge = (state, testid) => h("span", { class: `badge ${tone(state)}`, "data-state": state, "data-testid": testid }, state || "none");

function table(headers, rows, attrs = {}) {
  return h("table", attrs, h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

/** A note that a list was cut at `limit` rows. */
function more(total, limit, what, command) {
  return total > limit ? h("p", { class: "muted" }, `showing ${limit} of ${total} ${what}; `, mono(command), " lists them all") : null;
}

function card(title, ...kids) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...kids);
}

/** Long text (a failure reason) cut to two lines; all of it in the tooltip. */
const clamped = (text) => (text ? h("span", { class: "clamp", title: text }, text) : null);

function errorBox(err) {
  if (err instanceof ApiError && err.status === 401) {
    return h("p", { class: "muted" }, "Waiting for the access token…");
  }
  return h("p", { class: "error", "data-testid": "error" }, err.message || String(err));
}

// -- the router ----------------------------------------------------------------------------

let generation = 0;
let objectUrls = [];

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  if (hash.startsWith("/lineage/")) return { view: "lineage", target: decodeURIComponent(hash.slice(9)) };
  const at = hash.indexOf("?");
  const path = at < 0 ? hash : hash.slice(0, at);
  const params = Object.fromEntries(new URLSearchParams(at < 0 ? "" : hash.slice(at + 1)));
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "repo" && parts[1]) return { view: "repo", name: parts[1], params };
  if (parts[0] === "pipeline" && parts[1]) {
    return { view: "pipeline", name: parts[1], job: parts[3] || null, datum: parts[5] || null };
  }
  return { view: "dag" };
}

function setCrumbs(items) {
  const nav = document.getElementById("crumbs");
  fill(nav, items.flatMap(([text, href], i) => [
    i ? h("span", { class: "sep" }, "›") : null,
    href ? h("a", { href }, text) : h("span", {}, text),
  ]).filter(Boolean));
}

function setLive(ok, err) {
  const el = document.getElementById("live");
  el.className = ok ? "live on" : "live off";
  el.title = ok ? "views refresh by themselves" : `refresh failed: ${err?.message ?? err}`;
}

/** Call `fn` every POLL_MS while the view of `ctx` is the one shown. */
function poll(ctx, fn) {
  const tick = async () => {
    if (!ctx.alive()) return;
    if (!document.hidden && !tokenWanted) {
      try {
        await fn();
        setLive(true);
      } catch (err) {
        setLive(false, err);
      }
    }
    if (ctx.alive()) setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

function keepUrl(url) {
  objectUrls.push(url);
  return url;
}

async function render() {
  const gen = ++generation;
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  const route = parseRoute();
  const view = document.getElementById("view");
  const ctx = { route, alive: () => gen === generation };
  document.body.classList.add("loading");
  try {
    await VIEWS[route.view](view, ctx);
    if (ctx.alive()) setLive(true);
  } catch (err) {
    if (ctx.alive()) fill(view, card("Something went wrong", errorBox(err)));
  } finally {
    if (ctx.alive()) document.body.classList.remove("loading");
  }
  if (ctx.alive()) window.scrollTo(0, 0);
}

// -- the DAG view --------------------------------------------------------------------------

const NODE_W = 184;
const NODE_H = 58;
const DUMMY_H = 10; // the slot a long edge takes in each layer it crosses
const GAP_X = 64;
const GAP_Y = 22;
const PAD = 16;

/** Nodes (repos and pipelines) and edges (input repo → pipeline → output repo). */
function buildGraph(repos, pipes) {
  const nodes = new Map();
  const edges = [];
  for (const r of repos) {
    const id = `repo:${r.project}/${r.name}`;
    const name = qualified(r.project, r.name);
    nodes.set(id, {
      id, kind: "repo", name, href: repoLink(name), label: "REPO",
      sub: `${fmtBytes(r.size_bytes)} · ${r.branches.length} branch${r.branches.length === 1 ? "" : "es"}`,
    });
  }
  const findRepo = (repo, project) => {
    const own = `repo:${project}/${repo}`;
    if (nodes.has(own)) return own;
    const other = [...nodes.keys()].find((k) => k.startsWith("repo:") && k.endsWith(`/${repo}`));
    if (other) return other;
    nodes.set(own, { id: own, kind: "repo", name: qualified(project, repo), href: repoLink(qualified(project, repo)), label: "REPO", sub: "missing" });
    return own;
  };
  for (const p of pipes) {
    const id = `pipe:${p.project}/${p.name}`;
    const name = qualified(p.project, p.name);
    const jobState = p.last_job_state || "no jobs yet";
    const sub = p.state === "running" ? jobState : `${p.state} · ${jobState}`;
    nodes.set(id, { id, kind: "pipeline", name, href: pipelineLink(name), label: "PIPELINE", sub, state: p.last_job_state || "" });
    for (const input of p.input_repos) edges.push([findRepo(input, p.project), id]);
    const out = `repo:${p.project}/${p.name}`;
    if (nodes.has(out)) {
      edges.push([id, out]);
      nodes.get(out).label = "OUTPUT REPO";
    }
  }
  return { nodes: [...nodes.values()], edges };
}

/** Layer of each node: the longest path to it from a node without inputs. */
function layers(nodes, edges) {
  const preds = new Map(nodes.map((n) => [n.id, []]));
  for (const [a, b] of edges) preds.get(b).push(a);
  const layerOf = new Map();
  const depth = (id, visiting) => {
    if (layerOf.has(id)) return layerOf.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot happen, but must not hang the page
    visiting.add(id);
    const d = Math.max(-1, ...preds.get(id).map((p) => depth(p, visiting))) + 1;
    layerOf.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id, new Set()));
  return layerOf;
}

/**
 * Positions: layers left to right; an edge that spans several layers gets a dummy slot in
 * each layer it crosses (so it never runs under a node); a few barycenter sweeps order each
 * layer to keep edges short and uncrossed. Returns {at: id → {x, y, h}, chains, width, height}.
 */
function layout(graph) {
  const layerOf = layers(graph.nodes, graph.edges);
  const preds = new Map(graph.nodes.map((n) => [n.id, []]));
  const succs = new Map(graph.nodes.map((n) => [n.id, []]));
  const link = (a, b) => {
    preds.get(b).push(a);
    succs.get(a).push(b);
  };
  const chains = graph.edges.map(([a, b], e) => {
    const chain = [a];
    for (let L = layerOf.get(a) + 1; L < layerOf.get(b); L++) {
      const dummy = `~${e}:${L}`;
      layerOf.set(dummy, L);
      preds.set(dummy, []);
      succs.set(dummy, []);
      chain.push(dummy);
    }
    chain.push(b);
    chain.slice(1).forEach((id, i) => link(chain[i], id));
    return chain;
  });
  const byName = [...graph.nodes].sort((a, b) => a.name.localeCompare(b.name)).map((n) => n.id);
  const rows = [];
  for (const id of [...byName, ...[...layerOf.keys()].filter((k) => k.startsWith("~"))]) {
    (rows[layerOf.get(id)] ??= []).push(id);
  }
  orderLayers(rows, preds, succs);
  return place(rows, chains);
}

function orderLayers(rows, preds, succs) {
  const pos = new Map();
  const index = () => rows.forEach((ids) => ids.forEach((id, i) => pos.set(id, i)));
  index();
  const sweep = (order, neighbours) => {
    for (const L of order) {
      const center = (id) => {
        const ns = neighbours.get(id);
        return ns.length ? ns.reduce((s, n) => s + pos.get(n), 0) / ns.length : pos.get(id);
      };
      rows[L].sort((a, b) => center(a) - center(b));
      index();
    }
  };
  const down = rows.map((_, i) => i).slice(1);
  for (let pass = 0; pass < 4; pass++) {
    sweep(down, preds);
    sweep([...down].reverse().map((i) => i - 1), succs);
  }
}

function place(rows, chains) {
  const slot = (id) => (id.startsWith("~") ? DUMMY_H : NODE_H);
  const span = (ids) => ids.reduce((s, id) => s + slot(id), 0) + GAP_Y * Math.max(0, ids.length - 1);
  const height = Math.max(NODE_H, ...rows.map(span));
  const at = new Map();
  rows.forEach((ids, L) => {
    let y = PAD + (height - span(ids)) / 2;
    for (const id of ids) {
      at.set(id, { x: PAD + L * (NODE_W + GAP_X), y, h: slot(id) });
      y += slot(id) + GAP_Y;
    }
  });
  return { at, chains, width: 2 * PAD + rows.length * (NODE_W + GAP_X) - GAP_X, height: 2 * PAD + height };
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function drawNode(n, p) {
  const cls = n.kind === "pipeline" ? `node pipeline tone-${tone(n.state)}` : "node repo";
  return svg("a", { href: n.href, class: cls, "data-testid": `dag-node-${n.kind}-${n.name}`, "data-id": n.id, "data-state": n.state },
    svg("title", {}, `${n.kind} ${n.name} · ${n.sub}`),
    svg("rect", { class: "box", x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 9 }),
    svg("rect", { class: "stripe", x: p.x, y: p.y, width: 6, height: NODE_H, rx: 3 }),
    svg("text", { class: "kind", x: p.x + 16, y: p.y + 15 }, n.label),
    svg("text", { class: "name", x: p.x + 16, y: p.y + 33 }, clip(n.name, 18)),
    svg("text", { class: "sub", x: p.x + 16, y: p.y + 50, "data-testid": n.kind === "pipeline" ? `dag-state-${n.name}` : `dag-sub-${n.name}` }, clip(n.sub, 22)));
}

/** An edge along its chain: curves between layers, straight through the dummy slots. */
function drawEdge(chain, at) {
  const mid = (id) => at.get(id).y + at.get(id).h / 2;
  const first = at.get(chain[0]);
  let x = first.x + NODE_W;
  let y = mid(chain[0]);
  let d = `M${x},${y}`;
  chain.slice(1).forEach((id, i) => {
    const p = at.get(id);
    const last = i === chain.length - 2;
    const x2 = last ? p.x - 4 : p.x;
    const y2 = mid(id);
    const dx = (x2 - x) / 2;
    d += ` C${x + dx},${y} ${x2 - dx},${y2} ${x2},${y2}`;
    x = x2;
    y = y2;
    if (!last) {
      x = p.x + NODE_W;
      d += ` L${x},${y}`;
    }
  });
  return svg("path", {
    class: "edge", d, "marker-end": "url(#arrow)", "data-testid": "dag-edge",
    "data-from": chain[0], "data-to": chain[chain.length - 1],
  });
}

function drawDag(graph) {
  const { at, chains, width, height } = layout(graph);
  return svg("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "DAG of repos and pipelines" },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
    chains.map((chain) => drawEdge(chain, at)),
    graph.nodes.map((n) => drawNode(n, at.get(n.id))));
}

/** Redraw the DAG when its shape changed; else only update the states in place. */
function showDag(box, graph) {
  const shape = JSON.stringify([graph.nodes.map((n) => [n.id, n.name]), graph.edges]);
  if (lastDrawn.get(box) !== shape) {
    lastDrawn.set(box, shape);
    fill(box, graph.nodes.length ? drawDag(graph) : h("p", { class: "muted empty", "data-testid": "dag-empty" },
      "No repos yet. Make one with ", mono("tusk create repo images"), "."));
    return;
  }
  for (const n of graph.nodes) {
    const el = box.querySelector(`[data-id="${CSS.escape(n.id)}"]`);
    if (!el) continue;
    if (n.kind === "pipeline") {
      el.setAttribute("class", `node pipeline tone-${tone(n.state)}`);
      el.setAttribute("data-state", n.state);
    }
    const sub = el.querySelector("text.sub");
    if (sub.textContent !== clip(n.sub, 22)) sub.textContent = clip(n.sub, 22);
    el.querySelector("title").textContent = `${n.kind} ${n.name} · ${n.sub}`;
  }
}

async function dagView(view, ctx) {
  setCrumbs([["DAG", null]]);
  const box = h("div", { class: "dag-box", "data-testid": "dag" });
  const pipesBox = h("div", { "data-testid": "pipeline-list" });
  const reposBox = h("div", { "data-testid": "repo-list" });
  const load = async () => {
    const [repos, pipes] = await Promise.all([pfs("list_repos", { project: null }), pps("list_pipelines", { project: null })]);
    return { repos, pipes, graph: buildGraph(repos, pipes) };
  };
  const show = (data) => {
    showDag(box, data.graph);
    redraw(pipesBox, data.pipes, pipelineSummary);
    redraw(reposBox, data.repos, repoSummary);
  };
  const data = await load();
  if (!ctx.alive()) return;
  show(data);
  const legend = h("p", { class: "legend" },
    ["SUCCESS", "RUNNING", "FAILURE", "KILLED"].map((s) => [badge(s), " "]),
    "Each pipeline shows the state of its newest job, live; click a node to open it.");
  fill(view,
    h("section", { class: "card" }, h("h1", {}, "Repos and pipelines"), legend, box),
    h("div", { class: "columns even" }, card("Pipelines", pipesBox), card("Repos", reposBox)));
  poll(ctx, async () => {
    const next = await load();
    if (ctx.alive()) show(next);
  });
}

function pipelineSummary(pipes) {
  if (!pipes.length) return h("p", { class: "muted" }, "No pipelines yet: ", mono("tusk create pipeline -f spec.json"), ".");
  const sorted = [...pipes].sort((a, b) => a.name.localeCompare(b.name));
  return table(["pipeline", "newest job", "state", "reads"], sorted.map((p) => {
    const name = qualified(p.project, p.name);
    return h("tr", {},
      h("td", {}, h("a", { href: pipelineLink(name) }, name), h("span", { class: "muted" }, ` v${p.version}`)),
      h("td", {}, badge(p.last_job_state || "none")),
      h("td", {}, h("span", { class: `badge ${PIPELINE_TONE[p.state] ?? "bad"}` }, p.state)),
      h("td", {}, p.input_repos.flatMap((r, i) => [i ? ", " : null, h("a", { href: repoLink(qualified(p.project, r)) }, r)])));
  }));
}

function repoSummary(repos) {
  if (!repos.length) return h("p", { class: "muted" }, "No repos yet.");
  const sorted = [...repos].sort((a, b) => a.name.localeCompare(b.name));
  return table(["repo", "size", "branches", "created"], sorted.map((r) => {
    const name = qualified(r.project, r.name);
    return h("tr", {},
      h("td", {}, h("a", { href: repoLink(name) }, name), r.description ? h("div", { class: "muted small" }, r.description) : null),
      h("td", { class: "num" }, fmtBytes(r.size_bytes)),
      h("td", { class: "mono" }, r.branches.join(", ")),
      h("td", {}, when(r.created_at)));
  }));
}

// -- the repo browser ----------------------------------------------------------------------

async function repoView(view, ctx) {
  const { name: full, params } = ctx.route;
  const { project, name } = splitName(full);
  const ref = repoRef(project, name);
  const [info, branches, pipes] = await Promise.all([
    pfs("inspect_repo", { ref }), pfs("list_branches", { ref }), pps("list_pipelines", { project }),
  ]);
  const pipeline = pipes.find((p) => p.name === name) ?? null; // is this repo a pipeline's output?
  const names = branches.map((b) => b.name).sort();
  const branch = params.branch || (names.includes("master") ? "master" : names[0]);
  const at = params.commit || branch;
  const path = params.path || "/";
  setCrumbs([["DAG", "#/"], [`repo ${full}`, repoLink(full)], ...(path !== "/" ? [[path, null]] : [])]);
  const head = repoHeader(full, info, pipeline, branch, names, params);
  if (!branch) {
    fill(view, head, card("Files", h("p", { class: "muted" }, "This repo has no branches yet: ",
      mono(`tusk put file ${full}@master:/file -f file`), " makes one.")));
    return;
  }
  const [commits, files] = await Promise.all([
    pfs("list_commits", { ref: commitRef(project, name, branch), number: 50 }),
    pfs("list_file", { ref: fileRef(project, name, at, path) }).catch((err) => err),
  ]);
  if (!ctx.alive()) return;
  const preview = h("div", { class: "preview-slot" });
  fill(view, head, h("div", { class: "columns" },
    commitList(full, branch, commits, params.commit),
    h("div", { class: "stack" }, fileList(full, branch, params.commit, path, files, params.file), preview)));
  if (params.file) await showPreview(preview, ctx, project, name, full, at, params.file);
}

function repoHeader(full, info, pipeline, branch, names, params) {
  const select = h("select", { "data-testid": "branch-select", "aria-label": "branch" },
    names.map((b) => h("option", { value: b, selected: b === branch }, b)));
  select.addEventListener("change", () => { location.hash = repoLink(full, { branch: select.value }); });
  return h("section", { class: "card head" },
    h("div", { class: "title-row" },
      h("h1", { "data-testid": "repo-name" }, full),
      pipeline ? h("span", { class: "tag" }, "output of ", h("a", { href: pipelineLink(full) }, `pipeline ${full}`)) : h("span", { class: "tag" }, "input repo"),
      h("span", { class: "spacer" }),
      names.length ? h("label", { class: "picker" }, "branch ", select) : null),
    info.description ? h("p", {}, info.description) : null,
    h("p", { class: "muted" }, `${fmtBytes(info.size_bytes)} on master · created ${fmtTime(info.created_at)}`,
      params.commit ? [" · viewing commit ", mono(params.commit)] : null));
}

function commitList(full, branch, commits, selected) {
  const items = commits.map((c, i) => {
    const active = selected ? c.id === selected : i === 0;
    return h("li", { class: active ? "active" : null },
      h("a", { href: repoLink(full, { branch, commit: c.id }), "data-testid": "commit-item", "data-commit": c.id },
        h("div", { class: "row1" }, mono(short(c.id, 12), c.id), " ", c.state === "FINISHED" ? null : badge(c.state),
          c.error ? badge("FAILED") : null, h("span", { class: "spacer" }), h("span", { class: "muted" }, when(c.started_at))),
        h("div", { class: "row2 muted" }, c.description || c.origin.toLowerCase(), ` · ${c.file_count} file${c.file_count === 1 ? "" : "s"} · ${fmtBytes(c.size_bytes)}`)));
  });
  return h("aside", { class: "card commits", "data-testid": "commit-list" },
    h("h2", {}, "Commits on ", mono(branch)),
    items.length ? h("ul", { class: "commit-list" }, items) : h("p", { class: "muted" }, "no commits"));
}

function pathCrumbs(full, branch, commit, path) {
  const parts = path.split("/").filter(Boolean);
  const link = (p, text) => h("a", { href: repoLink(full, { branch, commit, path: p }) }, text);
  return h("div", { class: "path mono", "data-testid": "path" }, link("/", `${full}:/`),
    parts.map((part, i) => [link(`/${parts.slice(0, i + 1).join("/")}`, part), i < parts.length - 1 ? "/" : ""]));
}

function fileList(full, branch, commit, path, files, selected) {
  const body = files instanceof Error ? errorBox(files) : files.length === 0 ? h("p", { class: "muted" }, "empty")
    : table(["name", "size", ""], files.slice(0, MAX_ROWS).map((f) => {
      const isDir = f.type === "dir";
      const params = isDir ? { branch, commit, path: f.path } : { branch, commit, path: dirname(f.path), file: f.path };
      return h("tr", { "data-testid": "file-row", "data-path": f.path, "data-type": f.type, class: f.path === selected ? "active" : null },
        h("td", {}, h("a", { href: repoLink(full, params), class: `file ${f.type}` }, isDir ? `${basename(f.path)}/` : basename(f.path))),
        h("td", { class: "num" }, fmtBytes(f.size)),
        h("td", { class: "muted mono" }, isDir ? "" : short(f.hash, 12)));
    }), { class: "files", "data-testid": "file-table" });
  return h("section", { class: "card" }, h("h2", {}, "Files"), pathCrumbs(full, branch, commit, path), body,
    more(files instanceof Error ? 0 : files.length, MAX_ROWS, "entries", "tusk list file"));
}

async function showPreview(slot, ctx, project, name, full, at, path) {
  const ref = fileRef(project, name, at, path);
  let info;
  try {
    info = await pfs("inspect_file", { ref });
  } catch (err) {
    fill(slot, card("Preview", errorBox(err)));
    return;
  }
  const content = h("div", { class: "preview-body" }, h("p", { class: "muted" }, "loading…"));
  const type = IMAGE_TYPES[path.split(".").pop().toLowerCase()];
  const downloadButton = h("button", { type: "button", "data-testid": "download" }, "Download");
  downloadButton.addEventListener("click", () => download(ref, basename(path), downloadButton));
  fill(slot, h("section", { class: "card preview", "data-testid": "preview" },
    h("div", { class: "title-row" }, h("h2", { class: "mono" }, path), h("span", { class: "spacer" }),
      downloadButton, h("a", { class: "button", href: lineageLink(full, info.commit || at, path), "data-testid": "lineage-link" }, "Lineage")),
    h("p", { class: "muted" }, `${fmtBytes(info.size)} · hash `, mono(short(info.hash, 16), info.hash),
      " · commit ", mono(short(info.commit, 12), info.commit), info.datum ? [" · datum ", mono(short(info.datum, 12), info.datum)] : null),
    content));
  try {
    if (type && info.size <= IMAGE_PREVIEW_LIMIT) {
      const url = keepUrl(URL.createObjectURL(await readBlob(ref, type)));
      if (!ctx.alive()) return;
      fill(content, h("img", { src: url, alt: path, class: "image", "data-testid": "preview-image" }));
    } else if (type) {
      fill(content, h("p", { class: "muted" }, "Too large to preview; download it."));
    } else {
      const bytes = await readHead(ref, PREVIEW_BYTES);
      if (!ctx.alive()) return;
      fill(content, textPreview(bytes, info.size));
    }
  } catch (err) {
    if (ctx.alive()) fill(content, errorBox(err));
  }
}

function textPreview(bytes, size) {
  if (bytes.subarray(0, 8000).includes(0)) {
    return h("p", { class: "muted", "data-testid": "preview-binary" }, "A binary file; download it to look inside.");
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  return h("div", {},
    h("pre", { class: "text", "data-testid": "preview-text" }, text),
    size > bytes.length ? h("p", { class: "muted" }, `showing the first ${fmtBytes(bytes.length)} of ${fmtBytes(size)}`) : null);
}

/** Save a file through a one-use link the server makes (a link cannot carry the token), so
 * the browser streams it to disk instead of holding it in memory. */
async function download(ref, filename, button) {
  button.disabled = true;
  try {
    const link = await call("console", "download_link", { ref });
    const a = h("a", { href: link, download: filename, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    button.after(errorBox(err));
  } finally {
    button.disabled = false;
  }
}

// -- the pipeline view: spec, jobs, datums, a datum's log ------------------------------------

async function pipelineView(view, ctx) {
  const { name: full, job: jobId, datum: datumId } = ctx.route;
  const { project, name } = splitName(full);
  const [info, userSpec] = await Promise.all([pps("inspect_pipeline", { name, project }), pps("user_spec", { name, project })]);
  setCrumbs([["DAG", "#/"], [`pipeline ${full}`, pipelineLink(full)],
    ...(jobId ? [[`job ${short(jobId)}`, pipelineLink(full, jobId)]] : []),
    ...(datumId ? [[`datum ${short(datumId, 12)}`, null]] : [])]);
  const jobsBox = h("div", { "data-testid": "jobs" });
  const datumsBox = h("div", { "data-testid": "datums" });
  const datumBox = h("div", { "data-testid": "datum-detail" });
  let last = null;
  const load = async () => {
    const jobs = await pps("list_jobs", { pipeline: name, project, number: 50 });
    const job = jobId ? jobs.find((j) => j.id === jobId) ?? (await pps("inspect_job", { pipeline: name, job_id: jobId, project })) : null;
    if (last && job && TERMINAL.includes(job.state) && last.job.state === job.state) {
      last = { ...last, jobs }; // a finished job's datums and logs do not change
      return last;
    }
    const datums = job ? await pps("list_datums", { pipeline: name, job_id: job.id, project }) : null;
    const datum = datumId && datums ? datums.find((d) => d.id === datumId) : null;
    const logs = datum ? await stream("pps", "logs", { pipeline: name, job_id: datum.job || job.id, datum: datum.id, project }) : null;
    last = job ? { jobs, job, datums, datum, logs } : null;
    return { jobs, job, datums, datum, logs };
  };
  const draw = (data) => {
    redraw(jobsBox, data.jobs, (jobs) => jobsTable(full, jobs, jobId));
    if (data.job) redraw(datumsBox, [data.job, data.datums], () => datumsTable(full, data.job, data.datums, datumId));
    if (datumId) redraw(datumBox, [data.datum, data.logs], () => datumDetail(full, name, project, data.datum, data.logs, datumId));
  };
  const data = await load();
  if (!ctx.alive()) return;
  draw(data);
  fill(view,
    pipelineHeader(full, project, info),
    card("Jobs", jobsBox),
    jobId ? card(`Datums of job ${short(jobId)}`, datumsBox) : null,
    datumId ? card("Datum", datumBox) : null,
    specCard(userSpec, info, !jobId));
  poll(ctx, async () => {
    const next = await load();
    if (ctx.alive()) draw(next);
  });
}

const PIPELINE_TONE = { running: "ok", paused: "off", standby: "off" };

function pipelineHeader(full, project, info) {
  const inputs = info.input_repos.map((r) => h("a", { href: repoLink(qualified(project, r)) }, r));
  return h("section", { class: "card head" },
    h("div", { class: "title-row" }, h("h1", { "data-testid": "pipeline-name" }, full),
      h("span", { class: `badge ${PIPELINE_TONE[info.state] ?? "bad"}`, "data-testid": "pipeline-state" }, info.state),
      h("span", { class: "muted" }, `version ${info.version}`)),
    info.spec.description ? h("p", {}, info.spec.description) : null,
    info.reason ? h("p", { class: "error" }, info.reason) : null,
    h("p", { class: "muted" }, "reads ", inputs.length ? inputs.flatMap((a, i) => (i ? [", ", a] : [a])) : "no repos",
      " · writes ", h("a", { href: repoLink(full) }, full), ` · updated ${fmtTime(info.updated_at)}`));
}

function progress(j) {
  const parts = [`${j.processed} done`];
  if (j.skipped) parts.push(`${j.skipped} skipped`);
  if (j.failed) parts.push(`${j.failed} failed`);
  if (j.recovered) parts.push(`${j.recovered} recovered`);
  return `${parts.join(" · ")} / ${j.total}`;
}

function jobsTable(full, jobs, selected) {
  if (!jobs.length) return h("p", { class: "muted" }, "No jobs yet: they start when an input branch gets a commit.");
  return table(["job", "state", "datums", "started", "took", "reason"], jobs.map((j) =>
    h("tr", { "data-testid": "job-row", "data-job": j.id, "data-state": j.state, class: j.id === selected ? "active" : null },
      h("td", {}, h("a", { href: pipelineLink(full, j.id), class: "mono", title: j.id }, short(j.id, 12))),
      h("td", {}, badge(j.state)),
      h("td", {}, progress(j)),
      h("td", {}, when(j.started_at || j.created_at)),
      h("td", { class: "num" }, j.started_at ? duration((j.finished_at ?? Date.now() / 1000) - j.started_at) : "-"),
      h("td", { class: "reason" }, clamped(j.reason)))), { class: "jobs" });
}

function datumsTable(full, job, datums, selected) {
  const rows = datums.slice(0, MAX_ROWS).map((d) =>
    h("tr", { "data-testid": "datum-row", "data-datum": d.id, "data-state": d.state, class: d.id === selected ? "active" : null },
      h("td", {}, h("a", { href: pipelineLink(full, job.id, d.id), class: "mono", title: d.id }, short(d.id, 12))),
      h("td", {}, badge(d.state)),
      h("td", { class: "mono files-cell" }, d.files.join("\n")),
      h("td", { class: "num" }, duration(d.seconds)),
      h("td", { class: "reason" }, d.state === "SKIPPED" && d.job && d.job !== job.id ? ["kept from job ", mono(short(d.job), d.job)] : clamped(d.reason))));
  return h("div", {},
    h("p", { class: "muted" }, badge(job.state), ` ${progress(job)} · created ${fmtTime(job.created_at)}`),
    job.reason ? h("p", { class: "muted" }, clamped(job.reason)) : null,
    rows.length ? table(["datum", "state", "input files", "took", "note"], rows, { class: "datums" }) : h("p", { class: "muted" }, "no datums"),
    more(datums.length, MAX_ROWS, "datums", "tusk list datum"));
}

function datumDetail(full, name, project, datum, logs, datumId) {
  if (!datum) return h("p", { class: "error" }, `datum ${datumId} is not part of this job`);
  const fields = [
    ["id", mono(datum.id)], ["state", badge(datum.state, "datum-state")],
    ["job", h("a", { href: pipelineLink(full, datum.job), class: "mono" }, datum.job)],
    ["input files", datum.files.length ? h("div", { class: "mono" }, datum.files.map((f) => h("div", {}, f))) : "-"],
    ["outputs", datum.outputs.length ? h("div", { class: "mono" }, datum.outputs.map((o) =>
      h("div", {}, h("a", { href: repoLink(full, { path: dirname(o), file: o }) }, o)))) : "-"],
    ["attempts", String(datum.attempts)], ["took", duration(datum.seconds)],
  ];
  if (datum.reason) fields.push(["reason", h("span", { class: "error-text" }, datum.reason)]);
  return h("div", {},
    h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h3", {}, "Log"),
    logView(logs));
}

function logView(all) {
  if (!all || !all.length) return h("p", { class: "muted", "data-testid": "datum-log-empty" }, "This datum wrote no log lines.");
  const lines = all.slice(-MAX_LOG_LINES);
  return h("div", {}, all.length > lines.length ? h("p", { class: "muted" }, `the last ${lines.length} of ${all.length} lines; `,
    mono("tusk logs"), " prints them all") : null, h("pre", { class: "log", "data-testid": "datum-log" }, lines.map((l) =>
    h("div", { class: `line ${l.stream}` },
      h("span", { class: "ts" }, fmtTime(l.ts).slice(11)), " ",
      h("span", { class: "stream" }, l.stream.padEnd(6)), " ",
      l.attempt > 1 ? h("span", { class: "muted" }, `#${l.attempt} `) : null,
      h("span", { class: "text" }, l.line)))));
}

function specCard(userSpec, info, open) {
  const effective = JSON.stringify(info.spec, null, 2);
  return h("section", { class: "card" },
    h("details", { open },
      h("summary", {}, h("h2", { class: "inline" }, "Spec")),
      h("pre", { class: "json", "data-testid": "pipeline-spec" }, JSON.stringify(userSpec, null, 2)),
      h("details", { class: "sub" }, h("summary", {}, "effective spec (with defaults)"), h("pre", { class: "json" }, effective))));
}

// -- the lineage view ----------------------------------------------------------------------

function parseFileTarget(text) {
  const at = text.indexOf("@");
  const colon = text.indexOf(":", at + 1);
  if (at < 1 || colon < 0) throw new Error(`${text} is not a file: write repo@branch:/path`);
  return { repo: text.slice(0, at), ref: text.slice(at + 1, colon), path: text.slice(colon + 1) || "/" };
}

async function lineageView(view, ctx) {
  const target = parseFileTarget(ctx.route.target);
  const { project, name } = splitName(target.repo);
  const ref = fileRef(project, name, target.ref, target.path);
  setCrumbs([["DAG", "#/"], [`repo ${target.repo}`, repoLink(target.repo)], [`lineage of ${target.path}`, null]]);
  const [up, down] = await Promise.all([
    pps("lineage", { ref }),
    pps("lineage_downstream", { ref }).catch(() => []),
  ]);
  if (!ctx.alive()) return;
  fill(view,
    h("section", { class: "card" },
      h("h1", {}, "Lineage of ", mono(`${target.repo}:${target.path}`)),
      h("p", { class: "muted" }, "Each file is listed with the datum, job and pipeline that wrote it, and under it the input files that datum read, up to the original inputs."),
      h("ul", { class: "lineage", "data-testid": "lineage" }, lineageNode(up, project))),
    card("Made from this version",
      down.length ? table(["file", "pipeline", "job", "datum", "status"], down.map((o) => h("tr", { "data-testid": "downstream-row" },
        h("td", { class: "mono" }, `${"  ".repeat(o.level - 1)}${qualified(o.project, o.repo)}:${o.path}`),
        h("td", {}, h("a", { href: pipelineLink(qualified(o.project, o.pipeline)) }, `${o.pipeline} v${o.pipeline_version}`)),
        h("td", {}, h("a", { class: "mono", href: pipelineLink(qualified(o.project, o.pipeline), o.job) }, short(o.job))),
        h("td", {}, h("a", { class: "mono", href: pipelineLink(qualified(o.project, o.pipeline), o.job, o.datum) }, short(o.datum, 12))),
        h("td", {}, o.current ? "current" : "superseded"))))
        : h("p", { class: "muted" }, "No pipeline output was made from this version of the file.")));
}

function lineageNode(node, project) {
  const proj = node.project || project;
  const repo = qualified(proj, node.repo);
  const fileLink = node.commit
    ? h("a", { href: repoLink(repo, { commit: node.commit, path: dirname(node.path), file: node.path }), class: "mono file-link" }, `${repo}:${node.path}`)
    : mono(`${repo}:${node.path}`);
  const named = node.input && node.input !== node.repo ? h("span", { class: "tag" }, `input ${node.input}`) : null;
  let madeBy;
  if (node.origin === "pipeline") {
    const pipe = qualified(proj, node.pipeline);
    madeBy = ["made by ", h("a", { href: pipelineLink(pipe) }, `pipeline ${node.pipeline} v${node.pipeline_version}`),
      ", job ", h("a", { class: "mono", href: pipelineLink(pipe, node.job) }, short(node.job)),
      ", datum ", h("a", { class: "mono", href: pipelineLink(pipe, node.job, node.datum) }, short(node.datum, 12)),
      node.truncated ? " (not followed further)" : null];
  } else if (node.origin === "input") {
    madeBy = ["original input, added in commit ", mono(short(node.added_in, 12), node.added_in)];
  } else {
    madeBy = ["unknown: its input commit is gone"];
  }
  return h("li", {},
    h("div", { class: `lnode ${node.origin}`, "data-testid": "lineage-node", "data-path": node.path, "data-repo": node.repo, "data-origin": node.origin },
      h("div", { class: "row1" }, fileLink, named, h("span", { class: "spacer" }),
        h("span", { class: "muted" }, node.size != null ? fmtBytes(node.size) : "", " · hash "), mono(short(node.hash, 12), node.hash)),
      h("div", { class: "row2 muted" }, madeBy)),
    node.inputs && node.inputs.length ? h("ul", {}, node.inputs.slice(0, MAX_LINEAGE_INPUTS).map((child) => lineageNode(child, proj)),
      node.inputs.length > MAX_LINEAGE_INPUTS ? h("li", { class: "muted" }, `… and ${node.inputs.length - MAX_LINEAGE_INPUTS} more input files (tusk lineage lists them all)`) : null) : null);
}

// -- start ---------------------------------------------------------------------------------

const VIEWS = { dag: dagView, repo: repoView, pipeline: pipelineView, lineage: lineageView };

async function showServer() {
  try {
    const resp = await fetch("/v1/health");
    const body = await resp.json();
    document.getElementById("server").textContent = `tusk ${body.version} · ${location.host}`;
  } catch {
    document.getElementById("server").textContent = "server unreachable";
  }
}

function start() {
  takeTokenFromUrl();
  setUpTokenForm();
  window.addEventListener("hashchange", () => render());
  showServer();
  render();
}

start();
