// music-transformer studio: the page. Plain JavaScript, no build step, nothing fetched
// from anywhere but this server's /api/ and /static/.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  piece: null,       // the open piece, as GET /api/pieces/{id} returns it
  models: [],
  job: null,         // the running job's id
  stream: null,      // its EventSource
  rolls: new Map(),  // canvas -> {data, from, to, cut, playhead}
};
const PRE_ROLL = 3;  // seconds of what came before played ahead of a candidate

// --- talking to the server -----------------------------------------------------------------

async function api(method, url, body) {
  const options = { method, headers: {} };
  if (body instanceof Blob) {
    options.body = body;
    options.headers["Content-Type"] = "audio/midi";
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function say(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function attempt(action) {
  try {
    say("");
    return await action();
  } catch (e) {
    say(e.message);
    return undefined;
  }
}

const pieceUrl = () => `/api/pieces/${state.piece.id}`;
const takeUrl = (node) => `${pieceUrl()}/takes/${node}`;

// --- piano rolls (drawn by rolls.js) --------------------------------------------------------------

const redraw = (canvas) => drawRoll(canvas, state.rolls.get(canvas));

async function loadRoll(canvas, node, view) {
  const data = await api("GET", `${takeUrl(node)}/notes`);
  const roll = { data, from: 0, to: data.duration, ...view(data) };
  state.rolls.set(canvas, roll);
  redraw(canvas);
  return roll;
}

// Play `audio` from `start` seconds with a moving playhead on `canvas`.
function play(audio, canvas, start) {
  document.querySelectorAll("audio").forEach((a) => { if (a !== audio) a.pause(); });
  const roll = state.rolls.get(canvas);
  const go = () => {
    audio.currentTime = Math.max(0, start);
    audio.play().catch((e) => say(`cannot play: ${e.message}`));
  };
  if (audio.readyState >= 1) go(); else audio.addEventListener("loadedmetadata", go, { once: true });
  audio.load && audio.readyState === 0 && audio.load();
  const tick = () => {
    if (!roll) return;
    roll.playhead = audio.paused ? undefined : audio.currentTime;
    redraw(canvas);
    if (!audio.paused && !audio.ended) requestAnimationFrame(tick);
  };
  audio.addEventListener("playing", () => requestAnimationFrame(tick), { once: true });
}

// An <audio> whose failure (no FluidSynth) shows the server's one-line reason.
function audioFor(audio, node) {
  audio.src = `${takeUrl(node)}/audio`;
  audio.onerror = async () => {
    const r = await fetch(audio.src).catch(() => null);
    const body = r ? await r.json().catch(() => ({})) : {};
    say(body.error || "this take's audio could not be loaded");
  };
}

// --- the piece: tree, current take, candidates ---------------------------------------------------

function label(node) {
  if (node.id === "root") return `Primer: ${state.piece.primer.name}`;
  const who = node.model || (node.blind ? `blind ${node.blind.split(":")[1]}` : "?");
  return `${node.id} · ${node.seconds.toFixed(1)} s · ${who}` + (node.seed !== undefined ? ` · seed ${node.seed}` : "");
}

function children(id) {
  return Object.values(state.piece.nodes).filter((n) => n.parent === id);
}

function renderTree() {
  const build = (node) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label(node);
    button.dataset.node = node.id;
    if (node.id === state.piece.current) button.classList.add("current");
    button.addEventListener("click", () => attempt(() => select(node.id)));
    li.append(button);
    const kids = children(node.id);
    if (kids.length) {
      const ul = document.createElement("ul");
      kids.forEach((k) => ul.append(build(k)));
      li.append(ul);
    }
    return li;
  };
  $("tree").replaceChildren(build(state.piece.nodes.root));
}

async function select(id) {
  state.piece = await api("POST", `${pieceUrl()}/current`, { node: id });
  await showPiece();
}

async function showCurrent() {
  const node = state.piece.nodes[state.piece.current];
  const isRoot = node.id === "root";
  $("current-title").textContent = isRoot ? `Primer: ${state.piece.primer.name}` : `Current take: ${label(node)}`;
  $("primer-seconds-label").hidden = !isRoot;
  $("undo").disabled = isRoot;
  const canvas = $("current-roll");
  await loadRoll(canvas, node.id, (data) => {
    if (!isRoot) return {};
    const input = $("primer-seconds");
    if (!input.value) input.value = Math.min(10, data.duration).toFixed(1);
    return { cut: Number(input.value) };
  });
  audioFor($("current-audio"), node.id);
  $("export-midi").href = `${takeUrl(node.id)}/midi`;
  $("export-audio").href = `${takeUrl(node.id)}/export.mp3`;
  $("copy-command").disabled = isRoot;
  $("command").hidden = true;
}

function card(node, title) {
  const el = $("card-template").content.firstElementChild.cloneNode(true);
  el.dataset.node = node.id;
  el.querySelector(".card-title").textContent = title;
  const canvas = el.querySelector("canvas");
  const audio = el.querySelector("audio");
  audioFor(audio, node.id);
  loadRoll(canvas, node.id, (data) => ({ from: Math.max(0, node.cut - 5), to: data.duration }))
    .catch((e) => say(e.message));
  el.querySelector(".play").addEventListener("click", () => play(audio, canvas, node.cut - PRE_ROLL));
  el.querySelector(".continue").addEventListener("click", () => attempt(async () => {
    await select(node.id);
    await generate();
  }));
  el.querySelector(".open").addEventListener("click", () => attempt(() => select(node.id)));
  el.querySelector(".midi").href = `${takeUrl(node.id)}/midi`;
  el.querySelector(".mp3").href = `${takeUrl(node.id)}/export.mp3`;
  el.querySelector(".copy").addEventListener("click", () => attempt(() => copyCommand(node.id)));
  return el;
}

function renderCandidates() {
  const current = state.piece.current;
  const kids = children(current).filter((n) => !n.blind || n.model);
  $("candidates-of").textContent = kids.length ? `continuing ${current === "root" ? "the primer" : current}` : "none yet: press Generate";
  $("candidate-list").replaceChildren(...kids.map((n) => card(n, label(n))));
}

async function showPiece() {
  $("start").hidden = true;
  $("piece").hidden = false;
  $("piece-select").value = state.piece.id;
  history.replaceState(null, "", `#piece=${state.piece.id}`);
  renderTree();
  renderCandidates();
  renderTrials();
  await showCurrent();
}

async function refresh() {
  state.piece = await api("GET", pieceUrl());
  await showPiece();
}

async function openPiece(id) {
  state.piece = await api("GET", `/api/pieces/${id}`);
  $("primer-seconds").value = "";
  await showPiece();
}

async function listPieces() {
  const { pieces } = await api("GET", "/api/pieces");
  const select = $("piece-select");
  select.replaceChildren(new Option("New piece…", ""),
    ...pieces.map((p) => new Option(`${p.name} (${p.takes} takes)`, p.id)));
  if (state.piece) select.value = state.piece.id;
}

async function newPiece(piece) {
  state.piece = piece;
  $("primer-seconds").value = "";
  await listPieces();
  await showPiece();
}

// --- generating ----------------------------------------------------------------------------------

function settings() {
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  const body = {
    node: state.piece.current, model: $("model").value, seconds: number("seconds"),
    candidates: number("candidates"), temperature: number("temperature"), top_k: number("top-k"),
    top_p: number("top-p"), seed: number("seed"),
  };
  if (state.piece.current === "root") body.primer_seconds = number("primer-seconds");
  return body;
}

function watch(job, onEnd) {
  state.job = job.id;
  $("cancel").hidden = false;
  $("generate").disabled = true;
  $("blind-start").disabled = true;
  $("progress").hidden = false;
  $("progress").value = 0;
  $("progress-text").textContent = "queued";
  const stream = new EventSource(`/api/jobs/${job.id}/events`);
  state.stream = stream;
  const end = (text) => {
    stream.close();
    state.job = null;
    $("cancel").hidden = true;
    $("generate").disabled = false;
    $("blind-start").disabled = false;
    $("progress").hidden = true;
    $("progress-text").textContent = text;
  };
  stream.addEventListener("running", () => { $("progress-text").textContent = "generating…"; });
  stream.addEventListener("progress", (e) => {
    const d = JSON.parse(e.data);
    $("progress").value = d.progress;
    $("progress-text").textContent = `${Math.round(100 * d.progress)} % · ${d.elapsed.toFixed(0)} s`;
  });
  stream.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    end(`done in ${d.elapsed.toFixed(1)} s`);
    attempt(async () => { await refresh(); await listPieces(); if (onEnd) onEnd(d); });
  });
  for (const kind of ["failed", "cancelled"]) {
    stream.addEventListener(kind, (e) => {
      const d = JSON.parse(e.data);
      end(kind);
      if (d.message) say(d.message);
    });
  }
}

async function generate() {
  const job = await api("POST", `${pieceUrl()}/jobs`, settings());
  $("seed").value = job.request.seed;  // shown, so a take can be made again
  watch(job);
}

async function copyCommand(node) {
  const { command } = await api("GET", `${takeUrl(node)}/command`);
  const field = $("command");
  field.value = command;
  field.hidden = false;
  field.select();
  if (navigator.clipboard) await navigator.clipboard.writeText(command).catch(() => {});
}

// --- set-up ---------------------------------------------------------------------------------------

function showModel() {
  const m = state.models.find((x) => x.name === $("model").value);
  if (!m) return;
  $("model-suits").textContent = m.suits || "";
  $("temperature").placeholder = m.temperature ?? 1;
}

async function upload(file) {
  const name = encodeURIComponent(file.name);
  await newPiece(await api("POST", `/api/pieces?name=${name}`, file));
}

function dragCut(canvas) {
  let dragging = false;
  const move = (event) => {
    const roll = state.rolls.get(canvas);
    if (!dragging || !roll || roll.cut === undefined) return;
    roll.cut = Math.min(roll.to, Math.max(0.5, secondsAt(canvas, roll, event.clientX)));
    $("primer-seconds").value = roll.cut.toFixed(1);
    redraw(canvas);
  };
  canvas.addEventListener("mousedown", (e) => { dragging = true; move(e); });
  window.addEventListener("mousemove", move);
  window.addEventListener("mouseup", () => { dragging = false; });
}

async function init() {
  const models = await api("GET", "/api/models");
  state.models = models.models;
  for (const id of ["model", "blind-x", "blind-y"]) {
    $(id).replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.arch})`, m.name)));
  }
  $("model").value = models.default;
  [$("blind-x").value, $("blind-y").value] = models.blind_default;
  showModel();
  const { primers } = await api("GET", "/api/primers");
  $("bundled").replaceChildren(...primers.map((p) => new Option(`${p.name} (${p.kind})`, p.name)));
  await listPieces();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("piece");
  if (wanted) await openPiece(wanted);
}

function wire() {
  $("model").addEventListener("change", showModel);
  $("file").addEventListener("change", () => $("file").files[0] && attempt(() => upload($("file").files[0])));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) attempt(() => upload(e.dataTransfer.files[0]));
  });
  $("use-bundled").addEventListener("click", () => attempt(async () => {
    const name = encodeURIComponent($("bundled").value);
    await newPiece(await api("POST", `/api/pieces?bundled=${name}`));
  }));
  $("piece-select").addEventListener("change", () => attempt(async () => {
    const id = $("piece-select").value;
    if (id) { await openPiece(id); return; }
    state.piece = null;
    $("piece").hidden = true;
    $("start").hidden = false;
    history.replaceState(null, "", "#");
  }));
  $("generate-form").addEventListener("submit", (e) => { e.preventDefault(); attempt(generate); });
  $("cancel").addEventListener("click", () => state.job && attempt(() => api("POST", `/api/jobs/${state.job}/cancel`)));
  $("new-seed").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2 ** 31); });
  $("undo").addEventListener("click", () => attempt(() => {
    const parent = state.piece.nodes[state.piece.current].parent;
    return parent ? select(parent) : undefined;
  }));
  $("play-current").addEventListener("click", () => play($("current-audio"), $("current-roll"), 0));
  $("copy-command").addEventListener("click", () => attempt(() => copyCommand(state.piece.current)));
  $("primer-seconds").addEventListener("input", () => {
    const roll = state.rolls.get($("current-roll"));
    if (roll && roll.cut !== undefined) { roll.cut = Number($("primer-seconds").value); redraw($("current-roll")); }
  });
  dragCut($("current-roll"));
  wireBlind();
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  attempt(init);
});
