"""The scikit-learn face: estimator checks, equality with train_linear.py's runs, interoperability, label issues."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from selfdistill import (
    LabelNoiseClassifier,
    PLLClassifier,
    SelfDistillationClassifier,
    find_label_issues,
)
from tests.conftest import REPO

# Every check scikit-learn runs passes. The one it skips itself: check_array_api_input runs only
# with SCIPY_ARRAY_API=1, and the estimators compute with numpy and torch, not the array API.
SKIPPED_BY_SKLEARN = {"check_array_api_input": "the estimators compute with numpy and torch, not the array API"}
QUICK = dict(epochs=2)  # the checks test the contract, not accuracy: two epochs pass every threshold


def small_digits(n: int = 300, seed: int = 0):
    """The first ``n`` digits images, pixels scaled to [0, 1], and their labels."""
    x, y = load_digits(return_X_y=True)
    return (x[:n] / 16.0).astype(np.float32), y[:n]


@parametrize_with_checks([SelfDistillationClassifier(rounds=1, **QUICK), PLLClassifier(**QUICK)])
def test_sklearn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    if name in SKIPPED_BY_SKLEARN:
        pytest.skip(SKIPPED_BY_SKLEARN[name])
    check(estimator)


def test_import_loads_no_torch():
    code = "import sys, selfdistill; print(sorted(m for m in ('torch', 'training.stages') if m in sys.modules))"
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


# -- the same numbers as train_linear.py ------------------------------------------------------------


def test_estimators_equal_the_chain_runs_epoch_by_epoch(tmp_path):
    """The chain trains on labels it corrupts itself; given those labels, the estimators train the same heads."""
    import train_linear
    from data.digits import load_digits_features
    from training.store import RunStore

    digits = load_digits_features()
    keep = np.arange(400)  # a part of the training split keeps this test quick
    x, true = digits.train_features[keep], digits.train_labels[keep]
    np.savez(
        tmp_path / "f.npz",
        train_features=x,
        train_labels=true,
        test_features=digits.test_features[:50],
        test_labels=digits.test_labels[:50],
    )
    store = tmp_path / "store"
    argv = ["--features", str(tmp_path / "f.npz"), "--ctype", "sym", "--corruption", "0.4", "--seed", "3"]
    argv += ["--rounds", "2", "--epochs", "3", "--which", "last", "--threads", "1"]
    assert train_linear.main(argv + ["-c", str(store), "--csv", str(tmp_path / "r.csv")]) == 0
    runs = {record.config.stage.slug: record for record in RunStore(store).records()}
    noisy, _, _ = runs["teacher"].labels(len(true), 10)
    assert (noisy != true).mean() > 0.3  # the comparison is made on noisy labels

    settings = dict(epochs=3, random_state=3)  # lr and wd: the defaults of both for a features file
    students = SelfDistillationClassifier(rounds=2, **settings).fit(x, noisy)
    pll = PLLClassifier(**settings).fit(x, noisy)
    fitted = {stage.name: stage for stage in students.stages_} | {"pll": pll.stages_[1]}
    assert pll.stages_[0].name == "teacher"
    np.testing.assert_array_equal(pll.stages_[0].coef, students.stages_[0].coef)
    assert sorted(fitted) == sorted(runs) == ["pll", "student1", "student2", "teacher"]
    for slug, record in runs.items():
        np.testing.assert_array_equal(fitted[slug].coef, record.weights("last").numpy(), err_msg=slug)
        logged = record.history()
        assert len(fitted[slug].history) == len(logged) == 3
        for ours, theirs in zip(fitted[slug].history, logged):
            assert ours["epoch"] == theirs["epoch"] and ours["lr"] == theirs["lr"]
            assert ours["train_loss"] == theirs["train_loss"], slug
            assert ours["train_acc"] == theirs["train_acc_noisy"], slug


def test_same_random_state_same_numbers_other_state_other_numbers():
    x, y = small_digits(200)
    first = PLLClassifier(epochs=2, random_state=5).fit(x, y)
    again = PLLClassifier(epochs=2, random_state=5).fit(x, y)
    other = PLLClassifier(epochs=2, random_state=6).fit(x, y)
    for a, b in zip(first.stages_, again.stages_):
        np.testing.assert_array_equal(a.coef, b.coef)
        assert a.history == b.history
    assert not np.array_equal(first.stages_[1].coef, other.stages_[1].coef)


# -- the estimator contract ---------------------------------------------------------------------------


def test_string_labels_stages_and_fitted_attributes():
    x, y = small_digits(200)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    model = SelfDistillationClassifier(rounds=2, epochs=3).fit(x, names)
    assert list(model.classes_) == sorted(set(names))
    assert [s.name for s in model.stages_] == ["teacher", "student1", "student2"]
    assert [s.label for s in model.stages_] == ["teacher", "student 1", "student 2"]
    assert model.n_features_in_ == 64 and model.stages_[0].coef.shape == (10, 64)
    assert model.given_labels_.tolist() == names.tolist()
    np.testing.assert_array_equal(model.corrected_labels_, model.predict(x))
    np.testing.assert_array_equal(model.label_issues_, model.predict(x) != names)
    last = model.predict_proba(x)
    np.testing.assert_allclose(last.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict_proba(x, stage="student 2"), last)
    np.testing.assert_array_equal(model.predict_proba(x, stage=0), model.predict_proba(x, stage="teacher"))
    assert not np.array_equal(model.predict_proba(x, stage="teacher"), last)
    with pytest.raises(ValueError, match=r"stage must name one of .*teacher, student1, student2.*got 'pll'"):
        model.predict(x, stage="pll")


def test_dataframe_columns_become_feature_names():
    import pandas as pd

    x, y = small_digits(100)
    frame = pd.DataFrame(x, columns=[f"pixel{i}" for i in range(64)])
    model = PLLClassifier(epochs=1).fit(frame, y)
    assert list(model.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="fitted with feature names"):
        plain = model.predict(x)
    np.testing.assert_array_equal(model.predict(frame), plain)


@pytest.mark.parametrize(
    "estimator, message",
    [
        (SelfDistillationClassifier(lr=-1.0), "lr must be positive, got -1"),
        (SelfDistillationClassifier(rounds=-1), "rounds must be an integer of at least 0"),
        (PLLClassifier(batch_size=0), "batch_size must be at least 1, got 0"),
        (PLLClassifier(k=11), r"k must lie in 1\.\.10 \(the number of classes\), got 11"),
        (PLLClassifier(q=0.0), r"q must lie in \(0, 1\]"),
        (PLLClassifier(random_state=-1), "random_state must be at least 0"),
        (PLLClassifier(optimizer="adam"), "optimizer must be one of sgd, lbfgs"),
        (PLLClassifier(device="tpu"), "device must be one of cpu, cuda, auto"),
        (LabelNoiseClassifier(method="clean"), "method must be one of ls, boot-soft"),
        (LabelNoiseClassifier(method="boot-soft", optimizer="lbfgs"), "method boot-soft has no objective"),
    ],
)
def test_bad_parameters_are_value_errors_naming_the_parameter(estimator, message):
    x, y = small_digits(60)
    with pytest.raises(ValueError, match=message):
        estimator.fit(x, y)


def test_pickled_model_predicts_the_same():
    x, y = small_digits(200)
    model = PLLClassifier(epochs=2).fit(x, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(loaded.label_issues_, model.label_issues_)


def test_pipeline_with_a_scaler():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = small_digits(300)
    pipe = Pipeline([("scale", StandardScaler()), ("pll", PLLClassifier(epochs=5, wd=1e-2))]).fit(x[:200], y[:200])
    assert pipe.score(x[200:], y[200:]) > 0.8  # held-out digits: well above chance (0.1)


def test_grid_search_over_rounds_and_wd():
    from sklearn.model_selection import GridSearchCV

    x, y = small_digits(150)
    model = SelfDistillationClassifier(epochs=5, batch_size=16)
    grid = GridSearchCV(model, {"rounds": [0, 1], "wd": [1e-3, 1e-2]}, cv=2)
    grid.fit(x, y)
    assert set(grid.best_params_) == {"rounds", "wd"} and grid.best_score_ > 0.5
    assert len(grid.best_estimator_.stages_) == grid.best_params_["rounds"] + 1


@pytest.mark.slow
def test_grid_search_in_two_processes():
    from sklearn.model_selection import GridSearchCV

    x, y = small_digits(300)
    params = {"rounds": [1, 2], "wd": [1e-3, 1e-2]}
    model = SelfDistillationClassifier(epochs=5, batch_size=16)
    parallel = GridSearchCV(model, params, cv=3, n_jobs=2).fit(x, y)
    serial = GridSearchCV(model, params, cv=3, n_jobs=1).fit(x, y)
    np.testing.assert_array_equal(parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])


def test_cleanlab_clean_learning_wraps_the_pll_classifier():
    from cleanlab.classification import CleanLearning

    x, y = small_digits(200)
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 10
    learner = CleanLearning(clf=PLLClassifier(epochs=3, wd=1e-2), cv_n_folds=2, seed=0).fit(x, noisy)
    issues = learner.get_label_issues()
    assert len(issues) == len(y) and issues["is_label_issue"].any()
    assert learner.predict(x).shape == y.shape


# -- label issues -----------------------------------------------------------------------------------


def test_find_label_issues_finds_flipped_labels():
    """20% of digits labels flipped: PLL's flags are mostly the flipped ones (chance: 20%) and catch most of them."""
    from sklearn.preprocessing import StandardScaler

    x, y = small_digits(400)
    x = StandardScaler().fit_transform(x)
    rng = np.random.default_rng(0)
    flipped = rng.random(len(y)) < 0.2
    noisy = np.where(flipped, (y + rng.integers(1, 10, len(y))) % 10, y)
    mask = find_label_issues(x, noisy, method="pll", epochs=20, wd=1e-2)
    assert mask.dtype == bool and mask.shape == y.shape
    precision, recall = flipped[mask].mean(), mask[flipped].mean()
    assert precision > 0.7 and recall > 0.7, (precision, recall)
    ranked = find_label_issues(x, noisy, method="pll", epochs=20, wd=1e-2, return_indices_ranked_by="self_confidence")
    assert sorted(ranked) == list(np.flatnonzero(mask))
    model = PLLClassifier(epochs=20, wd=1e-2).fit(x, noisy)
    given = model.predict_proba(x)[ranked, noisy[ranked]]
    assert np.all(np.diff(given) >= 0)  # least confident in the given label first
    with pytest.raises(ValueError, match="return_indices_ranked_by must be None or one of self_confidence"):
        find_label_issues(x, noisy, return_indices_ranked_by="margin")


# -- the README example ------------------------------------------------------------------------------


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## scikit-learn estimators", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(capsys):
    exec(compile(readme_example(), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "flagged" in printed


# -- the label-issue benchmark -------------------------------------------------------------------------


def test_flag_scores_equal_sklearns():
    from sklearn.metrics import precision_recall_fscore_support

    from benchmarks.bench_label_issues import flag_scores

    rng = np.random.default_rng(1)
    flagged, corrupted = rng.random(200) < 0.3, rng.random(200) < 0.4
    expected = precision_recall_fscore_support(corrupted, flagged, average="binary")[:3]
    found = flag_scores(flagged, corrupted)
    np.testing.assert_allclose([found["precision"], found["recall"], found["f1"]], 100 * np.array(expected))
    assert flag_scores(np.zeros(5, bool), np.ones(5, bool)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_benchmark_table_has_every_method(capsys, tmp_path):
    from benchmarks.bench_label_issues import main

    argv = ["-d", "synthetic", "--ctype", "sym", "--corruption", "0.4", "--seed", "0", "--epochs", "2"]
    assert main(argv + ["--rounds", "1", "--folds", "2", "--json"]) == 0
    (tmp_path / "rows.json").write_text(capsys.readouterr().out)
    assert main(["--from-json", str(tmp_path / "rows.json")]) == 0
    lines = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header, row = [cell.strip() for cell in lines[0]], [cell.strip() for cell in lines[1]]
    assert header[3:6] == ["F1 (P / R) pll", "F1 (P / R) students", "F1 (P / R) cleanlab"]
    assert header[6:10] == [f"kept acc {m}" for m in ("pll", "students", "cleanlab", "none")]
    assert row[:2] == ["synthetic", "sym"] and row[2].startswith("0.4 (0.") and len(row) == len(header) == 12
    assert all(re.fullmatch(r"\d+\.\d ± 0\.0( \(\d+ / \d+\))?", cell) for cell in row[3:])  # one seed: std 0
