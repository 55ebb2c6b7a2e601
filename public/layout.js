// camwall wall page: where tiles go. A grid that fits the window (automatic or a fixed column
// count), or one big tile with small ones around it (1+5, 1+7); one column on a phone held
// upright. Tiles keep the camera's picture whole: the canvas is letterboxed, never stretched.

// Tiles per page of a tour, by layout: what one screen shows.
export function pageSize(view) {
  if (view.layout === "1+5") return 6;
  if (view.layout === "1+7") return 8;
  if (view.columns) return view.columns * view.columns;
  return 4;
}

// A phone held upright (or any narrow portrait window): one column, scrolled.
export function isPhonePortrait(W, H) {
  return W <= 600 && H >= W;
}

// The grid for `n` tiles in a W x H area: {cols, rowH, big} where `big` is how many columns and
// rows the first tile spans (1 for a plain grid).
export function gridFor(n, W, H, view) {
  n = Math.max(1, n);
  const aspect = 9 / 16;
  if (isPhonePortrait(W, H)) return { cols: 1, rowH: Math.floor(W * aspect), big: 1 };
  if (view.layout === "1+5" || view.layout === "1+7") {
    const cols = view.layout === "1+5" ? 3 : 4;
    const rowH = Math.min((W / cols) * aspect, H / cols);
    return { cols, rowH: Math.floor(rowH), big: cols - 1 };
  }
  if (view.columns) {
    const cols = view.columns;
    const rows = Math.ceil(n / cols);
    const rowH = Math.max(Math.min((W / cols) * aspect, H / rows), Math.min(120, (W / cols) * aspect));
    return { cols, rowH: Math.floor(rowH), big: 1 };
  }
  // Automatic: the column count that gives the largest 16:9 tiles.
  let best = { cols: 1, h: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const h = Math.min((W / cols) * aspect, H / rows);
    if (h > best.h) best = { cols, h };
  }
  // On narrow screens scroll instead of shrinking tiles to stamps.
  const rowH = Math.max(best.h, Math.min(180, W * aspect));
  return { cols: best.cols, rowH: Math.floor(rowH), big: 1 };
}

// Applies the grid to the wall element; `els` are the tiles on screen, in order.
export function applyLayout(wall, els, view) {
  const g = gridFor(els.length, wall.clientWidth - 8, wall.clientHeight - 8, view);
  wall.style.setProperty("--cols", g.cols);
  wall.style.setProperty("--row-h", `${g.rowH}px`);
  els.forEach((el, i) => {
    const big = i === 0 && g.big > 1;
    el.classList.toggle("big", big);
    el.style.gridColumn = big ? `span ${g.big}` : "";
    el.style.gridRow = big ? `span ${g.big}` : "";
  });
  return g;
}
