// Minimal diagnose page: upload, draw the boxes, list each face's closest members.
const $ = (id) => document.getElementById(id);

async function loadGroups() {
  const res = await fetch("/groups");
  if (!res.ok) return;
  for (const g of await res.json()) {
    const opt = document.createElement("option");
    opt.value = g.slug;
    opt.textContent = g.name;
    $("group").append(opt);
  }
}

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function render(result) {
  const img = $("photo");
  const scale = img.clientWidth / result.image.width;
  $("boxes").replaceChildren();
  $("faces").replaceChildren();
  result.faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const best = face.matches[0];
    const box = el("div", { className: `box ${face.verdict}` }, [el("span", { textContent: String(i + 1) })]);
    Object.assign(box.style, {
      left: `${x1 * scale}px`, top: `${y1 * scale}px`,
      width: `${(x2 - x1) * scale}px`, height: `${(y2 - y1) * scale}px`,
    });
    $("boxes").append(box);
    const heading = face.verdict === "match"
      ? `Face ${i + 1}: resembles ${best.name}`
      : `Face ${i + 1}: resembles nobody in the gallery closely`;
    const rows = face.matches.map((m) =>
      el("div", { className: "member" }, [
        el("img", { src: m.photo_url, alt: m.name }),
        el("span", { textContent: `${m.name} (${m.group})` }),
        el("div", { className: "bar" }, [Object.assign(el("i"), { style: `width:${m.resemblance}%` })]),
        el("span", { textContent: `${m.resemblance.toFixed(0)}%` }),
      ]));
    $("faces").append(el("li", { className: face.verdict }, [el("strong", { textContent: heading }), ...rows]));
  });
}

async function diagnose(file) {
  $("status").textContent = "Looking for faces...";
  $("status").className = "";
  $("photo").src = URL.createObjectURL(file);
  const body = new FormData();
  body.append("image", file);
  if ($("group").value) body.append("group", $("group").value);
  const res = await fetch("/diagnose", { method: "POST", body });
  const data = await res.json();
  if (!res.ok) {
    $("status").textContent = data.error ? data.error.message : "Something went wrong.";
    $("status").className = "error";
    $("boxes").replaceChildren();
    $("faces").replaceChildren();
    return;
  }
  await $("photo").decode().catch(() => {});
  $("status").textContent = `${data.faces.length} face(s) found.`;
  render(data);
}

$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) diagnose(file);
});
loadGroups();
