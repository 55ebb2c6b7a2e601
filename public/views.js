// camwall wall page: views (named sets of cameras kept on the server, `/api/views`), the menu
// that lists them, and the tour that pages through a view's cameras on a TV or kiosk.

import { pageSize } from "./layout.js";

// The view of every camera, automatic grid: the default.
export const ALL = { id: "all", name: "All cameras", cameras: null, layout: "grid" };

export async function loadViews(token) {
  try {
    const r = await fetch("/api/views", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (!r.ok) return [];
    const body = await r.json();
    return Array.isArray(body.views) ? body.views : [];
  } catch (_) {
    return [];
  }
}

// The menu: picking a view loads the page for it (the address says which, so it can be
// bookmarked and every screen can be pointed at one).
export function fillMenu(select, views, current) {
  select.textContent = "";
  for (const v of [ALL, ...views]) {
    const o = document.createElement("option");
    o.value = v.id;
    o.textContent = v.name || v.id;
    o.selected = v.id === current.id;
    select.appendChild(o);
  }
  select.addEventListener("change", () => {
    const u = new URL(location.href);
    u.searchParams.set("view", select.value);
    location.href = u.href;
  });
}

// The camera ids of `view` that exist, in the view's order (all cameras for the default).
export function camerasOf(view, known) {
  if (!view.cameras) return known;
  const have = new Set(known);
  return view.cameras.filter((id) => have.has(id));
}

// Pages of a view's cameras, turned every `seconds`: only the page on screen is shown, so
// only its cameras are subscribed.
export class Tour {
  constructor(view, seconds, onTurn) {
    this.size = pageSize(view);
    this.page = 0;
    this.ms = Math.max(2, seconds) * 1000;
    this.onTurn = onTurn;
    this.timer = null;
  }

  pages(ids) {
    return Math.max(1, Math.ceil(ids.length / this.size));
  }

  // The ids on the current page.
  current(ids) {
    if (this.page >= this.pages(ids)) this.page = 0;
    return ids.slice(this.page * this.size, (this.page + 1) * this.size);
  }

  start(getIds) {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      const n = this.pages(getIds());
      this.page = (this.page + 1) % n;
      this.onTurn();
    }, this.ms);
  }
}
