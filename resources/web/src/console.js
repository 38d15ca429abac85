// The fvm web console: one VM's screen (noVNC over the host's WebSocket bridge
// to QEMU's VNC socket) and serial console (xterm.js over a session of the
// host's serial multiplexer). The page lives at /vm/NAME/; the host has traded
// the link's token for a cookie scoped to that path, which every request here
// carries. Whenever a connection is down the page polls the VM's state and
// connects again once it runs, so it follows reboots, stops and starts.
import RFB from '@novnc/novnc';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';

const name = decodeURIComponent(location.pathname.split('/')[2] || '');
const base = `/vm/${encodeURIComponent(name)}/`;
const wsBase = `ws://${location.host}${base}ws/`;
const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

// What the host last said: running, stopped, ... or one of ours:
// offline (no answer), expired (403: the host restarted), removed (404).
let vmState = '';
let tab = location.hash === '#serial' ? 'serial' : 'screen';

// The screen.
let rfb = null;
let screenUp = false;
function connectScreen() {
  if (rfb) return;
  rfb = new RFB($('screen'), wsBase + 'vnc', { shared: true });
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.background = '#000';
  rfb.addEventListener('connect', () => {
    screenUp = true;
    if (tab === 'screen') rfb.focus();
    update();
  });
  rfb.addEventListener('disconnect', () => {
    rfb = null;
    screenUp = false;
    update();
    watch();
  });
}

// The serial console.
const term = new Terminal({
  convertEol: false,
  scrollback: 10000,
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  theme: { background: '#101010' },
});
const fit = new FitAddon();
term.loadAddon(fit);
let sock = null;
let serialUp = false;
function connectSerial() {
  if (sock) return;
  const ws = new WebSocket(wsBase + 'serial?tail=3000');
  ws.binaryType = 'arraybuffer';
  sock = ws;
  ws.onopen = () => {
    term.reset(); // the session starts with the earlier output again
    serialUp = true;
    update();
  };
  ws.onmessage = (e) => term.write(new Uint8Array(e.data));
  ws.onclose = () => {
    if (sock === ws) sock = null;
    serialUp = false;
    update();
    watch();
  };
}
const send = (bytes) => {
  if (sock && sock.readyState === WebSocket.OPEN) sock.send(bytes);
};
term.onData((d) => send(encoder.encode(d)));
term.onBinary((d) => send(Uint8Array.from(d, (c) => c.charCodeAt(0))));

// Polling while something is down: connect what the VM offers now.
let polling = false;
async function poll() {
  try {
    const r = await fetch(base + 'state', { cache: 'no-store' });
    if (r.status === 403) {
      vmState = 'expired';
    } else if (r.status === 404) {
      vmState = 'removed';
    } else if (r.ok) {
      const s = await r.json();
      vmState = s.state;
      if (s.display) connectScreen();
      if (s.serial) connectSerial();
    } else {
      vmState = 'offline';
    }
  } catch (e) {
    vmState = 'offline';
  }
  update();
  return vmState !== 'expired' && vmState !== 'removed';
}
async function watch() {
  if (polling) return;
  polling = true;
  while ((!screenUp || !serialUp) && (await poll())) {
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  polling = false;
}

// The status line, for the tab shown.
function update() {
  const up = tab === 'screen' ? screenUp : serialUp;
  const s = $('status');
  let kind = 'connecting';
  let text = 'Connecting…';
  if (up) {
    kind = 'connected';
    text = tab === 'screen' ? 'Connected' : 'Connected · type to talk to the serial console';
  } else if (vmState === 'stopped' || vmState === 'error') {
    kind = 'stopped';
    text = `${name} is ${vmState}: start it with \`fvm start ${name}\` or from the menu; this page connects when it runs`;
  } else if (vmState === 'offline') {
    kind = 'offline';
    text = 'The fvm host does not answer: retrying…';
  } else if (vmState === 'expired') {
    kind = 'expired';
    text = `This page's link has expired (the fvm host restarted): run \`fvm display ${name}\` for a new one`;
  } else if (vmState === 'removed') {
    kind = 'removed';
    text = `${name} was removed`;
  } else if (vmState) {
    text = `${name} is ${vmState}: connecting…`;
  }
  s.dataset.state = kind;
  s.textContent = text;
  document.body.dataset.state = kind;
  $('ctrl-alt-del').disabled = !screenUp;
}

function show(which) {
  tab = which;
  for (const t of ['screen', 'serial']) {
    $(t).hidden = t !== which;
    $('tab-' + t).setAttribute('aria-selected', String(t === which));
  }
  $('ctrl-alt-del').hidden = which !== 'screen';
  history.replaceState(null, '', which === 'serial' ? '#serial' : location.pathname);
  if (which === 'serial') {
    fit.fit();
    term.focus();
  } else if (rfb) {
    rfb.focus();
  }
  update();
}

document.title = `${name} · fvm`;
$('vm-name').textContent = name;
$('tab-screen').addEventListener('click', () => show('screen'));
$('tab-serial').addEventListener('click', () => show('serial'));
$('ctrl-alt-del').addEventListener('click', () => rfb && rfb.sendCtrlAltDel());
term.open($('serial'));
window.addEventListener('resize', () => tab === 'serial' && fit.fit());
window.addEventListener('hashchange', () => show(location.hash === '#serial' ? 'serial' : 'screen'));
show(tab);
watch();

// For people debugging a console (and for fvm's browser tests).
window.fvm = {
  name,
  get rfb() { return rfb; },
  term,
  get status() { return $('status').dataset.state; },
  serialText() {
    const b = term.buffer.active;
    const lines = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
    return lines.join('\n');
  },
};
