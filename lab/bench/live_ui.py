"""``python -m lab bench --live-ui``: what watching a run costs the run, and the server's memory.

The same run (the Train page's default draft: gap_cam on shapes, feature-space probe
and CAM samples on) is started twice through a real ``streamlit run app.py`` server
and a real browser (Playwright + Debian's chromium, as in the browser tests):

1. *unwatched*: Start is clicked and the tab is closed at once, so the server
   trains with no page refreshing;
2. *watched*: the Train page stays open, refreshing every second, until the end.

Both runs train in the same server process through the same JobManager, so the
only difference is the page. Images/s come from each run's own metrics; the
server's resident memory is sampled from /proc while the watched run trains
(``--minutes`` keeps a page watching back-to-back runs that long, for the leak check).

The pair is measured in two layouts of the machine's cores:

* *shared*: server and browser on all cores, as the scheduler likes: the worst case,
  the browser drawing the page takes its CPU from training (chromium runs in its own
  session, so the kernel's autogroup scheduling gives it an equal share whatever its nice);
* *isolated*: the server on the first core, the browser on the others, standing in
  for a classroom where the browsers run on the students' machines. Both runs of the
  pair train on that one core, so the ratio is the cost of the page to the server
  alone: Streamlit's reruns, the figures, the websocket.

The page's script runs are counted in the browser, so each figure says how often the
watched page really refreshed.

Needs the dev requirements (playwright) and /usr/bin/chromium; it imports no Streamlit.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from lab.runs.store import LIVE_STATUSES, RunStore
from lab.serve import CHROMIUM, Server, launch_chromium

IDLE = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'"""
# Counts the page's script runs (full and fragment) from now on, in window.labRefreshes: proof that
# the watched page really refreshed while the run trained.
COUNT_REFRESHES = """() => {
  window.labRefreshes = 0;
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => { if (app.dataset.testScriptState === 'running') window.labRefreshes++; })
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc; ended ones count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / ticks


def browser_pids() -> list[int]:
    return [pid for pid in _children(os.getpid()) if _is_browser(pid)]


def _is_browser(pid: int) -> bool:
    try:
        return "chrom" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_run(page, server: Server, epochs: int) -> str:
    """Fill the Train page's epochs, count its refreshes from now on and click Start; the new run's id
    (once its status is written: until then the store would call it interrupted)."""
    runs = RunStore(server.runs_dir)
    before = {run.id for run in runs.list()}
    page.goto(f"{server.url}/train")
    page.wait_for_function(IDLE, timeout=120_000)
    box = page.get_by_role("spinbutton", name="Epochs")
    box.fill(str(epochs))
    box.press("Enter")
    page.wait_for_function(IDLE, timeout=60_000)
    page.evaluate(COUNT_REFRESHES)
    page.get_by_role("button", name="Start training").click()
    deadline = time.monotonic() + 60
    while not (started := {run.id for run in runs.list() if run.state in LIVE_STATUSES} - before):
        if time.monotonic() > deadline:
            raise RuntimeError("the Train page did not start a run")
        time.sleep(0.2)
    return started.pop()


def wait_run(server: Server, run_id: str, samples: list[tuple[float, float]] | None = None) -> dict:
    """Until the run ends; with ``samples``, the server's memory (seconds, MB) every second meanwhile.
    Returns the CPU seconds the server and the browser used meanwhile: where a watched run's
    time goes (a browser process that ends counts up to its last sample)."""
    started, server_cpu = time.monotonic(), cpu_seconds([server.proc.pid])
    before = {pid: cpu_seconds([pid]) for pid in browser_pids()}
    last = dict(before)
    runs = RunStore(server.runs_dir)
    while runs.read_status(run_id)["status"] in LIVE_STATUSES:
        _sample_browser(last)
        if samples is not None:
            samples.append((time.monotonic() - started, rss_mb(server.proc.pid)))
        time.sleep(1)
    _sample_browser(last)
    return {"wall_s": time.monotonic() - started, "server_cpu_s": cpu_seconds([server.proc.pid]) - server_cpu,
            "browser_cpu_s": sum(spent - before.get(pid, 0.0) for pid, spent in last.items())}


def _sample_browser(last: dict[int, float]) -> None:
    for pid in browser_pids():  # max: a process may end between the listing and the reading
        last[pid] = max(last.get(pid, 0.0), cpu_seconds([pid]))


def summarize_run(server: Server, run_id: str, cpu: dict) -> dict:
    """Train-only images/s (epochs after the first) and wall seconds per epoch, insight included,
    with the run's CPU accounting from :func:`wait_run`."""
    runs = RunStore(server.runs_dir)
    rows = runs.read_metrics(run_id)[1:] or runs.read_metrics(run_id)
    return {"run": run_id, "status": runs.read_status(run_id)["status"], **cpu,
            "images_per_sec": sum(r["images_per_sec"] for r in rows) / len(rows),
            "seconds_per_epoch": sum(r["seconds"] for r in rows) / len(rows)}


def run_live_bench(epochs: int = 4, minutes: float = 0.0) -> dict:
    """The unwatched/watched pair with the browser sharing the server's cores (and, with
    ``minutes``, the memory check), then the pair with server and browser on their own cores."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    shared = _measure_pair(epochs, minutes)
    mine = os.sched_getaffinity(0)
    cores = sorted(mine)
    if len(cores) < 2:
        return {"epochs": epochs, "shared": shared, "isolated": None}
    os.sched_setaffinity(0, set(cores[1:]))  # the browser, started from this thread, inherits it
    try:
        isolated = _measure_pair(epochs, 0.0, server_cores={cores[0]})
    finally:
        os.sched_setaffinity(0, mine)
    return {"epochs": epochs, "shared": shared, "isolated": isolated}


def _measure_pair(epochs: int, minutes: float, server_cores: set[int] | None = None) -> dict:
    """One server and one browser: a run nobody watches, then runs watched for ``minutes``
    (at least one), with the server's memory sampled meanwhile."""
    from playwright.sync_api import sync_playwright

    with (tempfile.TemporaryDirectory() as folder, sync_playwright() as p,
          Server(Path(folder), cores=server_cores) as server):
        browser = launch_chromium(p)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            unwatched_id = start_run(context.new_page(), server, epochs)
            context.close()  # nobody watches: the session ends, the run trains on
            unwatched = summarize_run(server, unwatched_id, wait_run(server, unwatched_id))

            samples: list[tuple[float, float]] = []
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            watched = []
            deadline = time.monotonic() + minutes * 60
            run_end_mb = []
            while not watched or time.monotonic() < deadline:
                run_id = start_run(page, server, epochs)
                run = summarize_run(server, run_id, wait_run(server, run_id, samples))
                watched.append({**run, "page_refreshes": page.evaluate("window.labRefreshes")})
                run_end_mb.append(rss_mb(server.proc.pid))
        finally:
            browser.close()
    return {"server_cores": sorted(server_cores) if server_cores else None,
            "unwatched": unwatched, "watched": watched,
            "ratio": watched[0]["images_per_sec"] / unwatched["images_per_sec"],
            "memory_mb": {"first": samples[0][1], "last": samples[-1][1],
                          "minutes": sum(w["seconds_per_epoch"] * epochs for w in watched) / 60,
                          "samples": len(samples),
                          # one figure per watched run, where it ended: a plateau or a climb shows here
                          "per_run": [round(mb) for mb in run_end_mb]}}


def _cpu_text(run: dict) -> str:
    return (f"CPU: server {run['server_cpu_s']:.0f} s, browser {run['browser_cpu_s']:.0f} s "
            f"in {run['wall_s']:.0f} s")


def _pair_lines(pair: dict) -> list[str]:
    un, first = pair["unwatched"], pair["watched"][0]
    return [
        f"  unwatched  {un['images_per_sec']:>8,.0f} img/s   {un['seconds_per_epoch']:.2f} s/epoch with insight   "
        + _cpu_text(un),
        f"  watched    {first['images_per_sec']:>8,.0f} img/s   {first['seconds_per_epoch']:.2f} s/epoch with insight   "
        + _cpu_text(first) + f" (Train page open, {first['page_refreshes']} refreshes)",
        f"  watched/unwatched images/s: {pair['ratio']:.2f}",
    ]


def format_live(report: dict) -> str:
    shared, isolated = report["shared"], report["isolated"]
    mem = shared["memory_mb"]
    lines = [f"gap_cam on shapes, {report['epochs']} epochs, probe + CAM samples on, one server, one browser",
             "browser on the server's cores (the worst case: it draws the page with training's CPU):",
             *_pair_lines(shared),
             f"  server memory while watched: {mem['first']:,.0f} -> {mem['last']:,.0f} MB "
             f"over {mem['minutes']:.1f} min ({len(shared['watched'])} run(s), {mem['samples']} samples); after each run: "
             + ", ".join(map(str, mem["per_run"])) + " MB"]
    if isolated:
        lines += [f"server on core {isolated['server_cores'][0]}, browser on the others "
                  "(as in a classroom, where the browsers run on the students' machines):",
                  *_pair_lines(isolated),
                  f"watched/unwatched images/s: {isolated['ratio']:.2f} (server alone), "
                  f"{shared['ratio']:.2f} (browser on the server's cores)"]
    else:
        lines.append(f"watched/unwatched images/s: {shared['ratio']:.2f} (browser on the server's cores)")
    return "\n".join(lines)
