// Tiny DOM helpers. Text always goes in through textContent, never through HTML strings,
// and no element ever gets a `style` attribute (the page runs under a strict CSP).

export const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
};

/**
 * Create an element. `attrs`: `class`, `text`, `on<Event>` handlers, `dataset`, booleans
 * (true sets an empty attribute, false/null/undefined skips it) and plain attributes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An inline SVG icon from a list of [tag, attrs] shapes on a 24×24 grid. */
export function icon(shapes, className = 'icon') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', className);
  for (const [tag, attrs] of shapes) {
    const shape = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) shape.setAttribute(k, String(v));
    svg.append(shape);
  }
  return svg;
}

export const ICONS = {
  text: [
    ['path', { d: 'M5 6.5h14M5 11h14M5 15.5h9' }],
  ],
  image: [
    ['rect', { x: 3.5, y: 4.5, width: 17, height: 15, rx: 2.5 }],
    ['circle', { cx: 9, cy: 10, r: 1.8 }],
    ['path', { d: 'm4 17 5-4.5 4 3.5 3-2.5 4 3.5' }],
  ],
  audio: [
    ['path', { d: 'M9 18V6l10-2v12' }],
    ['circle', { cx: 6.5, cy: 18, r: 2.5 }],
    ['circle', { cx: 16.5, cy: 16, r: 2.5 }],
  ],
  copy: [
    ['rect', { x: 8.5, y: 8.5, width: 11, height: 11, rx: 2 }],
    ['path', { d: 'M15.5 8.5V6a1.5 1.5 0 0 0-1.5-1.5H6A1.5 1.5 0 0 0 4.5 6v8A1.5 1.5 0 0 0 6 15.5h2.5' }],
  ],
  check: [['path', { d: 'm5 12.5 4.5 4.5L19 7.5' }]],
  close: [['path', { d: 'M6 6l12 12M18 6 6 18' }]],
  alert: [
    ['circle', { cx: 12, cy: 12, r: 8.5 }],
    ['path', { d: 'M12 7.5v5.5M12 16.2v.3' }],
  ],
  info: [
    ['circle', { cx: 12, cy: 12, r: 8.5 }],
    ['path', { d: 'M12 11v5.5M12 7.8v.3' }],
  ],
};

function applyAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'style') throw new Error('no inline styles under the CSP');
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function show(el, visible = true) {
  el.hidden = !visible;
}

export function clear(el) {
  el.replaceChildren();
}

/** Set text only when it changed: keeps screen readers and selections calm. */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}
