// Passkeys (WebAuthn): forms marked data-passkey="create" (register) or "get" (sign in).
// On submit: POST to data-options-url (CSRF header) for the options, ask the browser, put the answer (JSON,
// binary fields base64url, as py_webauthn reads it) in the form's hidden "credential" field, submit the form.
// The server verifies it and answers with a normal page; without JavaScript the form arrives empty and the
// server says a passkey needs JavaScript.
(function () {
  "use strict";

  function toBytes(value) {
    const base64 = value.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(value.length / 4) * 4, "=");
    const text = atob(base64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return null;
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 1) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map((item) => Object.assign({}, item, { id: toBytes(item.id) }));
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      allowCredentials: descriptors(json.allowCredentials),
    });
  }

  function credentialJSON(credential) {
    const response = credential.response;
    const out = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toBase64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(response.authenticatorData);
      out.response.signature = toBase64url(response.signature);
      out.response.userHandle = toBase64url(response.userHandle);
    }
    return JSON.stringify(out);
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
    if (error && error.name === "InvalidStateError") return "This passkey is already registered.";
    if (error && error.name === "SecurityError") return "Passkeys need this page to be opened by its host name over HTTPS.";
    return (error && error.message) || "The passkey request failed.";
  }

  async function run(form) {
    const mode = form.dataset.passkey;
    const response = await fetch(form.dataset.optionsUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    const json = await response.json();
    if (!response.ok) throw new Error(json.error || "The server refused the passkey request.");
    const credential = mode === "create"
      ? await navigator.credentials.create({ publicKey: creationOptions(json) })
      : await navigator.credentials.get({ publicKey: requestOptions(json) });
    form.querySelector('input[name="credential"]').value = credentialJSON(credential);
    form.submit();
  }

  function setUp(form) {
    const error = form.querySelector("[data-passkey-error]");
    const button = form.querySelector('button[type="submit"]');
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      if (error) { error.textContent = "This browser does not support passkeys."; error.hidden = false; }
      return;
    }
    form.addEventListener("submit", (event) => {
      if (form.querySelector('input[name="credential"]').value) return;
      event.preventDefault();
      if (error) error.hidden = true;
      button.disabled = true;
      run(form).catch((failure) => {
        button.disabled = false;
        if (error) { error.textContent = explain(failure); error.hidden = false; }
      });
    });
    form.dataset.passkeyReady = "true";  // a click before this posts the form without a passkey
  }

  document.querySelectorAll("form[data-passkey]").forEach(setUp);
}());
