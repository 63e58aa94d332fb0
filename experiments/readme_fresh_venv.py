"""Run the README's two set-up commands as a new user would: a fresh clone of a commit, a fresh
virtual environment, each `&&` step timed, exit codes and the test summary recorded.

    python -m experiments.readme_fresh_venv --line 1 --json docs/results/readme-line1.json
    python -m experiments.readme_fresh_venv --line 2 --json docs/results/readme-line2.json

The commands are read from the README's first bash block, so the record is of what the README
says today, not of a copy of it. Stops at the first failing step, like `&&` does.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from runtime.cli import Parser

REPO = Path(__file__).resolve().parents[1]


def readme_commands(readme: Path) -> list[str]:
    block = re.search(r"```bash\n(.*?)```", readme.read_text(), re.S)
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip()][:2]


def run(line: int, commit: str, keep: Path | None) -> dict:
    work = Path(keep or tempfile.mkdtemp(prefix="edgecnn-readme-"))
    src, venv = work / "src", work / "venv"
    subprocess.run(["git", "clone", "-q", str(REPO), str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "checkout", "-q", commit], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    command = readme_commands(src / "README.md")[line - 1]
    steps = []
    for step in command.split("&&"):
        t0 = time.time()
        print(f"$ {step.strip()}", file=sys.stderr, flush=True)
        p = subprocess.run(step.strip(), shell=True, cwd=src, env=env, capture_output=True, text=True)
        tail = (p.stdout + p.stderr).strip().splitlines()[-25:]
        steps.append({"command": step.strip(), "exit_code": p.returncode, "seconds": round(time.time() - t0, 1),
                      "output_tail": tail})
        print("\n".join(tail[-6:]), file=sys.stderr, flush=True)
        (work / f"step{len(steps)}.log").write_text(p.stdout + p.stderr)
        if p.returncode:
            break
    packages = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                              capture_output=True, text=True).stdout
    return {"readme_line": line, "command": command, "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "exit_code": next((s["exit_code"] for s in steps if s["exit_code"]), 0),
            "total_seconds": round(sum(s["seconds"] for s in steps), 1), "steps": steps,
            "venv_packages": len(json.loads(packages or "[]")), "work_dir": str(work)}


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--line", type=int, choices=(1, 2), required=True, help="which README command")
    p.add_argument("--commit", default="HEAD", help="commit to clone (default HEAD of this checkout)")
    p.add_argument("--json", type=Path, required=True, help="where to write the record")
    p.add_argument("--work", type=Path, default=None, help="keep the clone and venv here (default: a temp folder)")
    a = p.parse_args()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", a.commit], capture_output=True, text=True,
                            check=True).stdout.strip()
    from runtime.provenance import machine
    rec = {**run(a.line, commit, a.work), "machine": machine()}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rec, indent=1) + "\n")
    for s in rec["steps"]:
        print(f"exit {s['exit_code']}  {s['seconds']:7.1f} s  {s['command']}", file=sys.stderr)
    return rec["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
