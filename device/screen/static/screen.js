// The kiosk screen: the agent's server-sent events applied to the page the server drew, and
// the staff's actions (settle a referral with a PIN; a handheld's scan, vehicle and manual
// registration) sent back as POSTs with the page's token. An ID number typed by hand is kept
// in this script only, shown masked, and never put in the page.
"use strict";

(() => {
  const body = document.body;
  const byId = (id) => document.getElementById(id);
  const handheld = body.dataset.form === "handheld";
  const STAFF_IDLE_MS = 60_000; // the staff panel closes, forgetting the PIN, when left alone
  const PIN_LONGEST = 12;
  const ID_LENGTH = 18;
  const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]; // MOD 11-2
  let offsetMs = Number(body.dataset.nowMs) - Date.now(); // the device's clock, corrected
  let clock = formatter(body.dataset.timezone);
  let shownReferral = null; // the referral on screen, if one is
  let dismissed = false; // a handheld's staff tapped the decision away
  const staff = { open: false, checkinId: null, action: null, reason: null, pin: "", timer: 0 };
  let typedId = "";

  function formatter(timeZone) {
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    return new Intl.DateTimeFormat("zh-CN", timeZone ? { ...options, timeZone } : options);
  }

  function tick() {
    byId("clock").textContent = clock.format(new Date(Date.now() + offsetMs));
  }

  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  // ---- what the main area shows: the staff panel, a decision, or the idle or handheld panel

  function layout() {
    const deciding = body.dataset.outcome !== "idle" && !dismissed;
    body.dataset.view = staff.open ? "staff" : deciding ? "decision" : "panel";
    if (byId("staff")) byId("staff").hidden = !staff.open;
    byId("decision").hidden = staff.open || !deciding;
    byId("idle").hidden = staff.open || deciding || handheld;
    if (handheld) byId("handheld").hidden = staff.open || deciding;
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

  function fact(name, present) {
    byId("fact-" + name).hidden = !present;
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
    byId("staff-zh").textContent = view.staff ? view.staff.zh : "";
    byId("staff-en").textContent = view.staff ? view.staff.en : "";
    fact("staff", view.staff);
    shownReferral = view.checkin_id || null;
    dismissed = false;
    body.dataset.outcome = view.outcome;
    layout();
  }

  function idle() {
    shownReferral = null;
    body.dataset.outcome = "idle";
    layout();
  }

  // ---- the staff's actions: POSTs with the page's token ------------------------------------

  async function post(path, payload) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Screen-Token": body.dataset.token },
      body: JSON.stringify(payload),
    });
    if (response.ok) return null;
    try {
      return (await response.json()).detail;
    } catch {
      return `${response.status} ${response.statusText}`;
    }
  }

  function pressed(container, attribute, value) {
    for (const button of byId(container).querySelectorAll(`[${attribute}]`)) {
      button.setAttribute("aria-pressed", String(button.getAttribute(attribute) === value));
    }
  }

  // ---- staff settle a referral ---------------------------------------------------------------

  let referrals = [];

  function drawReferrals() {
    const list = byId("referrals");
    if (!list) return;
    if (!referrals.some((item) => item.checkin_id === staff.checkinId)) {
      staff.checkinId = referrals.length ? referrals[0].checkin_id : null;
    }
    list.replaceChildren(
      ...referrals.map((item) => {
        const button = element("button", "referral");
        button.type = "button";
        button.dataset.id = item.checkin_id;
        button.setAttribute("aria-pressed", String(item.checkin_id === staff.checkinId));
        button.append(
          element("span", "at", item.at),
          element("span", "holder", item.holder || ""),
          element("span", "why", `${item.reason.zh} ${item.reason.en}`),
        );
        button.addEventListener("click", () => {
          staff.checkinId = item.checkin_id;
          drawReferrals();
        });
        const row = element("li");
        row.append(button);
        return row;
      }),
    );
    byId("no-referrals").hidden = referrals.length > 0;
    const waiting = byId("waiting");
    waiting.textContent = String(referrals.length);
    waiting.hidden = referrals.length === 0;
    drawStaff();
  }

  function drawStaff() {
    byId("pin-shown").textContent = "●".repeat(staff.pin.length);
    pressed("staff-actions", "data-action", staff.action);
    pressed("staff-reasons", "data-reason", staff.reason);
    byId("staff-confirm").disabled = !(
      staff.checkinId && staff.action && staff.reason && staff.pin.length >= 6
    );
  }

  function staffTouched() {
    clearTimeout(staff.timer);
    staff.timer = setTimeout(closeStaff, STAFF_IDLE_MS);
  }

  function openStaff() {
    staff.open = true;
    staff.checkinId = shownReferral || staff.checkinId;
    byId("staff-error").textContent = "";
    drawReferrals();
    staffTouched();
    layout();
  }

  function closeStaff() {
    clearTimeout(staff.timer);
    Object.assign(staff, { open: false, action: null, reason: null, pin: "" });
    byId("staff-error").textContent = "";
    drawStaff();
    layout();
  }

  function pinKey(key) {
    if (key === "Backspace") staff.pin = staff.pin.slice(0, -1);
    else if (/^[0-9]$/.test(key) && staff.pin.length < PIN_LONGEST) staff.pin += key;
    staffTouched();
    drawStaff();
  }

  async function confirmStaff() {
    const button = byId("staff-confirm");
    button.disabled = true;
    const { checkinId, action, reason, pin } = staff;
    staff.pin = "";
    drawStaff();
    const error = await post("/staff/decide", { checkin_id: checkinId, action, reason, pin });
    if (error) {
      byId("staff-error").textContent = error;
      staffTouched();
    } else {
      closeStaff();
    }
  }

  if (byId("staff")) {
    byId("staff-open").addEventListener("click", openStaff);
    byId("staff-close").addEventListener("click", closeStaff);
    byId("staff-confirm").addEventListener("click", confirmStaff);
    for (const button of byId("pin-pad").querySelectorAll("[data-key]")) {
      button.addEventListener("click", () => pinKey(button.dataset.key));
    }
    for (const button of byId("staff-actions").querySelectorAll("[data-action]")) {
      button.addEventListener("click", () => {
        staff.action = button.dataset.action;
        staffTouched();
        drawStaff();
      });
    }
    for (const button of byId("staff-reasons").querySelectorAll("[data-reason]")) {
      button.addEventListener("click", () => {
        staff.reason = button.dataset.reason;
        staffTouched();
        drawStaff();
      });
    }
  }

  // ---- a handheld: scan, vehicle, registration by hand ---------------------------------------

  function drawHandheld(view) {
    byId("scan").dataset.scanning = view.scanning ? "yes" : "no";
    const vehicle = view.vehicle;
    byId("vehicle-closed").hidden = Boolean(vehicle);
    byId("vehicle-open").hidden = !vehicle;
    byId("vehicle-plate").textContent = vehicle ? vehicle.plate : "";
    const occupants = vehicle ? vehicle.occupants : [];
    byId("vehicle-count").textContent = String(occupants.length);
    byId("occupants").replaceChildren(
      ...occupants.map((item) => {
        const row = element("li", "occupant");
        row.dataset.outcome = item.outcome;
        row.append(
          element("span", "headline", `${item.headline.zh} ${item.headline.en}`),
          element("span", "holder", item.holder || ""),
          element("span", "why", item.staff ? item.staff.zh : item.reason.zh),
        );
        return row;
      }),
    );
  }

  function maskedId(typed) {
    return typed.slice(0, 4) + "*".repeat(Math.max(0, typed.length - 4));
  }

  function idIsValid(typed) {
    if (!/^[0-9]{17}[0-9X]$/.test(typed)) return false;
    let sum = 0;
    for (let index = 0; index < 17; index += 1) sum += Number(typed[index]) * ID_WEIGHTS[index];
    return "10X98765432"[sum % 11] === typed[17];
  }

  function drawTypedId() {
    byId("manual-shown").textContent = maskedId(typedId);
    const valid = idIsValid(typedId);
    byId("manual-submit").disabled = !valid;
    let hint = `${typedId.length} / ${ID_LENGTH}`;
    if (typedId.length === ID_LENGTH && !valid) hint = "校验位不符 · The check character does not match";
    byId("manual-hint").textContent = hint;
  }

  function idKey(key) {
    if (key === "Backspace") typedId = typedId.slice(0, -1);
    else if (/^[0-9X]$/.test(key) && typedId.length < ID_LENGTH) typedId += key;
    drawTypedId();
  }

  function showTab(name) {
    for (const tab of ["vehicle", "manual"]) {
      byId(`tab-${tab}`).hidden = tab !== name;
      byId(`tab-${tab}-button`).setAttribute("aria-pressed", String(tab === name));
    }
  }

  async function handheldAction(path, payload) {
    const error = await post(path, payload);
    byId("handheld-error").textContent = error || "";
    return !error;
  }

  if (handheld) {
    byId("scan").addEventListener("click", () => handheldAction("/handheld/scan", {}));
    byId("vehicle-start").addEventListener("click", async () => {
      if (await handheldAction("/handheld/vehicle", { plate: byId("plate").value })) {
        byId("plate").value = "";
      }
    });
    byId("vehicle-end").addEventListener("click", () => handheldAction("/handheld/vehicle/end", {}));
    byId("tab-vehicle-button").addEventListener("click", () => showTab("vehicle"));
    byId("tab-manual-button").addEventListener("click", () => showTab("manual"));
    for (const button of byId("manual-pad").querySelectorAll("[data-key]")) {
      button.addEventListener("click", () => idKey(button.dataset.key));
    }
    byId("manual-submit").addEventListener("click", async () => {
      const typed = typedId;
      if (await handheldAction("/handheld/manual", { id_number: typed })) typedId = "";
      drawTypedId();
    });
    byId("decision").addEventListener("click", () => {
      dismissed = true;
      layout();
    });
    drawTypedId();
  }

  // A keyboard, where one is fitted, types into whichever keypad is showing.
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    const key = event.key.length === 1 ? event.key.toUpperCase() : event.key;
    if (staff.open) pinKey(key);
    else if (handheld && !byId("tab-manual").hidden && !byId("handheld").hidden) idKey(key);
  });

  function panels(view) {
    if (view.referrals !== undefined && byId("staff")) {
      referrals = view.referrals;
      drawReferrals();
    }
    if (view.handheld !== undefined && handheld) drawHandheld(view.handheld);
  }

  const stream = new EventSource("/events"); // reconnects by itself when the agent restarts
  stream.addEventListener("status", (message) => status(JSON.parse(message.data)));
  stream.addEventListener("decision", (message) => decision(JSON.parse(message.data)));
  stream.addEventListener("panels", (message) => panels(JSON.parse(message.data)));
  stream.addEventListener("idle", idle);
  stream.addEventListener("open", () => { byId("warn-connection").hidden = true; });
  stream.addEventListener("error", () => { byId("warn-connection").hidden = false; });
  setInterval(tick, 1000);
  layout();
})();
