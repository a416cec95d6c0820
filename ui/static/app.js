() => {
  // The chat's behaviour (ui/chat.py lays it out). Clicks inside answers: a citation opens its
  // source card, a suggested question is sent, "Copy" copies clean text, "Open the document" asks
  // the server for the whole document. Each new reply scrolls so that its start is in view.
  const live = document.getElementById('announce');
  if (live) { live.setAttribute('aria-live', 'polite'); live.setAttribute('role', 'status'); }
  const showSource = (id) => {
    let card = document.getElementById(id);
    if (!card) return;
    if (card.classList.contains('anchor')) card = card.closest('.src');
    const details = card.closest('details');
    if (details) details.open = true;
    card.scrollIntoView({block: 'nearest'});
    card.focus({preventScroll: true});
    card.classList.add('flash');
    setTimeout(() => card.classList.remove('flash'), 1800);
  };
  const send = (text) => {
    const box = document.querySelector('#question textarea');
    box.value = text;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#send').click(), 60);
  };
  const copy = (text, button) => {
    const done = () => { button.textContent = 'Copied'; setTimeout(() => button.textContent = 'Copy', 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      const area = document.createElement('textarea');
      area.value = text; document.body.appendChild(area); area.select();
      document.execCommand('copy'); area.remove(); done();
    }
  };
  // A new reply (the working bubble, then the answer that replaces it) is scrolled so that its
  // first line is in view: an answer is read from its start, and an urgent one is never left
  // below the fold. Streamed sentences of the same reply do not scroll again.
  let seen = '';
  const follow = () => {
    const replies = document.querySelectorAll('#chat .reply');
    const last = replies[replies.length - 1];
    if (!last) { seen = ''; return; }
    const state = replies.length + (last.classList.contains('reply-working') ? 'w' : 'r');
    if (state === seen) return;
    seen = state;
    const bubble = last.closest('.message-row, .message') || last;
    let pane = bubble.parentElement;  // the chat's own scrolling box: its start at the top
    while (pane && pane.id !== 'chat' && !(pane.scrollHeight > pane.clientHeight + 2 &&
           /(auto|scroll)/.test(getComputedStyle(pane).overflowY))) pane = pane.parentElement;
    if (pane && pane.id !== 'chat') {
      pane.scrollTop += bubble.getBoundingClientRect().top - pane.getBoundingClientRect().top - 8;
    }
    const top = bubble.getBoundingClientRect().top;  // then the page, only if it is out of view
    if (top < 0 || top > window.innerHeight - 120) {
      bubble.scrollIntoView({block: 'start', behavior: 'instant'});
    }
  };
  const watch = () => {
    const chat = document.getElementById('chat');
    if (!chat) { setTimeout(watch, 200); return; }
    new MutationObserver(follow).observe(chat, {childList: true, subtree: true});
  };
  watch();
  document.addEventListener('focusin', (event) => {  // a citation reached by keyboard
    const ref = event.target.closest && event.target.closest('.reply a.ref');
    if (!ref) return;
    const card = document.getElementById(ref.getAttribute('href').slice(1));
    const details = card && card.closest('details');
    if (details) details.open = true;
  });
  document.addEventListener('click', (event) => {
    const ref = event.target.closest('.reply a.ref');
    if (ref) { event.preventDefault(); showSource(ref.getAttribute('href').slice(1)); return; }
    const next = event.target.closest('.reply button.suggest');
    if (next) { send(next.textContent); return; }
    const copier = event.target.closest('.reply button.copy-text');
    if (copier) { copy(copier.closest('.reply').querySelector('.plain').textContent, copier); return; }
    const back = event.target.closest('button.back-to-answer');
    if (back && window.lastOpener) {
      window.lastOpener.scrollIntoView({block: 'center'}); window.lastOpener.focus(); return;
    }
    const opener = event.target.closest('.reply button.open-doc');
    if (opener) {
      window.lastOpener = opener;
      const box = document.querySelector('#open-doc textarea');
      box.value = opener.id.replace(/^a[0-9]+-doc-/, '') + '|' + Date.now();
      box.dispatchEvent(new Event('input', {bubbles: true}));
    }
  });
}
