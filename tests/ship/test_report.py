"""`configspec report`: one self-contained, well-formed HTML file that tells the whole answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli_helpers import EXAMPLE, HIDE, invoke, parse_html, run_process


def _solve_json(spec: Path) -> dict:  # type: ignore[type-arg]
    r = invoke("solve", spec, "--json")
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_report_is_self_contained_and_tells_the_answer(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = invoke("report", EXAMPLE, "-o", out, "--points", "8")
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    page = parse_html(text)
    solved = _solve_json(EXAMPLE)
    visible = " ".join(page.text)
    # the assignment per pool, with the numbers of `solve --json`
    for a in solved["assignments"]:
        assert a["device"] in visible and a["draft"] in visible
    assert re.search(r"<td>rpi5</td><td class=\"n\">200</td><td>llama-3.2-1b-instruct</td>"
                     r"<td>Q4_K_M</td><td class=\"n\">6</td>", text)
    # where it came from: the spec's hash (the one solve reports), the tool's version
    assert solved["spec_sha256"] in visible
    assert "configspec-opt 0.1.0" in visible
    assert "optimal" in visible and "proven optimal (gap ≤ 1e-06): yes" in visible
    # fleet metrics with limits and which bind, the why per pool
    assert "constraints.fleet.max_cost_usd_per_hour" in visible
    assert "runner-up llama-3.2-1b-instruct Q4_K_M K=7" in visible
    # the Pareto front: an inline SVG with units, the chosen point marked
    assert "svg" in page.tags and "<img" not in text
    assert "fleet goodput (tok/s)" in visible and "verifier cost ($/h)" in visible
    assert "chosen (maximize goodput)" in text
    assert 'class="chosen"' in text  # the chosen assignment is a point of the front here
    # nothing fetched from elsewhere: no script, every link internal
    assert "<script" not in text
    assert page.links and all(link.startswith("#") for link in page.links), page.links[:3]
    assert not any(t in page.tags for t in ("link", "script", "iframe", "img"))


def test_user_text_is_escaped(tmp_path: Path) -> None:
    spec = tmp_path / "odd.yaml"
    spec.write_text(EXAMPLE.read_text().replace("name: rpi5", 'name: "rpi<b>5</b>&co"')
                    .replace("device: rpi5", 'device: "rpi<b>5</b>&co"')
                    .replace("name: llama70b-edge", 'name: "<script>x</script>"'))
    out = tmp_path / "odd.html"
    r = invoke("report", spec, "-o", out, "--points", "4")
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    page = parse_html(text)
    assert "<b>" not in text and "<script>" not in text
    assert "rpi&lt;b&gt;5&lt;/b&gt;&amp;co" in text
    assert "rpi<b>5</b>&co" in " ".join(page.text)  # what a reader sees


def test_without_matplotlib_the_report_renders_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = run_process("report", EXAMPLE, "-o", out, "--points", "4",
                    prelude=HIDE.format(name="matplotlib"))
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    page = parse_html(text)
    assert "svg" not in page.tags
    assert "matplotlib is not installed" in text
    assert 'pip install &quot;configspec-opt[plot]&quot;' in text
    assert "fleet goodput (tok/s)" in text  # the front is still there, as a table


def test_infeasible_spec_still_reports_with_the_diagnosis_and_exits_1(tmp_path: Path) -> None:
    spec = tmp_path / "tight.yaml"
    spec.write_text(EXAMPLE.read_text().replace("min_goodput_tok_s: 2.0",
                                                "min_goodput_tok_s: 9.0"))
    out = tmp_path / "tight.html"
    r = invoke("report", spec, "-o", out)
    assert r.exit_code == 1
    text = out.read_text()
    parse_html(text)
    assert "infeasible" in text
    assert "relax <code>constraints.per_device.min_goodput_tok_s</code>" in text
    assert "Not computed: the spec has no feasible assignment." in text


def test_report_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("count: 200", "count: -1"))
    r = invoke("report", bad, "-o", tmp_path / "x.html")
    assert r.exit_code == 2 and "bad.yaml:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.html").exists()
    r = invoke("report", EXAMPLE, "-o", tmp_path, "--no-pareto")
    assert r.exit_code == 2 and "is a directory" in r.stderr


def test_report_to_stdout_without_the_front(tmp_path: Path) -> None:
    r = invoke("report", EXAMPLE, "-o", "-", "--no-pareto")
    assert r.exit_code == 0
    page = parse_html(r.stdout)
    assert "svg" not in page.tags and "Not computed (--no-pareto)." in r.stdout


def _git(repo: Path, *args: str) -> None:
    import os
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_diff_html_sets_two_revisions_side_by_side(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    spec = repo / "fleet.yaml"
    spec.write_text(EXAMPLE.read_text().replace("name: orin", 'name: "orin<i>&"')
                    .replace("device: orin", 'device: "orin<i>&"'))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    spec.write_text(spec.read_text().replace("rtt_s: 0.04", "rtt_s: 0.4"))
    _git(repo, "commit", "-q", "-am", "two")
    r = invoke("diff", "--html", f"{spec}@HEAD~1", f"{spec}@HEAD")
    assert r.exit_code == 0, r.stderr
    page = parse_html(r.stdout)
    visible = " ".join(page.text)
    assert "before:" in visible and "after:" in visible
    assert "fleet.yaml@HEAD~1" in visible and "fleet.yaml@HEAD" in visible
    assert "orin<i>&" in visible and "<i>" not in r.stdout  # escaped
    assert "configuration" in visible  # rpi5's K changes with its round trip
    assert "goodput (tok/s)" in visible
    assert not page.links and "<script" not in r.stdout
    r = invoke("diff", "--html", "--json", f"{spec}@HEAD~1", f"{spec}@HEAD")
    assert r.exit_code == 2 and "give one" in r.stdout + r.stderr
