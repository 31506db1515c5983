// A small symmetric identicon drawn from an address, so accounts are easy to tell apart.

export function drawAvatar(canvas, address) {
  const ctx = canvas.getContext && canvas.getContext('2d');
  if (!ctx) return;
  const hex = String(address || '').toLowerCase().replace(/^0x/, '').padEnd(40, '0');
  const byte = (i) => Number.parseInt(hex.slice((i * 2) % 40, (i * 2) % 40 + 2), 16) || 0;
  const hue = Math.round((byte(0) / 255) * 360);
  const bg = `hsl(${hue} 45% 92%)`;
  const fg = `hsl(${hue} 55% 42%)`;
  const accent = `hsl(${(hue + 40) % 360} 60% 62%)`;
  const size = canvas.width;
  const cell = size / 5;
  ctx.fillStyle = bg;
  ctx.fillRect(0, 0, size, size);
  for (let y = 0; y < 5; y++) {
    for (let x = 0; x < 3; x++) {
      const v = byte(1 + y * 3 + x) % 3;
      if (v === 0) continue;
      ctx.fillStyle = v === 1 ? fg : accent;
      ctx.fillRect(x * cell, y * cell, cell, cell);
      ctx.fillRect((4 - x) * cell, y * cell, cell, cell);
    }
  }
}
