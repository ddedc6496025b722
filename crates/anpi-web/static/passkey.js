// Passkeys (WebAuthn): adding one ([data-passkey=register] forms) and signing in with one
// ([data-passkey=login] blocks). Options come from the server as JSON with binary fields in
// base64url; the credential goes back the same way, with the page's CSRF token. Without
// WebAuthn (or JavaScript) these parts stay hidden and the rest of the page works.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) return;

  function toBytes(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64u(buf) {
    var b = new Uint8Array(buf), s = "";
    for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      var json = (r.headers.get("Content-Type") || "").indexOf("application/json") >= 0;
      return (json ? r.json() : Promise.resolve({})).then(function (data) {
        if (!r.ok || !json) {
          var e = new Error(data.error || "");
          e.data = data;
          throw e;
        }
        return data;
      });
    });
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return { type: c.type, id: toBytes(c.id), transports: c.transports };
    });
  }

  function showError(root, e) {
    var box = root.querySelector("[data-passkey-error]");
    var msg = (e && e.message) || root.getAttribute("data-error") || "error";
    // The browser's own errors (cancelled, timed out) are not ours to show verbatim.
    if (!(e && e.data)) msg = root.getAttribute("data-error") || msg;
    if (box) {
      box.textContent = msg;
      box.hidden = false;
    }
    if (e && e.data && e.data.next) location.assign(e.data.next);
  }

  function register(form) {
    var button = form.querySelector("button[type=submit]");
    form.hidden = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var csrf = form.getAttribute("data-csrf");
      var password = form.querySelector("input[name=password]");
      var name = form.querySelector("input[name=name]");
      var box = form.querySelector("[data-passkey-error]");
      if (box) box.hidden = true;
      button.disabled = true;
      post(form.getAttribute("data-options"), { csrf: csrf, password: password ? password.value : "" })
        .then(function (opts) {
          var pk = opts.publicKey;
          pk.challenge = toBytes(pk.challenge);
          pk.user.id = toBytes(pk.user.id);
          pk.excludeCredentials = withIds(pk.excludeCredentials);
          return navigator.credentials.create({ publicKey: pk });
        })
        .then(function (cred) {
          return post(form.getAttribute("data-finish"), {
            csrf: csrf,
            name: name ? name.value : "",
            credential: {
              id: cred.id,
              rawId: toB64u(cred.rawId),
              type: cred.type,
              response: {
                clientDataJSON: toB64u(cred.response.clientDataJSON),
                attestationObject: toB64u(cred.response.attestationObject)
              }
            }
          });
        })
        .then(function (res) {
          var codes = res.codes || [];
          var panel = document.getElementById("passkey-codes");
          if (!codes.length || !panel) {
            location.assign(res.next || "/");
            return;
          }
          var list = panel.querySelector("ul");
          codes.forEach(function (c) {
            var li = document.createElement("li"), code = document.createElement("code");
            code.textContent = c;
            li.appendChild(code);
            list.appendChild(li);
          });
          var next = document.getElementById("passkey-continue");
          if (next) next.setAttribute("href", res.next || "/");
          form.hidden = true;
          panel.hidden = false;
        })
        .catch(function (e) {
          button.disabled = false;
          showError(form, e);
        });
    });
  }

  function login(root) {
    var button = root.querySelector("button");
    root.hidden = false;
    button.addEventListener("click", function () {
      var csrf = root.getAttribute("data-csrf");
      var box = root.querySelector("[data-passkey-error]");
      if (box) box.hidden = true;
      button.disabled = true;
      post(root.getAttribute("data-options"), { csrf: csrf })
        .then(function (opts) {
          var pk = opts.publicKey;
          pk.challenge = toBytes(pk.challenge);
          pk.allowCredentials = withIds(pk.allowCredentials);
          return navigator.credentials.get({ publicKey: pk });
        })
        .then(function (cred) {
          var r = cred.response;
          return post(root.getAttribute("data-finish"), {
            csrf: csrf,
            credential: {
              id: cred.id,
              rawId: toB64u(cred.rawId),
              type: cred.type,
              response: {
                clientDataJSON: toB64u(r.clientDataJSON),
                authenticatorData: toB64u(r.authenticatorData),
                signature: toB64u(r.signature),
                userHandle: r.userHandle ? toB64u(r.userHandle) : null
              }
            }
          });
        })
        .then(function (res) {
          location.assign(res.next || "/");
        })
        .catch(function (e) {
          button.disabled = false;
          showError(root, e);
        });
    });
  }

  function start() {
    var forms = document.querySelectorAll("[data-passkey=register]");
    for (var i = 0; i < forms.length; i++) register(forms[i]);
    var logins = document.querySelectorAll("[data-passkey=login]");
    for (var j = 0; j < logins.length; j++) login(logins[j]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
