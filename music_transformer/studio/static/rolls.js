// music-transformer studio: piano rolls on a <canvas>, drawn from the note lists the API
// returns (GET /api/pieces/P/takes/T/notes). Loaded before studio.js.
"use strict";

const PART_COLOURS = ["#4a6fa5", "#e07b39", "#3a9d5d", "#9b59b6", "#c0392b", "#16a085"];
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const LEFT = 34, RIGHT = 4;  // pixels for the pitch names; margin on the right

function pitchName(p) {
  return NAMES[p % 12] + (Math.floor(p / 12) - 1);
}

// Draw `roll.data` (notes [start, end, pitch, velocity, part], cuts, bars) between seconds
// `roll.from` and `roll.to`: pitch names on the left, seconds and bar numbers, velocity as
// shade, a red line at every cut (and at roll.cut), the playhead while playing.
function drawRoll(canvas, roll) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = LEFT, bottom = 16, top = 12;
  ctx.fillStyle = "#fbfbf8";
  ctx.fillRect(0, 0, W, H);
  if (!roll || !roll.data) return;
  const { notes, bars } = roll.data;
  const from = roll.from, to = Math.max(roll.to, roll.from + 1);
  const shown = notes.filter((n) => n[1] >= from && n[0] <= to);
  const pitches = shown.length ? shown.map((n) => n[2]) : [60];
  let low = Math.min(...pitches) - 2, high = Math.max(...pitches) + 2;
  if (high - low < 24) { const mid = (low + high) / 2; low = Math.round(mid - 12); high = low + 24; }
  const x = (t) => left + ((t - from) / (to - from)) * (W - left - RIGHT);
  const rowH = (H - top - bottom) / (high - low + 1);
  const y = (p) => top + (high - p) * rowH;
  ctx.font = "10px sans-serif";
  for (let p = low; p <= high; p++) {  // C rows shaded, with their names
    if (p % 12 !== 0) continue;
    ctx.fillStyle = "#eeeeea";
    ctx.fillRect(left, y(p), W - left, rowH);
    ctx.fillStyle = "#555";
    ctx.fillText(pitchName(p), 2, y(p) + rowH);
  }
  ctx.strokeStyle = "#d8d8d0";
  ctx.fillStyle = "#777";
  // every bar line while they are ≥ 4 px apart, bar numbers ≥ 28 px apart (1, 2, 5, 10, …)
  const seen = (bars || []).filter((t) => t >= from && t <= to);
  const perBar = seen.length > 1 ? (x(seen[seen.length - 1]) - x(seen[0])) / (seen.length - 1) : W;
  const nice = (gap) => [1, 2, 5, 10, 20, 50, 100, 200, 500].find((k) => k * perBar >= gap) || 1000;
  const lineEvery = nice(4), labelEvery = nice(28);
  (bars || []).forEach((t, i) => {
    if (t < from || t > to || i % lineEvery !== 0) return;
    ctx.beginPath(); ctx.moveTo(x(t), top); ctx.lineTo(x(t), H - bottom); ctx.stroke();
    if (i % labelEvery === 0) ctx.fillText(String(i + 1), x(t) + 2, top - 2);
  });
  const step = to - from > 60 ? 10 : to - from > 20 ? 5 : 1;
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    ctx.fillText(`${t}s`, x(t) - 6, H - 3);
  }
  for (const [s, e, p, v, part] of shown) {
    ctx.globalAlpha = 0.3 + 0.7 * (v / 127);
    ctx.fillStyle = PART_COLOURS[part % PART_COLOURS.length];
    ctx.fillRect(x(s), y(p), Math.max(1.5, x(e) - x(s)), Math.max(1.5, rowH - 0.5));
  }
  ctx.globalAlpha = 1;
  const cuts = [...(roll.data.cuts || [])];
  if (roll.cut !== undefined) cuts.push(roll.cut);
  ctx.strokeStyle = "#d62728";
  ctx.lineWidth = 2;
  for (const c of cuts) {
    if (c < from || c > to) continue;
    ctx.beginPath(); ctx.moveTo(x(c), 0); ctx.lineTo(x(c), H - bottom); ctx.stroke();
  }
  if (roll.playhead !== undefined) {
    ctx.strokeStyle = "#111";
    ctx.beginPath(); ctx.moveTo(x(roll.playhead), 0); ctx.lineTo(x(roll.playhead), H); ctx.stroke();
  }
  ctx.lineWidth = 1;
}

// The seconds of `roll` under the mouse at clientX (for dragging the cut).
function secondsAt(canvas, roll, clientX) {
  const box = canvas.getBoundingClientRect();
  const px = ((clientX - box.left) / box.width) * canvas.width;
  return roll.from + ((px - LEFT) / (canvas.width - LEFT - RIGHT)) * (roll.to - roll.from);
}
