"""The requirements' engineering figures in one place, each measured by the bench that measures it and printed
against its goal:

| figure | goal | measured by |
| --- | --- | --- |
| a new task online | <= 30 min | `bench.multiclass`: a multiclass project from `make dev` to served predictions through the UI's calls |
| flows scheduled at once | >= 50 | `bench.concurrency`: pipelines queued at once, each run once, against the same run one after the other |
| CPU use | >= 60 % | `bench.concurrency`: the machine's CPU while they ran at once |
| availability | >= 99.99 % | `bench.hit_rate`: requests answered over 3 replicas while versions move and replicas are killed |
| model-version hit rate | >= 99.99 % | `bench.hit_rate`: answers by the version the serving record named when they were sent |
| run logs | >= 98 % of task nodes | `bench.multiclass`: finished runs and steps whose logs hold start, outcome and error |

Each bench runs as its own process (its output is kept in the scratch folder and its last lines printed when a
figure cannot be read from it). `--quick` runs the concurrency bench on 2 projects x 3 days instead of 5 x 10 (6
pipelines, not the 50 the goal names: the table says so).

    .venv/bin/python -m bench.requirements [--quick]
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Figure:
    name: str
    goal: str
    value: str = "not measured"
    met: bool | None = None


def run(module: str, *args: str, scratch: Path) -> str:
    log = scratch / f"{module.split('.')[-1]}.log"
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    print(f"  {module} {' '.join(args)}: {time.perf_counter() - began:.0f} s, exit {done.returncode}", flush=True)
    return done.stdout


def grab(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text)


def read_figures(*, multiclass: str, hit_rate: str, concurrency: str) -> dict[str, Figure]:
    """Each figure from the output of the bench that measures it ("not measured" when the line is not there)."""
    figures = {key: Figure(name, goal) for key, name, goal in (
        ("online", "a new task online", "<= 30 min"), ("flows", "flows scheduled at once", ">= 50"),
        ("cpu", "CPU use while they ran", ">= 60 %"), ("available", "availability", ">= 99.99 %"),
        ("hits", "model-version hit rate", ">= 99.99 %"), ("logs", "run logs of task nodes", ">= 98 %"))}

    if found := grab(r"total, make dev to served class probabilities\s+([\d.]+) s", multiclass):
        seconds = float(found.group(1))
        figures["online"].value, figures["online"].met = f"{seconds / 60:.1f} min (multiclass, through the UI)", \
            seconds <= 30 * 60
    if found := grab(r"log coverage: (\d+) of (\d+) runs and (\d+) of (\d+) steps .*: ([\d.]+)%", multiclass):
        share = float(found.group(5))
        figures["logs"].value = f"{share:.2f} % ({found.group(1)}/{found.group(2)} runs, {found.group(3)}/" \
                                f"{found.group(4)} steps)"
        figures["logs"].met = share >= 98.0

    if found := grab(r"availability: (\d+) of (\d+) answered = ([\d.]+)", hit_rate):
        figures["available"].value = f"{float(found.group(3)):.6f} ({found.group(1)} of {found.group(2)})"
        figures["available"].met = float(found.group(3)) >= 0.9999
    if found := grab(r"version hit rate: (\d+) of (\d+) = ([\d.]+)", hit_rate):
        figures["hits"].value = f"{float(found.group(3)):.6f} ({found.group(1)} of {found.group(2)})"
        figures["hits"].met = float(found.group(3)) >= 0.9999

    if found := grab(r"machine CPU use while the (\d+) ran at once: (\d+)%", concurrency):
        pipelines, cpu = int(found.group(1)), int(found.group(2))
        ratio = grab(r"throughput, concurrent / serial: ([\d.]+)x", concurrency)
        checked = "every pipeline ran once per pass" in concurrency
        figures["flows"].value = (f"{pipelines} queued at once, {ratio.group(1) if ratio else '?'}x the serial "
                                  f"throughput{'' if checked else ', NOT all run exactly once'}")
        figures["flows"].met = pipelines >= 50 and checked
        figures["cpu"].value, figures["cpu"].met = f"{cpu} % of the machine", cpu >= 60

    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small concurrency run (6 pipelines, not 50)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-requirements-"))
    print(f"the requirements' figures (bench logs in {scratch})")
    multiclass = run("bench.multiclass", scratch=scratch)
    hit_rate = run("bench.hit_rate", scratch=scratch)
    concurrency = run("bench.concurrency", *(["--projects", "2", "--days", "3"] if args.quick else []),
                      scratch=scratch)
    figures = read_figures(multiclass=multiclass, hit_rate=hit_rate, concurrency=concurrency)
    print(f"\n{'figure':<28}{'goal':<22}{'measured':<62}verdict")
    for figure in figures.values():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[figure.met]
        print(f"{figure.name:<28}{figure.goal:<22}{figure.value:<62}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
