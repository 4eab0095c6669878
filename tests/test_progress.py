"""Progress when stderr is a file or a pipe: a line per step, a heartbeat while a step takes long,
every line naming its job and dataset, counts that add up; and the scripts' longest runs piped to a
file are never silent for more than 10 s (slow tier)."""

from __future__ import annotations

import io
import re
import time

import pytest

from tests.progress_watch import COUNT, REPO, watch
from utils.progress import Steps, labelled, line

SILENCE_LIMIT_S = 10.0


def test_steps_count_up_to_their_total_and_name_the_label():
    stream = io.StringIO()
    with labelled("chain digits cc"), labelled("digits"), Steps(3, "stages", stream=stream) as steps:
        for name in ("teacher", "student 1", "PLL"):
            steps.done(f"{name}: 3 trained")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(re.match(r"\[ *\d+\.\d s\] chain digits cc: \d/3 stages: ", x) for x in lines)
    assert [COUNT.match(x)["done"] for x in lines] == ["1", "2", "3"]
    with labelled("job a"), labelled("digits"):
        buffer = io.StringIO()
        line("teacher: training 3 run(s)", stream=buffer)
    assert buffer.getvalue() == "job a · digits: teacher: training 3 run(s)\n"


def test_a_long_step_is_not_silent():
    stream = io.StringIO()
    with labelled("solver"), Steps(2, "solves", stream=stream, heartbeat=0.1) as steps:
        time.sleep(0.35)  # one step far longer than the heartbeat
        steps.done("first")
        time.sleep(0.25)
    lines = stream.getvalue().splitlines()
    beats = [x for x in lines if "working on the next" in x]
    assert len(beats) >= 3 and all(x.split("] ", 1)[1].startswith("solver: ") for x in lines)
    assert any("1/2 solves, working on the next (the last done: first)" in x for x in beats)
    assert "1/2 solves: first" in "\n".join(lines)


def test_no_heartbeat_thread_outlives_its_steps():
    import threading

    before = threading.active_count()
    with Steps(1, "x", stream=io.StringIO(), heartbeat=0.05) as steps:
        steps.done()
    assert threading.active_count() == before


# -- each script's longest run in the tests, piped ------------------------------------------------------


def assert_watched(result, limit: float = SILENCE_LIMIT_S):
    assert result.status == 0, "\n".join(line for _, line in result.lines[-5:])
    assert result.longest_silence() <= limit, [f"{t:.1f} {x}" for t, x in result.lines]
    for key, (done, total) in result.final_counts().items():
        assert done == total, f"{key}: the progress lines stop at {done}/{total}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ("numerical_solving.py", "--method", "adam", "--n", "100", "--max_iter", "10000", "--max-dist", "2"),
        (
            "gmm_distill.py",
            "simulate",
            "--alpha",
            "2",
            "--rounds",
            "1",
            "--N",
            "300",
            "--trials",
            "8",
            "--validation",
            "0.25",
        ),
        ("train_linear.py", "-d", "digits", "synthetic", "--epochs", "20", "--corruption", "0.5", "--baselines", "cl"),
    ],
    ids=["solver-adam", "gmm-validation", "training-two-datasets-cl"],
)
def test_long_runs_piped_to_a_file_are_never_silent(argv, tmp_path):
    script, *flags = argv
    out = "--out" if script != "train_linear.py" else "-c"
    result = watch(str(REPO / script), *flags, out, str(tmp_path / "o"), cwd=tmp_path)
    assert_watched(result)
    if argv[0] == "train_linear.py":  # each dataset's lines name it; announced run ranges add up
        stage_lines = [x for _, x in result.lines if "stages" in x]
        assert {x.split("] ")[1].split(":")[0] for x in stage_lines} == {"digits", "synthetic"}
        for _, x in result.lines:
            match = re.search(r"runs? (\d+)(?:–(\d+))? of (\d+)", x)
            if match:
                assert 1 <= int(match[1]) <= int(match[2] or match[1]) <= int(match[3])
        announced, trained = {}, {}  # (dataset, stage) → runs announced as training / the stage's "N trained"
        for _, x in result.lines:
            if match := re.search(r"(\w+): ([^:\]]+): training (\d+) run\(s\)", x):
                key = (match[1], match[2])
                announced[key] = announced.get(key, 0) + int(match[3])
            elif match := re.search(r"(\w+): \d+/\d+ stages: ([^:]+): (\d+) trained", x):
                trained[(match[1], match[2])] = int(match[3])
        assert announced and announced == {key: n for key, n in trained.items() if n}
