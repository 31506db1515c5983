// The "New token" form: a text prompt with an emotion tag, an image, or an audio clip
// (a file, or a recording where the browser allows it).

import { api } from './api.js';
import { $, h, setText, show } from './dom.js';
import { describeError } from './errors.js';
import { formatBytes, formatDuration } from './format.js';
import { dismissKey, notify } from './notices.js';
import { emit, state } from './state.js';

const PRESETS = [
  [600, '10 min'],
  [3600, '1 hour'],
  [86400, '1 day'],
  [7 * 86400, '1 week'],
  [30 * 86400, '30 days'],
];

const KINDS = ['text', 'image', 'audio'];
const objectUrls = { image: null, audio: null };
/** The chosen file per kind (a recording counts as the audio file). */
const chosen = { image: null, audio: null };
let recorder = null;

export function initComposer(config) {
  fillEmotions(config.emotions || []);
  fillLifetimes(config);
  const limit = `Up to ${formatBytes(config.max_upload_bytes)}`;
  for (const el of document.querySelectorAll('.js-upload-limit')) setText(el, limit);

  for (const kind of KINDS) {
    $(`kind-${kind}`).addEventListener('change', () => showKind(kind));
  }
  for (const kind of ['image', 'audio']) {
    const input = $(`${kind}-file`);
    input.addEventListener('change', () => chooseFile(kind, input.files && input.files[0]));
    wireDropzone(kind);
  }
  $('prompt').addEventListener('input', () => fieldError('prompt', ''));
  $('ttl-amount').addEventListener('input', () => fieldError('ttl', ''));
  $('ttl-unit').addEventListener('change', () => fieldError('ttl', ''));
  setupRecorder();
  $('create-form').addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
}

function selectedKind() {
  return KINDS.find((k) => $(`kind-${k}`).checked) || 'text';
}

function showKind(kind) {
  for (const k of KINDS) show($(`panel-${k}`), k === kind);
  // The emotion tag belongs to text prompts only.
}

function fillEmotions(emotions) {
  const select = $('emotion');
  for (const emotion of emotions) {
    select.append(h('option', { value: emotion, text: capitalise(emotion) }));
  }
}

const capitalise = (s) => String(s).charAt(0).toUpperCase() + String(s).slice(1);

function fillLifetimes(config) {
  const max = Number(config.max_ttl_seconds) || 3600;
  const def = Math.min(Number(config.default_ttl_seconds) || 3600, max);
  const presets = PRESETS.filter(([s]) => s <= max);
  if (!presets.some(([s]) => s === def)) {
    presets.push([def, formatDuration(def)]);
    presets.sort((a, b) => a[0] - b[0]);
  }
  const box = $('ttl-presets');
  for (const [seconds, label] of presets) {
    box.append(chip(`ttl-${seconds}`, String(seconds), label, seconds === def));
  }
  box.append(chip('ttl-custom', 'custom', 'Custom', false));
  box.addEventListener('change', () => {
    const custom = $('ttl-custom').checked;
    show($('custom-ttl'), custom);
    fieldError('ttl', '');
    if (custom) $('ttl-amount').focus();
  });
  setText($('ttl-max'), `Shredded automatically when it ends. Up to ${formatDuration(max)}.`);
}

function chip(id, value, label, checked) {
  return h(
    'span',
    { class: 'chip' },
    h('input', { type: 'radio', name: 'ttl', id, value, checked }),
    h('label', { for: id, text: label }),
  );
}

function ttlSeconds() {
  const picked = document.querySelector('input[name="ttl"]:checked');
  const max = Number(state.config.max_ttl_seconds);
  if (!picked) return Number(state.config.default_ttl_seconds);
  if (picked.value !== 'custom') return Number(picked.value);
  const amount = Number($('ttl-amount').value);
  const unit = Number($('ttl-unit').value);
  if (!Number.isFinite(amount) || amount <= 0 || !Number.isInteger(amount)) {
    throw fieldFailure('ttl', 'Enter a whole number greater than 0 for the lifetime.');
  }
  const seconds = amount * unit;
  if (max && seconds > max) {
    throw fieldFailure('ttl', `The lifetime can be at most ${formatDuration(max)}.`);
  }
  return seconds;
}

// Files -------------------------------------------------------------------------------------

/** A clear message for a file the backend would refuse, or '' when it is fine. */
export function checkFile(kind, file, maxBytes) {
  if (!file) return `Choose ${kind === 'image' ? 'an image' : 'an audio clip'} first.`;
  const type = (file.type || '').toLowerCase();
  if (!type.startsWith(`${kind}/`)) {
    const what = type ? `a ${type} file` : 'a file of unknown type';
    return `“${file.name}” is ${what}. Choose ${kind === 'image' ? 'an image (PNG, JPEG, WebP, GIF…)' : 'an audio file (WebM, Ogg, MP3, WAV…)'}.`;
  }
  if (maxBytes && file.size > maxBytes) {
    return `“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  return '';
}

function chooseFile(kind, file) {
  releasePreview(kind);
  chosen[kind] = null;
  fieldError(kind, '');
  if (!file) return;
  const problem = checkFile(kind, file, Number(state.config.max_upload_bytes));
  if (problem) {
    $(`${kind}-file`).value = '';
    fieldError(kind, problem);
    notify(problem, { kind: 'error', key: 'file', transient: true });
    return;
  }
  dismissKey('file');
  chosen[kind] = file;
  showPreview(kind, file);
}

function showPreview(kind, file) {
  const box = $(`${kind}-preview`);
  const url = URL.createObjectURL(file);
  objectUrls[kind] = url;
  const media =
    kind === 'image'
      ? h('img', { src: url, alt: `Preview of ${file.name}`, class: 'preview-image' })
      : h('audio', { src: url, controls: true, class: 'preview-audio', 'aria-label': `Preview of ${file.name}` });
  box.replaceChildren(
    media,
    h(
      'div',
      { class: 'preview-meta' },
      h('span', { class: 'preview-name', text: file.name }),
      h('span', { class: 'muted', text: `${file.type} · ${formatBytes(file.size)}` }),
      h('button', {
        type: 'button',
        class: 'btn btn-ghost btn-sm',
        text: 'Remove',
        'aria-label': `Remove ${file.name}`,
        onclick: () => {
          $(`${kind}-file`).value = '';
          chooseFile(kind, null);
          $(`${kind}-file`).focus();
        },
      }),
    ),
  );
  show(box, true);
}

function releasePreview(kind) {
  if (objectUrls[kind]) URL.revokeObjectURL(objectUrls[kind]);
  objectUrls[kind] = null;
  const box = $(`${kind}-preview`);
  box.replaceChildren();
  show(box, false);
}

function wireDropzone(kind) {
  const zone = $(`${kind}-drop`);
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (file) chooseFile(kind, file);
  });
}

// Recording ---------------------------------------------------------------------------------

export const canRecord = () =>
  typeof window.MediaRecorder === 'function' &&
  !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia) &&
  window.isSecureContext;

function setupRecorder() {
  if (!canRecord()) return;
  show($('recorder'), true);
  $('record').addEventListener('click', () => (recorder ? stopRecording() : startRecording()));
}

async function startRecording() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
    const message = denied
      ? 'Microphone access was denied. Allow it in the browser’s site settings, or choose a file.'
      : 'No microphone could be opened. Choose an audio file instead.';
    fieldError('audio', message);
    notify(message, { kind: 'error', key: 'file', transient: true });
    return;
  }
  const preferred = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/mp4'];
  const mimeType = preferred.find((t) => MediaRecorder.isTypeSupported?.(t));
  const rec = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  const chunks = [];
  const started = Date.now();
  rec.addEventListener('dataavailable', (e) => e.data && e.data.size && chunks.push(e.data));
  rec.addEventListener('stop', () => {
    for (const track of stream.getTracks()) track.stop();
    clearInterval(recorder.timer);
    recorder = null;
    $('record').classList.remove('recording');
    setText($('record-label'), 'Record again');
    setText($('record-time'), '');
    const type = (rec.mimeType || 'audio/webm').split(';')[0];
    const ext = type.split('/')[1] || 'webm';
    const file = new File(chunks, `recording-${new Date().toISOString().slice(11, 19).replaceAll(':', '')}.${ext}`, { type });
    $('audio-file').value = '';
    chooseFile('audio', file);
  });
  recorder = {
    rec,
    timer: setInterval(() => {
      const s = Math.floor((Date.now() - started) / 1000);
      setText($('record-time'), `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`);
    }, 250),
  };
  rec.start();
  $('record').classList.add('recording');
  setText($('record-label'), 'Stop recording');
  setText($('record-time'), '0:00');
}

function stopRecording() {
  if (recorder && recorder.rec.state !== 'inactive') recorder.rec.stop();
}

// Submit ------------------------------------------------------------------------------------

function fieldFailure(field, message) {
  fieldError(field, message);
  const err = new Error(message);
  err.userMessage = message;
  err.field = field;
  return err;
}

function fieldError(field, message) {
  const el = $(`${field}-error`);
  setText(el, message);
  show(el, !!message);
  const input = { prompt: 'prompt', ttl: 'ttl-amount', image: 'image-file', audio: 'audio-file' }[field];
  if (input) {
    if (message) $(input).setAttribute('aria-invalid', 'true');
    else $(input).removeAttribute('aria-invalid');
  }
}

async function submit() {
  const button = $('create');
  if (button.disabled) return;
  const kind = selectedKind();
  let ttl;
  let request;
  try {
    ttl = ttlSeconds();
    const switchable = $('switchable').checked;
    const emotion = $('emotion').value;
    if (kind === 'text') {
      const prompt = $('prompt').value;
      if (!prompt.trim()) throw fieldFailure('prompt', 'Write a prompt first.');
      const body = { prompt, ttl_seconds: ttl, switchable };
      if (emotion) body.emotion = emotion;
      request = () => api.generateText(body);
    } else {
      const file = chosen[kind];
      const problem = checkFile(kind, file, Number(state.config.max_upload_bytes));
      if (problem) throw fieldFailure(kind, problem);
      const form = new FormData();
      form.append('file', file, file.name);
      form.append('ttl_seconds', String(ttl));
      form.append('switchable', switchable ? 'true' : 'false');
      request = () => api.generateFile(form);
    }
  } catch (err) {
    notify(err.userMessage || String(err), { kind: 'error', key: 'create', transient: !!err.field });
    if (err.field) focusField(err.field);
    return;
  }

  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  const label = button.textContent;
  button.textContent = 'Encrypting and minting…';
  try {
    const answer = await request();
    dismissKey('create');
    const id = answer && answer.token && answer.token.id;
    notify('Token created. Its data is encrypted; the mint is on its way.', {
      kind: 'success',
      key: 'create',
    });
    resetAfterCreate(kind);
    emit('token-created', id);
  } catch (err) {
    const message = describeError(err, 'create');
    const fileProblem = kind !== 'text' && err && (err.status === 413 || err.status === 415);
    if (fileProblem) fieldError(kind, message);
    notify(message, { kind: 'error', key: 'create', transient: fileProblem });
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

function focusField(field) {
  const input = { prompt: 'prompt', ttl: 'ttl-amount', image: 'image-file', audio: 'audio-file' }[field];
  if (input) $(input).focus();
}

function resetAfterCreate(kind) {
  if (kind === 'text') $('prompt').value = '';
  else {
    $(`${kind}-file`).value = '';
    chooseFile(kind, null);
  }
}

/** Forget everything typed or chosen (on sign-out). */
export function resetComposer() {
  stopRecording();
  $('create-form').reset();
  for (const kind of ['image', 'audio']) chooseFile(kind, null);
  for (const f of ['prompt', 'ttl']) fieldError(f, '');
  showKind('text');
  show($('custom-ttl'), false);
}
