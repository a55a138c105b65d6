// The kiosk screen: the agent's server-sent events applied to the page the server drew.
"use strict";

(() => {
  const body = document.body;
  const byId = (id) => document.getElementById(id);
  let offsetMs = Number(body.dataset.nowMs) - Date.now(); // the device's clock, corrected
  let clock = formatter(body.dataset.timezone);

  function formatter(timeZone) {
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    return new Intl.DateTimeFormat("zh-CN", timeZone ? { ...options, timeZone } : options);
  }

  function tick() {
    byId("clock").textContent = clock.format(new Date(Date.now() + offsetMs));
  }

  function fact(name, present) {
    byId("fact-" + name).hidden = !present;
  }

  function status(view) {
    for (const id of ["venue", "idle-venue"]) byId(id).textContent = view.venue;
    document.title = view.venue;
    byId("online").dataset.online = view.online ? "yes" : "no";
    byId("warn-clock").hidden = view.clock_trusted;
    byId("warn-denylist").hidden = !view.deny_list_stale;
    byId("warn-service").hidden = !view.out_of_service;
    offsetMs = view.now_ms - Date.now();
    clock = formatter(view.timezone);
    tick();
  }

  function decision(view) {
    byId("headline-zh").textContent = view.headline.zh;
    byId("headline-en").textContent = view.headline.en;
    byId("reason-zh").textContent = view.reason.zh;
    byId("reason-en").textContent = view.reason.en;
    byId("holder").textContent = view.holder || "";
    fact("holder", view.holder);
    byId("test-zh").textContent = view.test ? view.test.zh : "";
    byId("test-en").textContent = view.test ? view.test.en : "";
    fact("test", view.test);
    byId("temperature").textContent = view.temperature || "";
    fact("temperature", view.temperature);
    byId("idle").hidden = true;
    byId("decision").hidden = false;
    body.dataset.outcome = view.outcome;
  }

  function idle() {
    byId("decision").hidden = true;
    byId("idle").hidden = false;
    body.dataset.outcome = "idle";
  }

  const stream = new EventSource("/events"); // reconnects by itself when the agent restarts
  stream.addEventListener("status", (message) => status(JSON.parse(message.data)));
  stream.addEventListener("decision", (message) => decision(JSON.parse(message.data)));
  stream.addEventListener("idle", idle);
  stream.addEventListener("open", () => { byId("warn-connection").hidden = true; });
  stream.addEventListener("error", () => { byId("warn-connection").hidden = false; });
  setInterval(tick, 1000);
})();
