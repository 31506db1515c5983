// Shows a token's decrypted content. Plaintext lives only in this dialog's DOM and in blob:
// URLs that are revoked as soon as the dialog closes; nothing is cached or stored.

import { api } from './api.js';
import { $, h, setText } from './dom.js';
import { describeError } from './errors.js';
import { formatBytes, formatTime } from './format.js';
import { notify, openModal } from './notices.js';

let objectUrl = null;
let openFor = null;

export function initViewer() {
  const dialog = $('viewer-dialog');
  dialog.querySelector('.js-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', discard);
  // A click on the backdrop closes too.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close();
  });
}

export async function openViewer(token) {
  const dialog = $('viewer-dialog');
  const body = $('viewer-body');
  discard();
  openFor = token.id;
  setText($('viewer-title'), titleOf(token));
  body.replaceChildren(
    h('div', { class: 'viewer-loading' }, h('div', { class: 'spinner', 'aria-hidden': 'true' }), h('p', { class: 'muted', text: 'Decrypting…' })),
  );
  body.setAttribute('aria-busy', 'true');
  openModal(dialog);

  let answer;
  try {
    answer = await api.decrypt(token.id);
  } catch (err) {
    if (openFor === token.id) dialog.close();
    notify(describeError(err, 'view'), { kind: 'error', key: `view-${token.id}` });
    return;
  }
  if (openFor !== token.id || !dialog.open) return; // closed meanwhile: drop it
  body.removeAttribute('aria-busy');
  body.replaceChildren(...render(answer, token));
  dialog.querySelector('.js-close').focus();
}

function titleOf(token) {
  const what = { text: 'Text prompt', image: 'Image', audio: 'Audio clip' }[token.kind] || 'Token';
  const id = token.chain && token.chain.token_id !== null && token.chain.token_id !== undefined;
  return id ? `${what} · token #${token.chain.token_id}` : what;
}

function render(answer, token) {
  const when = token.created_at ? `Created ${formatTime(token.created_at)}` : '';
  if (answer.kind === 'text') {
    const nodes = [h('blockquote', { class: 'viewer-text', text: answer.prompt ?? '' })];
    const meta = h('div', { class: 'viewer-meta' });
    if (answer.emotion) meta.append(h('span', { class: 'chip-static', text: `Emotion: ${answer.emotion}` }));
    if (when) meta.append(h('span', { class: 'muted', text: when }));
    nodes.push(meta);
    return nodes;
  }
  const bytes = base64ToBytes(answer.data_base64 || '');
  const type = answer.content_type || token.content_type || 'application/octet-stream';
  objectUrl = URL.createObjectURL(new Blob([bytes], { type }));
  const media =
    answer.kind === 'image'
      ? h('img', { class: 'viewer-image', src: objectUrl, alt: `Decrypted image (${type})` })
      : h('audio', { class: 'viewer-audio', src: objectUrl, controls: true, 'aria-label': 'Decrypted audio clip' });
  return [
    h('div', { class: `viewer-media viewer-media-${answer.kind}` }, media),
    h('div', { class: 'viewer-meta' }, h('span', { class: 'muted', text: [type, formatBytes(bytes.length), when].filter(Boolean).join(' · ') })),
  ];
}

function base64ToBytes(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Drop the plaintext: stop media, remove the nodes, revoke the blob URL. */
function discard() {
  const body = $('viewer-body');
  for (const media of body.querySelectorAll('audio, video')) {
    media.pause();
    media.removeAttribute('src');
    media.load();
  }
  body.replaceChildren();
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = null;
  openFor = null;
}

export function closeViewer() {
  const dialog = $('viewer-dialog');
  if (dialog.open) dialog.close();
  else discard();
}
