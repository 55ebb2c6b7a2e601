// camwall settings page: the people who log in (admins only). Lists them (name, role, the
// cameras they see), adds one with a password, changes a role, scope or password, removes one,
// all through /api/users; the server keeps only the password's hash, and a change ends that
// person's sessions at once.

export function initUsers({ api, state, $, clearErrors, showError }) {
  const form = $("#user-form");
  let editing = null;

  async function load() {
    const r = await api("GET", "/api/users");
    if (!r.ok) return;
    state.users = r.body.users;
    const tbody = $("#users tbody");
    tbody.textContent = "";
    for (const u of state.users) {
      const tr = document.createElement("tr");
      tr.dataset.user = u.name;
      const sees = u.cameras || u.views ? [...(u.cameras || []), ...(u.views || []).map((v) => `view ${v}`)].join(", ") : "every camera";
      for (const text of [u.name, u.role, sees]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      const td = document.createElement("td");
      for (const [label, fn] of [["Edit", () => edit(u)], ["Delete", () => remove(u)]]) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = label; b.className = label.toLowerCase();
        b.addEventListener("click", fn);
        td.appendChild(b);
      }
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  // The cameras a viewer may be limited to: none ticked means every camera.
  function renderCams(picked) {
    const box = $("#user-cams");
    box.textContent = "";
    for (const c of state.cameras) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox"; input.value = c.id; input.checked = (picked || []).includes(c.id);
      label.append(input, ` ${c.id}`);
      box.appendChild(label);
    }
  }

  function edit(u) {
    editing = u;
    const f = form.elements;
    f.name.value = u.name; f.name.disabled = true;
    f.password.value = ""; f.password.placeholder = "unchanged";
    f.role.value = u.role;
    renderCams(u.cameras);
    $("#user-form-title").textContent = `Edit ${u.name}`;
    $("#cancel-user").hidden = false;
  }

  function reset() {
    editing = null;
    form.reset();
    form.elements.name.disabled = false;
    form.elements.password.placeholder = "";
    renderCams([]);
    $("#user-form-title").textContent = "Add a user";
    $("#cancel-user").hidden = true;
  }

  async function remove(u) {
    if (!confirm(`Remove ${u.name}? Their sessions end now.`)) return;
    await api("DELETE", `/api/users/${encodeURIComponent(u.name)}`);
    load();
  }

  $("#cancel-user").addEventListener("click", () => { reset(); clearErrors(form); });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const f = form.elements;
    const cameras = [...$("#user-cams").querySelectorAll("input:checked")].map((i) => i.value);
    const body = { role: f.role.value };
    if (f.role.value === "viewer" && cameras.length) body.cameras = cameras;
    if (f.password.value) body.password = f.password.value;
    let r;
    if (editing) {
      r = await api("PUT", `/api/users/${encodeURIComponent(editing.name)}`, body);
    } else {
      body.name = f.name.value.trim();
      r = await api("POST", "/api/users", body);
    }
    if (!r.ok) return showError(form, r);
    reset();
    load();
  });

  reset();
  return load();
}
