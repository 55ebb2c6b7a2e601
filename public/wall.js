// camwall wall page: one tile per camera, each drawing the newest JPEG of its camera.
// Frames come from the snapshot endpoint with ETag revalidation (a 304 draws nothing).

const wall = document.getElementById("wall");
const summary = document.getElementById("summary");
const tiles = new Map();

function tile(cam) {
  let t = tiles.get(cam.id);
  if (t) return t;
  const el = document.createElement("div");
  el.className = "tile";
  el.innerHTML = `<canvas></canvas><div class="label"><span class="name"></span>
    <span class="badge"></span><span class="fps"></span></div>`;
  el.querySelector(".name").textContent = cam.name;
  wall.appendChild(el);
  t = { el, canvas: el.querySelector("canvas"), etag: null, busy: false };
  tiles.set(cam.id, t);
  return t;
}

async function pull(id, t) {
  if (t.busy || document.hidden) return;
  t.busy = true;
  try {
    const headers = t.etag ? { "If-None-Match": t.etag } : {};
    const r = await fetch(`/api/ip-cameras/frame/${encodeURIComponent(id)}`, { headers });
    if (r.status === 200) {
      t.etag = r.headers.get("etag");
      const bmp = await createImageBitmap(await r.blob());
      if (t.canvas.width !== bmp.width) t.canvas.width = bmp.width;
      if (t.canvas.height !== bmp.height) t.canvas.height = bmp.height;
      t.canvas.getContext("2d").drawImage(bmp, 0, 0);
      bmp.close();
    }
  } catch (_) {
    // The server restarts or the network blips: the next round tries again.
  } finally {
    t.busy = false;
  }
}

async function refreshStatus() {
  try {
    const s = await (await fetch("/api/ip-cameras/status")).json();
    let live = 0;
    for (const cam of s.cameras) {
      const t = tile(cam);
      const badge = t.el.querySelector(".badge");
      badge.className = `badge ${cam.state}`;
      badge.textContent = cam.state === "backoff" ? `retrying: ${cam.last_error ?? ""}` : cam.state;
      t.el.querySelector(".fps").textContent = cam.state === "streaming" ? `${cam.fps} fps ${cam.width}x${cam.height}` : "";
      t.state = cam.state;
      if (cam.state === "streaming") live++;
    }
    summary.textContent = `${live} of ${s.cameras.length} cameras live`;
  } catch (_) {
    summary.textContent = "server unreachable, retrying";
  }
}

function loop() {
  for (const [id, t] of tiles) if (t.state === "streaming") pull(id, t);
  setTimeout(loop, 40);
}

refreshStatus();
setInterval(refreshStatus, 2000);
loop();
