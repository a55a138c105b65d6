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
