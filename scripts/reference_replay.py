"""Replay the authors' training loop for one run of the store and compare three logs epoch by epoch.

    python3 -m scripts.reference_replay -c runs/ --wd 0.01 --seed 2 --corruption 0.5 --stage student2

The authors' loop as their ``train_linear.py`` runs it — ``torch.manual_seed``, ``nn.Linear`` heads
(a frozen teacher module for students and PLL), a shuffling ``DataLoader``, ``CrossEntropyLoss``
(or their partial-label loss), ``torch.optim.SGD`` and lr × gamma per epoch — is run on digits with
the run's own noisy labels and its teacher's checkpoint from the store. It prints the largest
per-epoch differences in training loss and test accuracy between that loop, this project's run,
and the authors' own log (``tests/data/reference_digits_traces.json``): where this project departs
from their log, the replay shows whether their own code, given this project's previous round,
departs too. It seeds torch's global generator, as the authors' process does; run it as a script.
"""

from __future__ import annotations

import json
from pathlib import Path

from utils.cli import Parser, add_store, add_threads
from utils.errors import UsageError, UserError, exits_cleanly, run_script
from utils.stages import Stage

LOG = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference_digits_traces.json"


def build_parser() -> Parser:
    parser = Parser(prog="python3 -m scripts.reference_replay", description=__doc__.split("\n\n")[0])
    add_store(parser, help="the run store")
    parser.add_argument("--wd", type=float, required=True, help="the run's weight decay (the log has 5e-4 and 0.01)")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed")
    parser.add_argument("--corruption", type=float, required=True, help="the run's η")
    parser.add_argument("--stage", required=True, help="teacher, student<t> or pll")
    parser.add_argument("--log", type=Path, default=LOG, help="the authors' per-epoch logs")
    add_threads(parser, default=2, help="torch threads (the log's: 2)")
    return parser


def find_run(store, wd: float, seed: int, eta: float, stage: Stage):
    for record in store.records():
        c = record.config
        if (
            (c.dataset, c.ctype, c.seed, c.stage, c.seeding) == ("digits", "cc", seed, stage, "reference")
            and abs(c.corruption - eta) < 1e-12
            and abs(c.wd - wd) < 1e-15
            and c.lr == 0.1
            and c.epochs == 200
        ):
            return record
    raise UserError(
        f"no digits run with wd {wd:g}, seed {seed}, η {eta:g}, {stage.label} (reference seeding, lr 0.1, "
        f"200 epochs) in the store; train it with train_linear.py first"
    )


def authors_loop(record, teacher_weights, features, threads: int) -> list[dict[str, float]]:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.utils.data as tud

    class Rows(tud.Dataset):
        def __init__(self, x, y, noisy):
            self.x, self.y, self.noisy = x, y, noisy

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], self.y[i], self.noisy[i]

    config = record.config
    k, d = features.num_classes, features.dim
    noisy, _, _ = record.labels(features.train_labels.shape[0], k)
    x, y = torch.from_numpy(features.train_features), torch.from_numpy(features.train_labels)
    x_test, y_test = torch.from_numpy(features.test_features), torch.from_numpy(features.test_labels)
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    model = nn.Linear(d, k, bias=False)
    teacher = None
    if teacher_weights is not None:
        teacher = nn.Linear(d, k, bias=False)
        teacher.load_state_dict({"weight": teacher_weights})
        if config.is_pll:
            model.load_state_dict({"weight": teacher_weights})
    train = tud.DataLoader(Rows(x, y, torch.from_numpy(noisy)), batch_size=128, shuffle=True, num_workers=0)
    test = tud.DataLoader(Rows(x_test, y_test, y_test), batch_size=200, shuffle=False, num_workers=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.wd)
    lr, history = config.lr, []
    for _ in range(config.epochs):
        total, count = 0.0, 0
        for inputs, _, targets in train:
            outputs = model(inputs)
            if teacher is None:
                loss = F.cross_entropy(outputs, targets)
            else:
                with torch.no_grad():
                    teacher_outputs = teacher(inputs)
                if config.is_pll:
                    chosen = torch.gather(F.softmax(outputs, dim=1), 1, torch.topk(teacher_outputs, 2, dim=1).indices)
                    loss = torch.mean((1 - chosen.ravel() ** config.q) / config.q)
                else:
                    loss = F.cross_entropy(outputs, F.softmax(teacher_outputs, dim=1))
            total += loss.item() * inputs.size(0)
            count += inputs.size(0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            right = sum(int((model(inputs).argmax(1) == labels).sum()) for inputs, labels, _ in test)
        history.append({"train_loss": total / count, "test_acc": 100.0 * right / len(y_test)})
        lr *= config.gamma
        for group in optimizer.param_groups:
            group["lr"] = lr
    return history


@exits_cleanly
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        stage = Stage.parse(args.stage)
    except ValueError as error:
        raise UsageError(f"--stage: {error}") from None
    from data import load_feature_set
    from training.store import RunStore

    record = find_run(RunStore(args.checkpoint), args.wd, args.seed, args.corruption, stage)
    teacher = None
    if record.teacher:
        teacher = RunStore(args.checkpoint).inspect(args.checkpoint / record.teacher).record
        if teacher is None:
            raise UserError(f"the run {record.name} learned from {record.teacher}, which is not finished in the store")
    weights = teacher.weights("last" if record.config.last else "best") if teacher is not None else None
    replay = authors_loop(record, weights, load_feature_set("digits"), args.threads)
    ours = record.history()
    runs = json.loads(args.log.read_text())["runs"]
    key = f"wd{args.wd:g}_seed{args.seed}_eta{args.corruption:g}"
    if key not in runs:
        raise UsageError(f"{args.log} has no chain {key}; it holds {', '.join(sorted(runs))}")
    logged = runs[key]["stages"][stage.distill]
    pairs = {
        "authors' loop here vs their log": (replay, None),
        "this project vs their log": (ours, None),
        "authors' loop here vs this project": (replay, ours),
    }
    print(f"{record.name}: {len(ours)} epochs")
    for label, (a, b) in pairs.items():
        loss = [
            abs(row["train_loss"] - (b[i]["train_loss"] if b else logged["train_loss"][i])) for i, row in enumerate(a)
        ]
        acc = [
            round(row["test_acc"], 6) != round(b[i]["test_acc"], 6)
            if b
            else round(row["test_acc"], 6) != logged["test_acc"][i]
            for i, row in enumerate(a)
        ]
        worst = max(range(len(loss)), key=loss.__getitem__)
        print(
            f"  {label}: training loss differs by up to {loss[worst]:.2e} (epoch {worst + 1}), by more than 1e-6 "
            f"in {sum(x > 1e-6 for x in loss)} epochs; test accuracy differs in {sum(acc)} epochs"
        )
    return 0


if __name__ == "__main__":
    run_script(main)
