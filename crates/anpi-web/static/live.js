// Live dashboard: refresh the numbers when an answer arrives. The page works without this.
(function () {
  var root = document.getElementById("live");
  if (!root || !window.EventSource) return;
  var src = new EventSource(root.getAttribute("data-events"));
  var busy = false;
  src.addEventListener("answer", function () {
    if (busy) return;
    busy = true;
    fetch(location.pathname + "?fragment=1", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html) root.innerHTML = html; })
      .finally(function () { busy = false; });
  });
})();
