"""What the browser tests read off the training film's player (lab/plots/film/static/film.js)."""

PANELS = {"loss", "accuracy", "class_acc", "features", "confusion", "cams"}

# Per panel: its shown epoch, title, whether its "not recorded" line shows, and a digest of its pixels.
PANEL_STATE = """() => {
  const digest = (s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; };
  const root = document.querySelector('.lab-film');
  const panels = {};
  for (const p of root.querySelectorAll('section[data-panel]')) {
    panels[p.dataset.panel] = {epoch: p.dataset.epoch, title: p.querySelector('h3').textContent,
      nodata: !p.querySelector('.lab-film-nodata').hidden, pixels: digest(p.querySelector('canvas').toDataURL())};
  }
  return {epoch: root.dataset.epoch, frames: root.dataset.frames, follow: root.dataset.follow, panels};
}"""
