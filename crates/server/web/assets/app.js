// tandem dashboard: theme toggle and in-place lead moves. Everything works
// without this script too: forms post and the server redirects back.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("tandem-theme"); } catch (e) { /* private mode */ }
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);

  function currentTheme() {
    var t = root.getAttribute("data-theme");
    if (t) return t;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var next = currentTheme() === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem("tandem-theme", next); } catch (e) { /* ignore */ }
      });
    }

    // SLA inbox: post the move with fetch and swap the lead's card for the
    // server's answer; on any failure fall back to a normal form post.
    var inbox = document.getElementById("inbox");
    if (!inbox || !window.fetch) return;
    inbox.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (!form.classList || !form.classList.contains("move")) return;
      var button = ev.submitter;
      ev.preventDefault();
      var body = new URLSearchParams(new FormData(form));
      if (button && button.name) body.set(button.name, button.value);
      var card = form.closest("article.lead");
      var buttons = card ? card.querySelectorAll("button") : [];
      buttons.forEach(function (b) { b.disabled = true; });
      // getAttribute: `form.action` would be the button named "action".
      fetch(form.getAttribute("action"), {
        method: "POST",
        headers: { "X-Requested-With": "fetch", "Content-Type": "application/x-www-form-urlencoded" },
        body: body.toString(),
        credentials: "same-origin"
      }).then(function (res) {
        if (res.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return null; }
        var type = res.headers.get("Content-Type") || "";
        if (type.indexOf("text/html") !== 0) throw new Error("unexpected answer");
        return res.text().then(function (html) { return { status: res.status, html: html }; });
      }).then(function (r) {
        if (r === null || !card) return;
        var tpl = document.createElement("template");
        tpl.innerHTML = r.html.trim();
        var fresh = tpl.content.firstElementChild;
        if (!fresh) throw new Error("empty answer");
        if (r.status === 200) { card.replaceWith(fresh); return; }
        if (r.status !== 422) throw new Error("status " + r.status);
        // The rules refused the move: say why on the card, keep the forms.
        var old = card.querySelector(".flash.error");
        if (old) old.remove();
        var actions = card.querySelector(".actions");
        card.insertBefore(fresh, actions);
        buttons.forEach(function (b) { b.disabled = false; });
      }).catch(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        // Full-page post as the fallback.
        if (button && button.name) {
          var hidden = document.createElement("input");
          hidden.type = "hidden"; hidden.name = button.name; hidden.value = button.value;
          form.appendChild(hidden);
        }
        form.submit();
      });
    });
  });
})();
