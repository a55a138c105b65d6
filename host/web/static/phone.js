// Citizens' pages: speak a check-in's decision (Chinese, then English), and keep the personal
// code fresh. Everything the pages say is on them already: this only adds voice and renewal.
"use strict";

(() => {
  const body = document.body;
  const byId = (id) => document.getElementById(id);
  const RETRY_MS = 5000; // a renewal that failed (no network) is tried again this soon

  // ---- voice: the browser's speech synthesis, where it has one ----------------------------
  function speech() {
    const lines = [[body.dataset.sayZh, "zh-CN"], [body.dataset.sayEn, "en-US"]];
    const speaks = "speechSynthesis" in window && typeof SpeechSynthesisUtterance === "function";
    if (!body.dataset.sayZh || !speaks) return;
    const say = () => {
      window.speechSynthesis.cancel();
      for (const [text, lang] of lines) {
        const utterance = new SpeechSynthesisUtterance(text);
        utterance.lang = lang;
        window.speechSynthesis.speak(utterance);
      }
    };
    // A browser may keep quiet until the page is touched: the button speaks again on a tap.
    const button = byId("speak");
    button.hidden = false;
    button.addEventListener("click", say);
    say();
  }

  // ---- the personal code: renewed in place before it expires ------------------------------
  function renewal() {
    let dueAt = 0;
    let timer = 0;
    const schedule = (delayMs) => {
      clearTimeout(timer);
      dueAt = Date.now() + delayMs;
      timer = setTimeout(renew, delayMs);
    };
    async function renew() {
      let code;
      try {
        const response = await fetch("/me/code.json", { cache: "no-store" });
        if (response.status === 401) {
          window.location.reload(); // the session ended: the page says how to sign in
          return;
        }
        if (!response.ok) throw new Error(`status ${response.status}`);
        code = await response.json();
      } catch {
        schedule(RETRY_MS);
        return;
      }
      byId("code").innerHTML = code.svg; // markup this host drew: a QR code as SVG
      body.dataset.colour = code.colour;
      for (const name of ["colour-zh", "colour-en", "test-zh", "test-en", "valid-until"]) {
        byId(name).textContent = code[name.replace("-", "_")];
      }
      schedule(code.renew_in_ms);
    }
    // A phone stops timers in the background: on coming back, a code past due is renewed now.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && Date.now() >= dueAt) renew();
    });
    schedule(Number(body.dataset.renewInMs));
  }

  if (body.dataset.page === "checkin") speech();
  if (body.dataset.page === "me") renewal();
})();
