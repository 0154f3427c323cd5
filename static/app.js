// Tessera: the only script. Copy buttons, closing the account menu, focus in
// confirmations, and the address of pages that show a secret once.
// Everything else works without JavaScript.
(function () {
  "use strict";

  function copyText(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (source) {
        var items = source.querySelectorAll("li");
        var text = items.length
          ? Array.prototype.map.call(items, function (li) { return li.textContent.trim(); }).join("\n")
          : source.textContent.trim();
        copyText(text, button);
      }
    }
    // Close open menus when clicking elsewhere.
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });

  // A page that answers a form post with a secret shown once (a new token, recovery
  // codes) says where it belongs; the address bar moves there, so reloading shows the
  // page without the secret instead of posting the form again.
  var canonical = document.querySelector("[data-canonical-path]");
  if (canonical && window.history && history.replaceState) {
    history.replaceState(null, "", canonical.getAttribute("data-canonical-path"));
  }

  // A confirmation its button opens (a popover) takes the focus on its first field or
  // its confirm button, so keyboard and screen-reader users land inside it; closing it
  // gives the focus back to the button.
  document.addEventListener("toggle", function (event) {
    var pop = event.target;
    if (event.newState === "open" && pop.classList && pop.classList.contains("confirm-pop")) {
      var first = pop.querySelector("input:not([type=hidden]), button[type=submit]");
      if (first) { first.focus(); }
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
        menu.removeAttribute("open");
        var summary = menu.querySelector("summary");
        if (summary) { summary.focus(); }
      });
    }
  });
})();
