// The result card as a PNG to keep or share: the face cropped from the user's (first) photo beside the best
// member's photo, the name, the verdict and the resemblance, drawn on a canvas. Member photos are same-origin, so
// the canvas stays exportable.
import { el } from "./dom.js";
import { t } from "./i18n.js";
import { resembles } from "./verdict.js";

const SIZE = 1080;
const PINK = "#e4508f";
const LAVENDER = "#8a6fd1";
const INK = "#2b2233";
const MUTED = "#7a6f80";
const PHOTO_R = 190;
const LEFT_X = 310;
const RIGHT_X = SIZE - LEFT_X;
const PHOTO_Y = 450;

function loadImage(url) {
  const image = new Image();
  image.src = url;
  return image.decode().then(
    () => image,
    () => null, // a missing member photo leaves an empty circle rather than no card at all
  );
}

// Draws source region (sx, sy, sw, sh), scaled to cover, into a circle centred on (cx, cy).
function drawCircle(ctx, source, [sx, sy, sw, sh], cx, cy, r) {
  ctx.save();
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, 2 * Math.PI);
  ctx.fillStyle = "#f3eef6";
  ctx.fill();
  ctx.clip();
  if (source) {
    const scale = (2 * r) / Math.min(sw, sh);
    const w = sw * scale;
    const h = sh * scale;
    ctx.drawImage(source, sx, sy, sw, sh, cx - w / 2, cy - h / 2, w, h);
  }
  ctx.restore();
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, 2 * Math.PI);
  ctx.lineWidth = 10;
  ctx.strokeStyle = "#fff";
  ctx.stroke();
}

// A square around the face box with room for hair and chin, kept inside the photo, in the bitmap's pixels.
function faceCrop(face, photo, image) {
  const k = photo.width / image.width;
  const [x1, y1, x2, y2] = face.box;
  const side = Math.min(Math.max(x2 - x1, y2 - y1) * 1.6, image.width, image.height);
  const x = Math.min(Math.max((x1 + x2) / 2 - side / 2, 0), image.width - side);
  const y = Math.min(Math.max((y1 + y2) / 2 - side / 2, 0), image.height - side);
  return [x * k, y * k, side * k, side * k];
}

// Gallery photos are whole pictures, not face crops: a square from the top third usually holds the face.
function portraitCrop(image) {
  const side = Math.min(image.naturalWidth, image.naturalHeight);
  const y = Math.max(0, Math.min(image.naturalHeight * 0.3 - side / 2, image.naturalHeight - side));
  return [(image.naturalWidth - side) / 2, y, side, side];
}

// The page's own font stack (style.css), Japanese fonts included; shrunk until the text fits.
function text(ctx, value, x, y, { size, weight = 600, colour = INK, maxWidth = SIZE - 200 }) {
  const family = getComputedStyle(document.body).fontFamily;
  let px = size;
  do {
    ctx.font = `${weight} ${px}px ${family}`;
    px -= 2;
  } while (ctx.measureText(value).width > maxWidth && px > 12);
  ctx.fillStyle = colour;
  ctx.textAlign = "center";
  ctx.fillText(value, x, y);
}

function heart(ctx, cx, cy, r) {
  ctx.save();
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, 2 * Math.PI);
  ctx.fillStyle = "#fff";
  ctx.fill();
  ctx.translate(cx, cy - r * 0.28);
  const s = r * 0.5;
  ctx.beginPath();
  ctx.moveTo(0, s * 0.4);
  ctx.bezierCurveTo(0, 0, -s, -0.2 * s, -s, s * 0.5);
  ctx.bezierCurveTo(-s, s * 1.1, -0.2 * s, s * 1.4, 0, s * 1.8);
  ctx.bezierCurveTo(0.2 * s, s * 1.4, s, s * 1.1, s, s * 0.5);
  ctx.bezierCurveTo(s, -0.2 * s, 0, 0, 0, s * 0.4);
  ctx.fillStyle = PINK;
  ctx.fill();
  ctx.restore();
}

function bar(ctx, value, colour, y) {
  const width = 640;
  const x = (SIZE - width) / 2;
  ctx.fillStyle = "#efe7f1";
  ctx.beginPath();
  ctx.roundRect(x, y, width, 26, 13);
  ctx.fill();
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.roundRect(x, y, Math.max(26, (width * value) / 100), 26, 13);
  ctx.fill();
  ctx.fillStyle = INK; // the 50 % lookalike line, as on the page
  ctx.fillRect(x + width / 2 - 2, y - 8, 4, 42);
}

async function drawCard(face, index, view) {
  const best = face.matches[0];
  const canvas = el("canvas", { width: SIZE, height: SIZE });
  const ctx = canvas.getContext("2d");
  const background = ctx.createLinearGradient(0, 0, SIZE, SIZE);
  background.addColorStop(0, "#ffe1ee");
  background.addColorStop(1, "#e9e1ff");
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, SIZE, SIZE);
  ctx.fillStyle = "#fff";
  ctx.beginPath();
  ctx.roundRect(50, 50, SIZE - 100, SIZE - 100, 48);
  ctx.fill();

  text(ctx, "lookalike", SIZE / 2, 150, { size: 52, weight: 800, colour: PINK });
  const subtitle = view.photoCount > 1 ? t("card_from_photos", { n: view.photoCount }) : t("face_n", { n: index + 1 });
  text(ctx, subtitle, SIZE / 2, 200, { size: 30, weight: 500, colour: MUTED });

  if (view.photo) drawCircle(ctx, view.photo, faceCrop(face, view.photo, view.image), LEFT_X, PHOTO_Y, PHOTO_R);
  else drawCircle(ctx, null, [], LEFT_X, PHOTO_Y, PHOTO_R);
  const member = best ? await loadImage(best.photo_url) : null;
  drawCircle(ctx, member, member ? portraitCrop(member) : [], RIGHT_X, PHOTO_Y, PHOTO_R);
  heart(ctx, SIZE / 2, PHOTO_Y, 58);

  const name = best ? view.name(best) : "";
  text(ctx, t("card_you"), LEFT_X, PHOTO_Y + PHOTO_R + 70, { size: 40, maxWidth: 2 * PHOTO_R });
  text(ctx, name, RIGHT_X, PHOTO_Y + PHOTO_R + 70, { size: 40, maxWidth: 2 * PHOTO_R });
  const pct = best ? Math.round(best.resemblance) : 0;
  if (resembles(face)) {
    text(ctx, t(`card_${face.verdict}`), SIZE / 2, 810, { size: 72, weight: 800, colour: PINK });
    text(ctx, t("card_alike", { pct }), SIZE / 2, 868, { size: 34, weight: 600, colour: INK });
    bar(ctx, pct, PINK, 900);
  } else {
    text(ctx, t("card_unique"), SIZE / 2, 810, { size: 72, weight: 800, colour: LAVENDER });
    text(ctx, t("card_closest", { name, pct }), SIZE / 2, 868, { size: 34, weight: 500, colour: MUTED });
    bar(ctx, pct, LAVENDER, 900);
  }
  if (best) text(ctx, view.groupName(best.group), SIZE / 2, 985, { size: 26, weight: 500, colour: MUTED });
  return canvas;
}

// Draws the card and hands it to the browser as a download.
export async function saveCard(face, index, view) {
  const canvas = await drawCard(face, index, view);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: `lookalike-face-${index + 1}.png`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked later, not at once: the download reads the URL after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
