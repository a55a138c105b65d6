// The dashboard's little script: pages marked data-refresh reload themselves while idle, and
// buttons marked data-confirm ask first. Every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const seconds = Number(document.body.dataset.refresh || 0);
  if (seconds > 0) {
    let typing = false;
    document.addEventListener("input", () => { typing = true; });
    setInterval(() => {
      if (!typing && document.visibilityState === "visible") window.location.reload();
    }, seconds * 1000);
  }
  for (const button of document.querySelectorAll("[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  }
});

// ---- flows: a new level has other groups, so changing it asks again without the old group ----
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.flow-filters");
  if (!form) return;
  form.elements.level.addEventListener("change", () => {
    form.elements.group.disabled = true;
    form.requestSubmit();
  });
});

// ---- screening (screening*.html): a job's key kept by this tab, and its progress ----
// The key is shown once, on the page that answers the upload; the tab's session storage keeps
// it (gone when the tab closes) to fill in the forms that ask for names.
document.addEventListener("DOMContentLoaded", () => {
  const keyName = (id) => `sentinel-screening-key:${id}`;
  const shownKey = document.querySelector("input[data-screening-key]");
  if (shownKey) sessionStorage.setItem(keyName(shownKey.dataset.screeningKey), shownKey.value);
  for (const input of document.querySelectorAll("input[data-key-for]")) {
    if (!input.value) input.value = sessionStorage.getItem(keyName(input.dataset.keyFor)) || "";
  }
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const said = document.getElementById("copied");
      source.select();
      try {
        await navigator.clipboard.writeText(source.value);
        said.textContent = "已复制 Copied";
      } catch {
        said.textContent = "请手动复制 Select it and copy it by hand";
      }
    });
  }
  for (const input of document.querySelectorAll("input[type=file][data-max-bytes]")) {
    input.addEventListener("change", () => {
      const tooLarge = [...input.files].some((file) => file.size > Number(input.dataset.maxBytes));
      input.setCustomValidity(tooLarge ? input.dataset.tooLarge : "");
      input.reportValidity();
    });
  }
  const watched = document.querySelector("[data-progress-url]");
  if (!watched) return;
  const bar = document.getElementById("progress");
  const text = document.getElementById("progress-text");
  const poll = async () => {
    try {
      const response = await fetch(watched.dataset.progressUrl, { headers: { Accept: "application/json" } });
      if (response.status === 404) return;
      const job = await response.json();
      if (job.status === "done" || job.status === "failed") {
        window.location.reload();
        return;
      }
      bar.max = job.total;
      bar.value = job.processed;
      text.textContent = `${job.status} · ${job.processed.toLocaleString()} / ${job.total.toLocaleString()}`;
    } catch {
      // the host is away for a moment, or the session ended: the next poll says
    }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
});
