// music-transformer studio: listen blind — A/B trials of two models, a preference each,
// the reveal, and the export in `compare`'s format. Loaded after studio.js, whose helpers
// ($, api, attempt, card, refresh, settings, watch, pieceUrl) it uses.
"use strict";

function renderTrials() {
  const cards = [];
  for (const trial of state.piece.blind) {
    for (const side of ["A", "B"]) {
      const node = state.piece.nodes[trial[side]];
      const who = trial.models ? ` = ${trial.models[side]}` : "";
      const el = card(node, `${trial.id}: ${side}${who}`);
      el.querySelector(".continue").hidden = true;
      el.querySelector(".copy").hidden = !trial.revealed;
      const choose = document.createElement("button");
      choose.type = "button";
      choose.className = "choose";
      choose.dataset.side = side;
      choose.textContent = trial.choice === side ? `✔ ${side} preferred` : `Prefer ${side}`;
      choose.disabled = trial.revealed;
      choose.addEventListener("click", () => attempt(async () => {
        await api("POST", `${pieceUrl()}/blind/${trial.id}`, { choice: side });
        await refresh();
      }));
      el.querySelector(".row").append(choose);
      cards.push(el);
    }
  }
  $("trials").replaceChildren(...cards);
}

// Wire the blind section's buttons (called by studio.js's wire()).
function wireBlind() {
  $("blind-start").addEventListener("click", () => attempt(async () => {
    const body = { ...settings(), models: [$("blind-x").value, $("blind-y").value] };
    delete body.model;
    delete body.candidates;
    watch(await api("POST", `${pieceUrl()}/blind`, body));
  }));
  $("reveal").addEventListener("click", () => attempt(async () => {
    await api("POST", `${pieceUrl()}/blind/reveal`, {});
    await refresh();
  }));
  $("blind-export").addEventListener("click", () => attempt(async () => {
    const result = await api("POST", `${pieceUrl()}/blind/export`, {});
    $("blind-result").hidden = false;
    $("blind-result").textContent = `Wrote ${result.folder}/key.json and answers.json\n` +
      `Score them with: music-transformer compare score ${result.folder} ${result.folder}/answers.json`;
  }));
}
