// camwall pages: who is looking. GET /api/session answers it; where users are configured and
// this browser has no session, the page sends the person to /login (and back here after). A
// person who logged in sees their name and a "log out" button in the header; a viewer does
// not see the settings link.

export async function ensureSession(token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let r;
  try {
    r = await fetch("/api/session", { headers, cache: "no-store" });
  } catch (_) {
    return null; // the server is away: the page's own retries say so
  }
  if (r.status === 401) {
    if (r.headers.get("x-camwall-login")) {
      location.replace(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return new Promise(() => { /* the page is leaving */ });
    }
    return null;
  }
  const me = r.ok ? await r.json() : null;
  window.camwallMe = me;
  if (me && me.who === "user") showUser(me);
  if (me && me.role !== "admin") {
    const s = document.getElementById("settings-link");
    if (s) s.hidden = true;
  }
  return me;
}

function showUser(me) {
  const header = document.querySelector("header");
  if (!header || document.getElementById("logout")) return;
  const name = document.createElement("span");
  name.id = "user";
  name.className = "user";
  name.textContent = me.user;
  const out = document.createElement("button");
  out.type = "button";
  out.id = "logout";
  out.textContent = "log out";
  out.addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST" }).catch(() => {});
    location.replace("/login");
  });
  header.append(name, out);
}
