// The console page: xterm.js on Proxboard's WebSocket (the messages are described in app/containers/console.py).
(() => {
  'use strict';
  const box = document.getElementById('console');
  if (!box) return;

  // xterm.js writes its theme and cell sizes into <style> elements, which the Content-Security-Policy refuses (no
  // inline styles), whatever their type. Here a <style> it asks for is a hidden <console-style> holding the text,
  // and the text goes to a constructed stylesheet, which the policy allows.
  const makeElement = document.createElement;
  document.createElement = function (name, options) {
    if (String(name).toLowerCase() !== 'style') return makeElement.call(this, name, options);
    const holder = makeElement.call(this, 'console-style', options);
    holder.hidden = true;
    const sheet = new CSSStyleSheet();
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    Object.defineProperty(holder, 'sheet', { get: () => sheet });
    new MutationObserver(() => sheet.replaceSync(holder.textContent))
      .observe(holder, { childList: true, characterData: true, subtree: true });
    return holder;
  };

  const state = document.getElementById('console-state');
  const again = document.getElementById('console-reconnect');
  // lineHeight above 1: at 1 an underscore falls below its cell and is cut off
  const term = new Terminal({ cursorBlink: true, fontSize: 14, lineHeight: 1.2, scrollback: 5000,
                              fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace' });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();

  const bytes = new TextEncoder();
  let socket = null;
  let connected = false;
  let reason = '';
  let ping = null;

  const show = (text, kind) => { state.textContent = text; state.dataset.state = kind; };
  const send = (message) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(message); };

  function connect() {
    again.hidden = true;
    reason = '';
    show('Connecting…', 'connecting');
    const path = new URL(box.dataset.path, location.href).pathname;  // werkzeug writes a WebSocket rule's URL in full
    socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`);
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (event) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      const news = JSON.parse(event.data);
      if (news.type === 'connected') {
        connected = true;
        show('Connected', 'connected');
        send(`1:${term.cols}:${term.rows}:`);
        term.focus();
      } else if (news.type === 'closed') {
        reason = news.reason;
        socket.close();
      }
    };
    socket.onclose = () => {
      connected = false;
      clearInterval(ping);
      show(reason || 'The console closed.', 'closed');
      again.hidden = false;
    };
    ping = setInterval(() => send('2'), 30000);
  }

  term.onData((data) => { if (connected) send(`0:${bytes.encode(data).length}:${data}`); });
  term.onResize(({ cols, rows }) => { if (connected) send(`1:${cols}:${rows}:`); });
  new ResizeObserver(() => fit.fit()).observe(box);  // at most once a frame, before it is painted
  again.addEventListener('click', connect);
  connect();
})();
