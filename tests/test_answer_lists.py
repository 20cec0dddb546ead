"""The study's per-k category answers (`topk_prompts`), on a tiny random T5 and a tiny Llama from configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.boards import load_board
from harness.cli import cli
from harness.metrics import NO_LABEL, predictions
from harness.plugin_manager import get_host
from harness.plugins.models import causal_lm, seq2seq
from harness.plugins.models._answer_lists import lists_to_probs, per_k_measures
from harness.plugins.models._label_scoring import prompt_parts
from harness.tasks.category import CategoryTask
from tests.tiny_t5 import PromptTask, build_tiny_llama, build_tiny_t5, make_context

REVIEWS = [
    "This blender works great and I love it. Five stars!",
    "The charger broke after two days. Returned it.",
    "These shoes feel cheap but does the job.",
]
LABELS = ("Books", "Music", "Toys", "Kitchen")
# No {options}: the echo test below changes the label words without changing what the model reads.
PROMPT = "Name the {k} best categories. Review: {text}"


def seed_category_task() -> CategoryTask:
    board = load_board(Path(get_host().registries.boards.get("seed").obj))
    return CategoryTask(board.task_options["category"])


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"), seed=1)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def test_the_seed_boards_prompts_ask_for_k_categories_from_the_list_with_the_studys_example():
    task = seed_category_task()
    for k in range(1, 6):
        before, after = prompt_parts(task.prompt, task.label_words, k)
        assert f"assign the {k} product categories" in before and after == ""
        assert "[Books, Music, Video, Toys, Tools, Office Products, Electronics, Kitchen, Sports, Shoes, " \
               "Health & Personal Care]" in before  # fmt: skip
        assert (
            "Customer review: 'I loved this thriller novel! It kept me on the edge of my seat.' -> Books"
            in before
        )
        assert "separated by ', '" in before and before.endswith("Customer review:\n")


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_each_review_gets_one_list_per_k_from_the_prompt_asking_for_k(family, t5_dir, llama_dir, tmp_path):
    def build(**options):
        if family == "seq2seq":
            return seq2seq.make_flan_t5(str(t5_dir), make_context(tmp_path, mode="generate", **options))
        return causal_lm.make_causal_lm(str(llama_dir), make_context(tmp_path, mode="generate", **options))

    task = PromptTask(labels=LABELS, label_words=LABELS, prompt=PROMPT)
    out = build(topk_prompts="3", max_new_tokens="6").predict(REVIEWS, task)
    lists = [json.loads(raw) for raw in out.raw_text]
    assert [len(per_k) for per_k in lists] == [3, 3, 3]
    assert out.probs.shape == (3, 4) and len(out.truncated) == 3
    single = build(max_new_tokens="6")
    for k in (1, 2, 3):  # the k-th list is the answer to the prompt with {k} filled in, split on ", "
        fixed = PromptTask(labels=LABELS, label_words=LABELS, prompt=PROMPT.replace("{k}", str(k)))
        answers = single.predict(REVIEWS, fixed).raw_text
        assert [per_k[k - 1] for per_k in lists] == [a.split(", ") if a.strip() else [] for a in answers]
    # Parsing on the model's own answers: make its first item for review 0 a label, and it is a hit.
    said = next((items[0] for items in lists[0] if items and items[0].strip()), None)
    assert said is not None, "the random model generated nothing to parse"
    echo = PromptTask(labels=LABELS, label_words=(said.strip(), "zz1", "zz2", "zz3"), prompt=PROMPT)
    echoed = build(topk_prompts="3", max_new_tokens="6").predict(REVIEWS, echo)
    assert echoed.raw_text == out.raw_text
    hits, _ = per_k_measures(echoed.raw_text, np.zeros(3, dtype=np.int64), echo, 3)
    named = [any(said in items for items in per_k) for per_k in [lists[0]]]
    assert named == [True] and max(hits[f"answer_top{k}"][0] for k in (1, 2, 3)) == 1.0
    assert echoed.probs[0, 0] > 0


def test_answers_are_split_on_comma_space_and_unknown_or_unparseable_answers_are_wrong():
    task = PromptTask(labels=LABELS, label_words=LABELS, prompt=PROMPT)
    raw = [
        json.dumps([["Books"], ["Music", "books."], ["Toys", "Musik", "Books"]]),  # case, a stop and Musik
        json.dumps([["Kitchen"], ["Kitchen,Toys"], ["I cannot tell"]]),  # "," alone does not split
        json.dumps([["no idea"], [], ["Books, Music"]]),  # nothing named; an item is never re-split
    ]
    gold = np.array([0, 2, 1])
    hits, counts = per_k_measures(raw, gold, task, 3)
    assert {name: list(v) for name, v in hits.items()} == {
        "answer_top1": [1.0, 0.0, 0.0],
        "answer_top2": [1.0, 0.0, 0.0],
        "answer_top3": [1.0, 0.0, 0.0],
    }
    assert counts == {"unparseable_answers": [1, 2, 2]}
    probs = lists_to_probs(raw, task.label_words)
    # Ranked by the first list naming a label, then its place there: Books, Music, Toys.
    np.testing.assert_allclose(probs[0], [3 / 6, 2 / 6, 1 / 6, 0.0])
    np.testing.assert_allclose(probs[1], [0.0, 0.0, 0.0, 1.0])
    assert list(predictions(probs)) == [0, 3, NO_LABEL]  # the third is counted unparseable


def test_no_topk_prompts_reports_nothing_extra():
    assert per_k_measures(["Books"], np.array([0]), PromptTask(labels=LABELS, label_words=LABELS), 0) == (
        {},
        {},
    )


def test_topk_prompts_fingerprints_only_when_set_and_needs_generate_a_k_prompt_and_enough_labels(
    t5_dir, tmp_path
):
    generate = seq2seq.make_flan_t5(str(t5_dir), make_context(tmp_path, mode="generate"))
    per_k = seq2seq.make_flan_t5(str(t5_dir), make_context(tmp_path, mode="generate", topk_prompts="3"))
    assert "topk_prompts" not in generate.fingerprint() and per_k.fingerprint().endswith("|topk_prompts=3")
    with pytest.raises(ValueError, match="mode=generate"):
        seq2seq.make_flan_t5(str(t5_dir), make_context(tmp_path, topk_prompts="3"))
    with pytest.raises(ValueError, match=r"\{k\} placeholder"):
        per_k.predict(REVIEWS, PromptTask(labels=LABELS, label_words=LABELS, prompt="Review: {text}"))
    with pytest.raises(ValueError, match="more labels than task"):
        per_k.predict(REVIEWS, PromptTask(prompt=PROMPT))


def test_a_run_reports_the_per_k_accuracies_with_intervals_and_rebuilds_them_from_the_cache(t5_dir, tmp_path):
    data = tmp_path / "reviews.jsonl"
    with open(data, "w", encoding="utf-8") as out:
        for i in range(12):
            category = LABELS[i % 4]
            text = f"{REVIEWS[i % 3]} Review number {i} about {category.lower()}, long enough to keep."
            out.write(
                json.dumps({"review_id": f"r{i}", "text": text, "stars": 5, "category": category}) + "\n"
            )
    args = ["run", "--data", str(data), "--task", "category", "--model", f"flan-t5:{t5_dir}", "--backend", "cpu",
            "--out", str(tmp_path / "run"), "--bootstrap", "20", "--model-option", "mode=generate",
            "--model-option", "topk_prompts=2", "--model-option", "max_new_tokens=6",
            "--task-option", f"categories={','.join(LABELS)}", "--task-option", "train_per_class=0",
            "--task-option", "test_per_class=3", "--task-option", "min_chars=10",
            "--task-option", f"prompt={PROMPT}"]  # fmt: skip
    # The tiny random T5's answers name no category: the row is scored, flagged, and the run exits 1.
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 1 and "answers name no label" in first.output, first.output
    [row] = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert row["status"] == "ok" and row["n"] == 12, row["error"]
    assert {"answer_top1", "answer_top2", "top1", "map"} <= set(row["metrics"])
    assert set(row["intervals"]) >= {"answer_top1", "answer_top2"}
    assert [m["name"] for m in row["added_metrics"]][-2:] == ["answer_top1", "answer_top2"]
    assert len(row["extra"]["unparseable_answers"]) == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert all(len(json.loads(r["raw_text"])) == 2 for r in records)
    labels = [LABELS.index(r["gold"]) for r in records]
    hits, _ = per_k_measures(
        [r["raw_text"] for r in records], np.array(labels), PromptTask(labels=LABELS, label_words=LABELS), 2
    )
    assert row["metrics"]["answer_top2"] == pytest.approx(float(np.mean(hits["answer_top2"])))
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1, again.output
    [cached] = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert cached["computed"] == 0 and cached["metrics"] == row["metrics"]
