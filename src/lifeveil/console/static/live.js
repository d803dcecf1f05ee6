// The transparency log's live view: ask the console for records newer than the newest shown,
// every few hundred milliseconds, and prepend them. Same origin, session cookie only.
"use strict";
(function () {
  const table = document.querySelector("#log tbody");
  const badge = document.getElementById("live-state");
  if (!table || !badge) return;
  const pollMs = Number(badge.dataset.pollMs) || 1000;
  const rows = () => Array.from(table.querySelectorAll("tr[data-seq]"));
  const newest = () => {
    const first = table.querySelector("tr[data-seq]");
    return first ? Number(first.dataset.seq) : -1;
  };
  const setState = (tr, name) => {
    const span = tr.querySelector(".state");
    if (!span || span.textContent === name) return;
    span.textContent = name;
    span.className = "state state-" + name.split(" ")[0];
  };
  // Records still shown get their current state; one no longer in the outbox was acked and
  // deleted by the agent.
  const refresh = (states, last) => {
    for (const tr of rows()) {
      const seq = Number(tr.dataset.seq);
      if (seq > last) continue;
      setState(tr, states[seq] || "acked (removed from outbox)");
    }
  };
  const pad = (n) => String(n).padStart(2, "0");
  const time = (us) => {
    const d = new Date(us / 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  };
  const cell = (text, cls) => {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  };
  const row = (e) => {
    const tr = document.createElement("tr");
    tr.dataset.seq = e.seq;
    tr.className = "fresh";
    const state = document.createElement("span");
    state.className = "state state-" + e.status.split(" ")[0];
    state.textContent = e.status;
    const stateCell = cell("");
    stateCell.appendChild(state);
    const seqCell = cell("", "num");
    const link = document.createElement("a");
    link.href = `/log/z/${e.seq}`;
    link.textContent = e.seq;
    seqCell.appendChild(link);
    tr.append(seqCell, cell(time(e.timestamp_us)), cell(time(e.queued_us)),
      cell(e.size + " B", "num"), stateCell);
    return tr;
  };
  async function poll() {
    try {
      const shown = rows();
      const last = newest();
      const first = shown.length ? Number(shown[shown.length - 1].dataset.seq) : last;
      const response = await fetch(`/api/log?after=${last}&first=${first}`,
        { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      refresh(body.states || {}, last);
      for (const e of body.entries) table.insertBefore(row(e), table.firstChild);
      if (body.entries.length) document.getElementById("log-empty")?.remove();
      for (const [key, value] of Object.entries(body.counters || {})) {
        const el = document.querySelector(`[data-counter="${key}"]`);
        if (el) el.textContent = value;
      }
      badge.textContent = "live";
      badge.className = "pill ok";
    } catch (err) {
      badge.textContent = "live view paused (" + err.message + ")";
      badge.className = "pill bad";
    }
    setTimeout(poll, pollMs);
  }
  setTimeout(poll, pollMs);
})();
