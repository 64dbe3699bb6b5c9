"""The admin console (/admin) end to end in Chromium, against the real gateway and admin API.

An operator's session: a refused token, then the right one; the demo group and its members; a new member added
through the form, given photos through the file input and by drag and drop, each upload followed live to the
end; the review queue (a single face cropped, a group photo with every face) decided in the page; a re-index
started and followed; the new index version with its threshold and histograms. Outside the browser, the photo
held back from the upload is then matched to the new member first. The gallery changes: this module's gateway
is its own (module scope).
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_TOKEN
from test_api import DEMO_GROUP, FACES, MEMBERS, REPO, Gateway

expect = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extras)").expect

# Two photos: one is uploaded (a lone photo is flagged for review: too few to know who the member is), the
# other is the probe of the final check.
PERSON = FACES / "strangers" / "jisoo_blackpink"
GROUP_PHOTO = FACES / "group" / "02.jpg"  # five faces: curation keeps them all and asks which one
REFUSED = "status of 401"  # Chromium logs the refused login's answer as a console error
JOB_TIMEOUT_MS = 60_000

# Records every data-status a job card takes, to check the card followed the job rather than jumping to the end.
WATCH_STATUSES = """(root) => {
  window.seenStatuses = [];
  new MutationObserver((changes) => {
    for (const { target } of changes) if (target.matches(".job")) window.seenStatuses.push(target.dataset.status);
  }).observe(document.querySelector(root), { subtree: true, attributes: true, attributeFilter: ["data-status"] });
}"""

# A drop of one file on the drop zone, as a file manager would do it.
DROP_FILE = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""

# How many distinct colours a canvas shows: a drawn face crop has many, a blank canvas one.
CANVAS_COLOURS = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""


def login(page: Any) -> None:
    page.fill("#token", ADMIN_TOKEN)
    page.press("#token", "Enter")
    expect(page.locator("#nav")).to_be_visible()


def follow_job(page: Any, card: Any) -> list[str]:
    """Wait for the job card to reach done; the statuses it showed, in order."""
    expect(card).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    seen: list[str] = page.evaluate("window.seenStatuses")
    order = ["queued", "running", "done"]
    assert seen and seen[-1] == "done", seen
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    return seen


def test_admin_console_end_to_end(open_page: Any, screenshot: Any, ui_gateway: Gateway) -> None:
    page = open_page("/admin", expected_errors=(REFUSED,))

    # Login: the token field is a password field; a wrong token is refused with a message, in place.
    expect(page.locator("#token")).to_have_attribute("type", "password")
    expect(page.locator("#token")).to_be_focused()
    screenshot(page, "admin-login")
    page.fill("#token", "not-the-admin-token-" + "0" * 20)
    page.click("#login-submit")
    expect(page.locator("#login-message")).to_contain_text("refused")
    expect(page.locator("#nav")).to_be_hidden()
    login(page)
    assert page.evaluate("sessionStorage.getItem('lookalike.adminToken')") == ADMIN_TOKEN

    # The demo group, its five members and their photo counts.
    expect(page.locator(".group-links a[aria-current=page]")).to_have_attribute("data-slug", DEMO_GROUP)
    expect(page.locator("table.members tbody tr")).to_have_count(len(MEMBERS))
    for slug in MEMBERS:
        expect(page.locator(f'tr[data-slug="{slug}"] .chip[data-status="ok"]')).to_have_text("5 kept")
    screenshot(page, "admin-groups")

    # A new member, through the form: the slug follows the name.
    page.fill("#new-member-name", "Jisoo")
    expect(page.locator("#new-member-slug")).to_have_value("jisoo")
    page.click("#new-member button[type=submit]")
    expect(page).to_have_url(re.compile(r"#/member/\d+$"))
    expect(page.locator("#view h1")).to_have_text("Jisoo")

    page.select_option("#source-kind", "web_page")
    page.fill("#source-value", "https://photos.example/jisoo/")
    page.click("#new-source button[type=submit]")
    expect(page.locator("table.sources tbody tr[data-source-id]")).to_contain_text("https://photos.example/jisoo/")

    # Upload through the file input, all photos but the probe, and follow the job.
    *uploaded, held_out = sorted(PERSON.glob("*.jpg"))
    page.set_input_files("#upload-files", [str(p) for p in uploaded])
    expect(page.locator(".file-list li")).to_have_count(len(uploaded))
    page.evaluate(WATCH_STATUSES, "#upload")
    page.click("#upload-submit")
    job = page.locator("#upload .job").first
    follow_job(page, job)
    expect(job.locator(".steps li.complete")).to_have_count(4)  # store, curate, index, done
    expect(job.locator('.chip[data-count="flagged"]')).to_have_text("1 to review")
    expect(job.locator(".job-outcome")).to_contain_text("Published index version")
    expect(page.locator('#member-photos .chip[data-status="flagged"]')).to_have_text("1 to review")
    screenshot(page, "admin-upload-progress")

    # A group photo dropped on the drop zone: curation cannot tell which face is the member's.
    page.evaluate(DROP_FILE, ["group.jpg", base64.b64encode(GROUP_PHOTO.read_bytes()).decode()])
    expect(page.locator(".file-list li")).to_have_count(1)
    page.evaluate(WATCH_STATUSES, "#upload")
    page.click("#upload-submit")
    expect(page.locator("#upload .job")).to_have_count(2)  # the new card comes first
    follow_job(page, page.locator("#upload .job").first)
    expect(page.locator('#member-photos .chip[data-status="flagged"]')).to_have_text("2 to review")

    # The review queue: the lone photo as its face crop, the group photo as every face with its own approve.
    page.click('#nav a[data-route="review"]')
    single = page.locator('.review-card[data-faces="1"]')
    several = page.locator('.review-card:not([data-faces="1"])')
    expect(page.locator(".review-card")).to_have_count(2)
    expect(single.locator("canvas.crop")).to_have_count(1)
    faces = int(several.get_attribute("data-faces") or 0)
    assert faces > 1
    expect(several.locator(".face-choices canvas.crop")).to_have_count(faces)
    expect(several.locator(".face-choices button")).to_have_count(faces)
    expect(single).to_contain_text("too few photos")
    assert single.locator("canvas.crop").evaluate(CANVAS_COLOURS) > 50  # the crop is drawn, not blank
    screenshot(page, "admin-review")
    several.locator('button[data-action="reject"]').click()
    expect(several).to_have_attribute("data-decided", "excluded")
    single.locator('button[data-action="approve"]').click()
    expect(single).to_have_attribute("data-decided", "approved")
    expect(single.locator(".job")).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)

    # A re-index from the group view, followed to its new version.
    page.click('#nav a[data-route="groups"]')
    expect(page.locator('tr[data-slug="jisoo"] .chip[data-status="approved"]')).to_have_text("1 approved")
    page.evaluate(WATCH_STATUSES, ".group-head")
    page.click("#reindex")
    job = page.locator('.group-head .job[data-kind="reindex"]')
    follow_job(page, job)
    version = job.locator(".job-outcome [data-version-id]").get_attribute("data-version-id")
    reindex_job = job.get_attribute("data-job-id")

    # The versions view: the new version first and serving, its figures, histograms and threshold drawn.
    page.click(".group-head a[href^='#/versions/']")
    card = page.locator(".version").first
    expect(card).to_have_attribute("data-version-id", str(version))
    expect(card).to_have_class(re.compile(r"\bactive\b"))
    [served] = [v for v in api_versions(ui_gateway) if str(v["id"]) == version]
    shown = card.locator(".threshold-value").inner_text()
    assert re.fullmatch(r"0\.\d{3}", shown) and abs(float(shown) - served["threshold"]) <= 0.0005 + 1e-9, shown
    expect(card.locator(".figures")).to_contain_text(f"Members{served['n_members']}")
    chart = card.locator('figure.chart[data-kind="histogram"]')
    expect(chart).to_be_visible()
    # Two panels: the same_person threshold on similarity, the lookalike threshold on the lookalike score.
    for axis in ("similarity", "lookalike"):
        panel = chart.locator(f'.chart-panel[data-axis="{axis}"]')
        assert panel.locator(".bars.genuine rect.bar").count() > 0
        assert panel.locator(".bars.impostor rect.bar").count() > 0
        expect(panel.locator(".threshold line")).to_have_count(1)
    screenshot(page, "admin-versions")

    # The language switch: everything on screen follows, and back.
    page.click('[data-locale="ja"]')
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("#view h1")).to_have_text("インデックス版")
    expect(chart.locator('[data-axis="similarity"] .legend')).to_contain_text("本人")
    page.click('[data-locale="en"]')
    expect(page.locator("#view h1")).to_have_text("Index versions")

    # The jobs view lists it among the others.
    page.click('#nav a[data-route="jobs"]')
    expect(page.locator(f'tr[data-job-id="{reindex_job}"]')).to_have_attribute("data-status", "done")
    assert page.locator("tr[data-job-id]").count() >= 4  # 2 uploads, the decisions' re-index(es), the one asked

    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0

    # The held-out photo now finds the new member first.
    with held_out.open("rb") as photo:
        answer = httpx.post(
            f"{ui_gateway.base_url}/diagnose",
            files={"image": (held_out.name, photo, "image/jpeg")},
            data={"group": DEMO_GROUP},
            timeout=60,
        )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["index_versions"][DEMO_GROUP] == int(version)
    assert result["faces"][0]["matches"][0]["slug"] == "jisoo", result


def api_versions(gateway: Gateway) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.get(f"{gateway.base_url}/admin/groups/{DEMO_GROUP}/versions", headers=headers, timeout=30)
    response.raise_for_status()
    versions: list[dict[str, Any]] = response.json()
    return versions


def test_a_refused_session_returns_to_login_on_a_phone(open_page: Any, screenshot: Any) -> None:
    """A token the server no longer takes (rotated) sends the admin back to the login form with a message; the
    console fits a phone's width."""
    page = open_page("/admin", viewport=(390, 844), mobile=True, expected_errors=(REFUSED,))
    page.evaluate("sessionStorage.setItem('lookalike.adminToken', 'an-old-rotated-token-' + '0'.repeat(16))")
    page.reload()
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-message")).to_contain_text("session has ended")
    assert page.evaluate("sessionStorage.length") == 0

    login(page)
    expect(page.locator("table.members tbody tr").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "admin-mobile")


# --------------------------------------------------------------------------- thresholds and suspected label errors

TWICE = "twice"  # a group where one member is filed again under a new name
DEMO_PHOTOS = REPO / "demo" / "gallery"
# Reads a chart panel back in score units, through its own axis ticks: where the threshold line and the interval
# band stand.
PANEL_MARKS = """(panel) => {
  const ticks = [...panel.querySelectorAll(".axis text:not(.axis-title)")];
  const [first, last] = [ticks[0], ticks[ticks.length - 1]].map((t) => [+t.getAttribute("x"), +t.textContent]);
  const at = (x) => first[1] + ((x - first[0]) * (last[1] - first[1])) / (last[0] - first[0]);
  const line = panel.querySelector(".threshold line");
  const band = panel.querySelector("rect.interval");
  const left = +band.getAttribute("x");
  return [at(+line.getAttribute("x1")), at(left), at(left + +band.getAttribute("width"))];
}"""


def admin_client(gateway: Gateway) -> httpx.Client:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.Client(base_url=gateway.base_url, headers=headers, timeout=60)


def wait_job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while True:
        job: dict[str, Any] = api.get(f"/admin/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def upload(api: httpx.Client, member_id: int, photos: list[Path]) -> None:
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    wait_job(api, api.post(f"/admin/members/{member_id}/photos", files=files).raise_for_status().json()["job_id"])


def file_asuka_twice(api: httpx.Client) -> None:
    """Asuka and Mai, then another photo of Asuka under a new member: curation flags it as the other member's, a
    reviewer approves it anyway, and the re-index reports the pair (as tests/test_admin.py does through the API)."""
    api.post("/admin/groups", json={"slug": TWICE, "name": "Twice filed"}).raise_for_status()
    ids = {
        slug: api.post(f"/admin/groups/{TWICE}/members", json={"slug": slug, "name": name}).json()["id"]
        for slug, name in (("asuka", "Asuka Saito"), ("mai", "Mai Shiraishi"), ("asuka_again", "Asuka (new name)"))
    }
    upload(api, ids["asuka"], [DEMO_PHOTOS / "saito_asuka" / f"0{n}.jpg" for n in (1, 2, 3)])
    upload(api, ids["mai"], [DEMO_PHOTOS / "shiraishi_mai" / f"0{n}.jpg" for n in (1, 2, 3)])
    upload(api, ids["asuka_again"], [FACES / "probes" / "saito_asuka" / "12.jpg"])
    [flagged] = api.get("/admin/review", params={"group": TWICE}).json()
    outcome = api.post(f"/admin/photos/{flagged['photo_id']}/approve").raise_for_status().json()
    wait_job(api, outcome["reindex_job_id"])


def test_versions_show_both_thresholds_and_a_suspect_pair(open_page: Any, screenshot: Any, ui_gateway: Gateway) -> None:
    with admin_client(ui_gateway) as api:
        file_asuka_twice(api)
        try:
            versions = api.get(f"/admin/groups/{TWICE}/versions").raise_for_status().json()
            names = {m["id"]: m["name"] for m in api.get(f"/admin/groups/{TWICE}/members").json()}
            check_versions_view(open_page, screenshot, versions, names)
        finally:
            api.delete(f"/admin/groups/{TWICE}").raise_for_status()


def check_versions_view(open_page: Any, screenshot: Any, versions: list[dict[str, Any]], names: dict) -> None:
    newest, oldest = versions[0], versions[-1]
    [pair] = newest["suspect_pairs"]
    assert (pair["kind"], pair["status"]) == ("wrong_member", "approved"), pair
    page = open_page("/admin")
    login(page)
    page.goto(f"/admin#/versions/{TWICE}")
    card = page.locator(".version").first
    expect(card).to_have_attribute("data-version-id", str(newest["id"]))

    # Both thresholds, each with its 90 % interval, and the impostor scores the first rests on.
    for name, value, (low, high) in (
        ("same_person", newest["threshold"], newest["threshold_interval"]),
        ("lookalike", newest["lookalike_threshold"], newest["lookalike_interval"]),
    ):
        figure = card.locator(f'.figures [data-figure="{name}"]')
        expect(figure.locator("dd > span")).to_have_text(f"{value:.3f}")
        expect(figure.locator(".interval")).to_have_text(f"90 % interval {low:.3f}\u2013{high:.3f}")
    expect(card.locator('.figures [data-figure="impostor"] dd')).to_have_text(str(newest["n_impostor"]))

    # Each threshold drawn on its own axis, inside its shaded interval.
    for axis, value, interval in (
        ("similarity", newest["threshold"], newest["threshold_interval"]),
        ("lookalike", newest["lookalike_threshold"], newest["lookalike_interval"]),
    ):
        panel = card.locator(f'.chart-panel[data-axis="{axis}"]')
        assert panel.locator(".bars rect.bar").count() > 0
        line, low, high = panel.evaluate(PANEL_MARKS)
        assert line == pytest.approx(value, abs=0.002), (axis, line, value)
        assert [low, high] == pytest.approx(interval, abs=0.002), (axis, low, high, interval)

    # The suspect pair: both photos, drawn from the admin API with the token, the members, figures and status.
    item = card.locator(".suspect-pair")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-photo-id", str(pair["photo_id"]))
    member, other = names[pair["member_id"]], names[pair["other_member_id"]]
    for n, (photo_id, who) in enumerate(((pair["photo_id"], member), (pair["other_photo_id"], other))):
        photo = item.locator("figure.suspect-photo").nth(n)
        expect(photo).to_have_attribute("data-photo-id", str(photo_id))
        expect(photo.locator("figcaption")).to_have_text(f"{who} photo #{photo_id}")
        expect(photo.locator("canvas")).to_have_accessible_name(f"{who}'s photo #{photo_id}")
        assert photo.locator("canvas").evaluate(CANVAS_COLOURS) > 50  # drawn, not blank
    expect(item.locator(".suspect-similarity")).to_have_text(f"similarity {pair['similarity']:.3f}")
    expect(item.locator(".suspect-kind")).to_have_text(f"{member}'s photo looks more like {other} than like {member}.")
    expect(item.locator(".chip")).to_have_text("approved by a reviewer: kept")
    screenshot(page, "admin-versions-suspects")

    # A version without a lookalike threshold (one member: nobody to be a lookalike of) shows the first panel only.
    assert oldest["lookalike_threshold"] is None and "lookalike" not in oldest["calibration"]["histogram"], oldest
    old = page.locator(f'.version[data-version-id="{oldest["id"]}"]')
    expect(old.locator('.figures [data-figure="lookalike"]')).to_have_count(0)
    old.locator("details.calibration summary").click()
    expect(old.locator(".chart-panel")).to_have_count(1)
    expect(old.locator('.chart-panel[data-axis="similarity"] .threshold line')).to_have_count(1)

    page.click('[data-locale="ja"]')
    expect(card.locator(".suspects h3")).to_contain_text("ラベル誤りの疑い")
    expect(card.locator('.figures [data-figure="lookalike"] dt')).to_have_text("そっくりしきい値")
    expect(item.locator(".chip")).to_contain_text("承認済み")
    card.locator(".suspects a.review-link").click()
    expect(page).to_have_url(re.compile(f"#/review/{TWICE}$"))
    expect(page.locator("#view h1")).to_have_text("レビュー待ち")
