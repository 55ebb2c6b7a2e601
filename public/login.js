// camwall login page: POST /api/login with the name and password; on success the server sets
// the session cookie and the page goes where the person was sent from (`?next=`, a path on
// this server only), else to the wall. A refusal says why, and how long to wait when too many
// attempts failed.

const form = document.getElementById("login");
const error = document.getElementById("error");

function next() {
  const n = new URLSearchParams(location.search).get("next") || "/";
  // Only a path of this server: `//evil.example` or `https://...` would leave it.
  return n.startsWith("/") && !n.startsWith("//") ? n : "/";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.textContent = "";
  const body = { user: document.getElementById("user").value, password: document.getElementById("password").value };
  let r;
  try {
    r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (_) {
    error.textContent = "camwall cannot be reached";
    return;
  }
  if (r.ok) {
    location.replace(next());
    return;
  }
  const b = await r.json().catch(() => ({}));
  error.textContent = b.message || `error ${r.status}`;
});
// For tests and tools: the form is taken over.
window.camwallLoginReady = true;
