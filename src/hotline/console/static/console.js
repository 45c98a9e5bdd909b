// Hotline console: live updates, the alarm, ticking clocks. No inline script anywhere
// (the CSP allows only files from this origin); htmx does the fetching and swapping.
(function () {
  "use strict";
  const body = document.body;
  const serverOffset = (Number(body.dataset.now) || Date.now()) - Date.now();

  // One event stream per page; each named event makes the fragments concerned refetch.
  if (body.dataset.events && window.EventSource) {
    const source = new EventSource(body.dataset.events);
    for (const kind of ["call", "conversation", "alarm", "log"]) {
      source.addEventListener(kind, () => htmx.trigger(body, "hl-" + kind));
    }
    source.addEventListener("open", () => {
      body.dataset.live = "yes";
      htmx.trigger(body, "hl-call"); // catch up on anything missed while reconnecting
      htmx.trigger(body, "hl-conversation");
      htmx.trigger(body, "hl-alarm");
    });
    source.addEventListener("error", () => { body.dataset.live = "no"; });
    source.addEventListener("logout", () => { window.location.assign("/login"); });
  }

  // A refreshed fragment that would show the same thing is not swapped in: focus and
  // anything being typed stay where they are.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const detail = event.detail;
    if (detail.xhr.status >= 400) return;
    const fresh = /data-version="([^"]*)"/.exec(detail.serverResponse || "");
    const current = detail.target.querySelector("[data-version]");
    if (fresh && current && current.getAttribute("data-version") === fresh[1]) {
      detail.shouldSwap = false;
    }
  });

  // A refusal shown by one action is cleared when the operator tries another.
  document.addEventListener("htmx:beforeRequest", (event) => {
    // (not when the form is itself in the flash: a confirmation asked there)
    if (event.detail.elt.tagName === "FORM" && !event.detail.elt.closest("#flash")) {
      for (const id of ["flash", "alarm-error"]) {
        const area = document.getElementById(id);
        if (area) area.replaceChildren();
      }
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target.id === "flash" || target.id === "alarm-error") {
      target.scrollIntoView({ block: "nearest" });
    }
    // A call just placed is shown where the operator is looking, marked, and
    // the reason field is emptied for the next call.
    if (target.id === "calls" && !target.querySelector("[data-just-placed]") && body.dataset.placed) {
      // a live refresh keeps the mark on the call just placed (it was not re-scrolled)
      const again = target.querySelector('li.call[data-call="' + body.dataset.placed + '"]');
      if (again) {
        again.classList.add("just-placed");
        again.setAttribute("data-just-placed", "yes");
      }
      return;
    }
    const placed = target.querySelector && target.querySelector("[data-just-placed]");
    if (placed) {
      body.dataset.placed = placed.dataset.call;
      const flash = document.getElementById("flash");
      if (flash) flash.replaceChildren();
      const reason = document.getElementById("call-reason");
      if (reason) reason.value = "";
      // (the focus stays on the desk button; the list is a polite live region)
      placed.scrollIntoView({ block: "center" });
    }
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (event.detail.successful && form.matches && form.matches("form[data-reset-on-success]")) {
      form.reset();
      const first = form.querySelector("textarea, input:not([type=hidden])");
      if (first) first.focus();
    }
  });

  // Elapsed clocks tick every second (the server rendered their first value).
  function pad(n) { return String(n).padStart(2, "0"); }
  function elapsed(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? h + ":" + pad(m) + ":" + pad(sec) : m + ":" + pad(sec);
  }
  setInterval(() => {
    const now = Date.now() + serverOffset;
    for (const el of document.querySelectorAll("time.elapsed[data-since]")) {
      const until = el.dataset.until ? Number(el.dataset.until) : now;
      el.textContent = elapsed(until - Number(el.dataset.since));
    }
  }, 1000);

  // The alarm: sound, focus on "Answer", everything else inert until it is handled.
  const sound = document.getElementById("alarm-sound");
  let alarmFor = null;
  function alarmChanged() {
    const alarm = document.getElementById("alarm");
    const others = [document.querySelector("header.top"), document.getElementById("banner-slot"),
                    document.getElementById("main")];
    if (alarm) {
      document.documentElement.classList.add("alarm-on");
      for (const el of others) if (el) el.inert = true;
      if (alarmFor !== alarm.dataset.call) {
        alarmFor = alarm.dataset.call;
        const answer = alarm.querySelector("button.answer");
        if (answer) answer.focus();
      }
      if (sound && sound.paused) {
        sound.play().then(() => { body.dataset.sound = "on"; }).catch(() => {
          body.dataset.sound = "blocked";
          const enable = document.getElementById("sound-enable");
          if (enable) enable.hidden = false;
        });
      }
    } else {
      alarmFor = null;
      document.documentElement.classList.remove("alarm-on");
      for (const el of others) if (el) el.inert = false;
      if (sound && !sound.paused) { sound.pause(); sound.currentTime = 0; }
      body.dataset.sound = "off";
    }
  }
  document.addEventListener("htmx:afterSettle", alarmChanged);
  document.addEventListener("click", (event) => {
    if (event.target && event.target.id === "sound-enable" && sound) {
      sound.play().then(() => { event.target.hidden = true; body.dataset.sound = "on"; });
    }
  });
})();
