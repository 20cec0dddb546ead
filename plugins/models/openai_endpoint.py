"""Any OpenAI-compatible endpoint (llama.cpp's server, vLLM, SGLang, Ollama, a hosted API) as a classifier.

Labels are scored the way the in-process LLMs score them, with the task's
prompt and label words, by the best means the endpoint offers (`mode=auto`
finds it with one probe request and records it in the row):
- `logprobs`: on `/completions` with `echo` and `logprobs`, the
  log-likelihood of each label word after the prompt, as the in-process
  causal LMs compute it (one request per label);
- `completion_top_logprobs`: on `/completions` without echo, the first
  generated token's alternatives after the prompt and the answer prefix: the
  same label likelihoods when every label word is one token (llama.cpp's
  and llama-cpp-python's servers, whose echo is missing or misaligned);
- `top_logprobs`: on `/chat/completions`, the first answer token's
  `top_logprobs`; a label scores the best shown token that starts it and
  no other label (a label not shown gets the lowest shown log-probability),
  so the label words should differ in their first token; when no listed
  token starts a label the answer is unparseable, as below;
- `generate`: the answer generated after the in-process prompt text on
  `/completions` (stopped at a blank line), or on `/chat/completions` with
  `chat_template=true`, parsed exactly or else by the first label word in
  it (counted as lenient); an answer that names no label is counted as
  unparseable and scored wrong (an all-zero row, predicting no label),
  never dropped.

The in-process LLMs' experiment runs here too: `shots` demonstrations drawn
by the same function with the same seed (by their length in the served
model's `tokenizer`), and `calibrate` fitted on the train split's scores
from the endpoint; the row says what ran (`shots`, `calibration`,
`prompt_format`).

Reviews are sent by `concurrency` worker threads, and the runner is asked
for batches of that size, so every batch's answers reach the prediction
cache as soon as it ends: a run stopped by a dead server resumes from what
it had. Each prediction's raw text is a small JSON record (mode, answer,
tokens, seconds), so token counts, latency and cost are summarised from the
cache as well as from fresh answers. The API key is read from the
environment variable `api_key_env` names and is never written anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import Example, ModelContext, ModelFactory, ModelOutput, Register, RowStats, Task, hookimpl
from harness.cost import token_price
from harness.errors import HarnessError
from harness.files import write_json
from harness.options import Option, OptionError, OptionSet
from harness.plugins.clients.openai import EndpointClient, EndpointError
from harness.plugins.models._finetune import digest
from harness.plugins.models._label_scoring import (
    generated_rows_mark,
    parse_answer,
    prompt_parts,
    scores_to_probs,
)
from harness.plugins.models._truncation import fit_tokens

if TYPE_CHECKING:
    import numpy as np

MODES = ("auto", "logprobs", "completion_top_logprobs", "top_logprobs", "generate")
# Echoed and next-token log-probabilities of the same text agree on a sound server within its float noise;
# an echo misaligned by one position (each token scored by the distribution that follows it) misses by nats.
ECHO_CHECK_NATS = 0.05
PROBE_PROMPT = "Is the review positive or negative?\nReview: Great.\nAnswer:"
PROBE_LABEL = " positive"
MODE_NEEDS = {
    "logprobs": "the prompt's log-probabilities (echo) on /completions",
    "completion_top_logprobs": "the next token's log-probabilities on /completions",
    "top_logprobs": "the answer token's top_logprobs on /chat/completions",
    "generate": "an answer (a completion, or a message with chat_template)",
}
# A generated answer ends at a blank line: a small model goes on with another "Review: ..." after the label.
GENERATE_STOP = ["\n\n"]
# (base URL, model, logit bias) -> the mode a probe found and its tokens: the preflight's probe serves the run.
_PROBED: dict[tuple[str, ...], tuple[str, dict[str, int]]] = {}
# (base URL, model, logit bias) -> whether the server's echo carries each token's own log-probability.
_ECHO_SOUND: dict[tuple[str, str, str], bool] = {}
OPTIONS = OptionSet(
    Option("base_url", str, "http://127.0.0.1:8080/v1", "the endpoint's URL, up to and including /v1"),
    Option(
        "api_key_env",
        str,
        None,
        "name of the environment variable holding the API key (the key is never written)",
        affects_output=False,
    ),
    Option(
        "mode",
        str,
        "auto",
        "logprobs: label likelihoods echoed on /completions; completion_top_logprobs: the next token's "
        "alternatives on /completions; top_logprobs: the first chat answer token's; generate: parse the "
        "answer; auto: the first the endpoint offers",
        choices=MODES,
    ),
    Option("answer_prefix", str, "\nAnswer:", "text between the prompt and the label word (logprobs mode)"),
    Option(
        "logit_bias",
        str,
        None,
        "JSON object of token id -> bias sent with every request; '{\"2\": -100}' with the model's end "
        "token keeps a server that lists nothing for a stop token answering (the listed log-probabilities "
        "stay the model's)",
    ),
    Option("max_chars", int, 6000, "review characters sent (head and tail kept beyond that)", minimum=1),
    Option("max_new_tokens", int, 20, "answer length in generate mode", minimum=1),
    Option("top_logprobs", int, 20, "answer tokens listed in top_logprobs mode", minimum=1),
    Option(
        "top_logprobs_max",
        int,
        5000,
        "completion_top_logprobs: while a label's own token is not listed, ask again for 8 times as many, up to "
        "this many",
        minimum=1,
    ),
    Option(
        "shots",
        int,
        0,
        "demonstrations from the train split, drawn as the in-process LLMs draw them (needs tokenizer)",
        minimum=0,
    ),
    Option(
        "calibrate",
        str,
        "none",
        "train: scale and bias fitted on train reviews' scores from the endpoint; content-free: the 'N/A' "
        "prior; auto: train when there is a train split, else content-free; none: raw scores",
        choices=("auto", "train", "content-free", "none"),
    ),
    Option("calibration_size", int, 100, "train reviews the calibration is fitted on", minimum=1),
    Option(
        "chat_template",
        str,
        "false",
        "generate mode: true (or auto) sends chat turns to /chat/completions, the server's template; false "
        "sends the in-process prompt text to /completions",
        choices=("auto", "true", "false"),
    ),
    Option(
        "tokenizer",
        str,
        None,
        "the served model's tokenizer (hub id, folder, .gguf file, or smollm2 for the packaged one): "
        "demonstrations are chosen by their length in its tokens, as in-process",
        affects_output=False,
    ),
    Option("concurrency", int, 4, "requests in flight at once", minimum=1, affects_output=False),
    Option("request_timeout", float, 60.0, "seconds one request may take", minimum=0.1, affects_output=False),
    Option(
        "max_retries",
        int,
        5,
        "retries on 429, 5xx, timeouts and refused connections",
        minimum=0,
        affects_output=False,
    ),  # fmt: skip
    Option(
        "requests_per_minute", float, 0.0, "request rate limit (0: none)", minimum=0, affects_output=False
    ),
    Option(
        "price_in",
        float,
        None,
        "dollars per million prompt tokens [default: the price file's for a listed hosted model, else 0]",
        minimum=0,
        affects_output=False,
    ),
    Option(
        "price_out",
        float,
        None,
        "dollars per million completion tokens [default: as price_in]",
        minimum=0,
        affects_output=False,
    ),
)


class EndpointModel:
    """A served model scoring the task's labels over HTTP."""

    def __init__(self, model_name: str, ctx: ModelContext) -> None:
        self.model_name = model_name
        self.name = f"openai:{model_name}"
        self.options = values = OPTIONS.parse(ctx.options)
        self.requested_mode: str = values["mode"]
        self.batch_size: int = values["concurrency"]
        self.price_in, self.price_out, self.price_source = _token_prices(
            model_name, values["price_in"], values["price_out"]
        )
        self.client = EndpointClient(
            values["base_url"],
            _api_key(values["api_key_env"]),
            timeout=values["request_timeout"],
            max_retries=values["max_retries"],
            requests_per_minute=values["requests_per_minute"],
        )
        self.logit_bias = _logit_bias(values["logit_bias"])
        self.shots: int = values["shots"]
        self.chat: bool = values["chat_template"] != "false"
        if self.shots and not values["tokenizer"]:
            raise OptionError(
                f"shots={self.shots} needs tokenizer=... (the served model's: a hub id, folder or .gguf file, "
                "smollm2 for the packaged one), to choose the demonstrations the in-process LLMs choose"
            )
        self.demo_seed = ctx.seed_for("demos")
        self.calibration_seed = ctx.seed_for("calibration")
        self.workdir = Path(ctx.workdir)
        self._mode: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._last: dict[tuple[str, str], tuple[Any, dict[str, Any], bool]] = {}
        self._demos: dict[str, tuple[Example, ...]] = {}
        self._samples: dict[str, list[Example]] = {}
        self._calibration: dict[str, tuple[float, np.ndarray] | np.ndarray] = {}
        # The most alternatives the server lists: lowered when it refuses a longer list.
        self._list_cap: int = self.options["top_logprobs_max"]
        # Tokens of requests that score no review of the row: the probe and the calibration.
        self.overhead: dict[str, int] = {}

    @property
    def mode(self) -> str:
        """The scoring mode in use; `auto` is settled by probing the endpoint once per process (the
        preflight's probe serves the run), and the probe's tokens are counted in the row. A forced mode is
        tried once (a server without log-probabilities would otherwise score every review unparseable)."""
        if self._mode is None and self.requested_mode != "auto":
            self._mode = self.confirm(self.requested_mode)
        if self._mode is None:
            key = (*self._server_key(), str(self.chat))
            if key not in _PROBED:
                usage: dict[str, int] = {}
                _PROBED[key] = (self.probe(usage), usage)
            self._mode, usage = _PROBED[key]
            for name, count in usage.items():
                self.overhead[f"probe_{name}"] = count
        return self._mode

    def _server_key(self) -> tuple[str, str, str]:
        return self.client.base_url, self.model_name, json.dumps(self.logit_bias, sort_keys=True)

    @property
    def _echo_sound(self) -> bool:
        """Whether the server's echoed log-probabilities are the label's (see `_sound_echo`): known from the
        probe, else asked once per process with the probe's two requests (their tokens are counted)."""
        key = self._server_key()
        if key not in _ECHO_SOUND:
            usage: dict[str, int] = {}
            answers = []
            try:
                for body in ({"prompt": PROBE_PROMPT, "max_tokens": 1, "logprobs": 20},
                             {"prompt": PROBE_PROMPT + PROBE_LABEL, "max_tokens": 1, "echo": True, "logprobs": 1}):  # fmt: skip
                    answers.append(self._post("/completions", body, retries=0)[0])
                    _add_usage(usage, answers[-1])
                _ECHO_SOUND[key] = _sound_echo(answers[1], _completion_top_logprobs(answers[0]))
            except EndpointError as error:
                if error.status in (None, 401, 403) or error.status >= 500:
                    raise
                _ECHO_SOUND[key] = False
            for name, count in usage.items():
                self.overhead[f"probe_{name}"] = self.overhead.get(f"probe_{name}", 0) + count
        return _ECHO_SOUND[key]

    def fingerprint(self) -> str:
        """Model name, base URL, the mode in use and every output-affecting option; never the key; after
        `fit`, also the demonstrations and the calibration's reviews."""
        # a forced mode is not tried here: a resumed run whose answers are all cached needs no server
        mode = self.mode if self.requested_mode == "auto" else self.requested_mode
        values = {**OPTIONS.fingerprinted(self.options), "mode": mode}
        fitted = {
            key: {
                "demos": [[d.id, d.label, d.text] for d in self._demos.get(key, ())],
                "calibration": [e.id for e in self._samples.get(key, ())],
            }
            for key in sorted(set(self._demos) | set(self._samples))
        }
        return (
            f"openai|model={self.model_name}|options={digest(values)}"
            + (f"|fitted={digest(fitted)}" if fitted else "")
            + generated_rows_mark(mode)
        )

    def fit(self, train: Sequence[Example], task: Task) -> None:
        """Choose the demonstrations as the in-process LLMs do, and the train reviews a calibration will be
        fitted on; their scores are asked for only when a review is not cached (see `_calibrate`)."""
        from harness.plugins.models.causal_lm import calibration_sample, choose_demonstrations

        key = task.fingerprint()
        demos = choose_demonstrations(train, self.shots, self.demo_seed, self._token_counter())
        self._demos[key] = demos
        if self.options["calibrate"] in ("auto", "train") and self.mode != "generate":
            size = self.options["calibration_size"]
            self._samples[key] = calibration_sample(train, demos, size, self.calibration_seed)

    def protocol(self, mode: str) -> dict[str, Any]:
        """What the row says about the experiment it ran in `mode`: demonstrations, calibration and prompt
        format."""
        return {
            "shots": self.shots,
            "calibration": self._calibration_kind(mode),
            "prompt_format": "chat" if self._chat_mode(mode) else "text",
        }

    def _calibration_kind(self, mode: str) -> str:
        if mode == "generate":
            return "none"
        if self._samples:
            return f"train ({max(len(s) for s in self._samples.values())} reviews)"
        calibrate = self.options["calibrate"]
        return "content-free" if calibrate == "auto" else calibrate

    def _chat_mode(self, mode: str) -> bool:
        return mode == "top_logprobs" or (mode == "generate" and self.chat)

    def _token_counter(self) -> Any:
        """Token counts by the served model's tokenizer (only needed when there are demonstrations)."""
        if not self.shots:
            return len
        from transformers import AutoTokenizer

        from harness.plugins.models.causal_lm import packaged_smollm2

        name = self.options["tokenizer"]
        path = packaged_smollm2() if name == "smollm2" else Path(name).expanduser()
        if path.suffix == ".gguf":
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        else:
            tokenizer = AutoTokenizer.from_pretrained(name)
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def checkpoints(self, task: Task) -> list[str]:
        """No weights to fetch; asked by the preflight, it probes the server, so that an unreachable
        server, a wrong key or an unknown model stops the run before any model has run."""
        _ = self.mode
        return []

    def probe(self, usage: dict[str, int] | None = None) -> str:
        """The first mode the endpoint answers usefully; wrong keys and unknown models fail here, in one line.
        The tokens of its answered requests are added to `usage`."""
        usage = {} if usage is None else usage

        def post(path: str, body: dict[str, Any], retries: int | None = 0) -> dict[str, Any]:
            answer, _ = self._post(path, body, retries=retries)
            _add_usage(usage, answer)
            return answer

        try:
            next_token = post("/completions", {"prompt": PROBE_PROMPT, "max_tokens": 1, "logprobs": 20})
            alternatives = _completion_top_logprobs(next_token)
            echo = {"prompt": PROBE_PROMPT + PROBE_LABEL, "max_tokens": 1, "echo": True, "logprobs": 1}
            try:
                sound = _sound_echo(post("/completions", echo), alternatives)
            except EndpointError as error:
                if error.status in (None, 401, 403):
                    raise
                sound = False
            _ECHO_SOUND[self._server_key()] = sound
            if sound:
                return "logprobs"
            if alternatives:
                return "completion_top_logprobs"
        except EndpointError as error:
            if error.status in (None, 401, 403):
                raise
        chat = {"messages": [{"role": "user", "content": PROBE_PROMPT}], "max_tokens": 1}
        try:
            answer = post("/chat/completions", {**chat, "logprobs": True, "top_logprobs": 5})
            if _top_logprobs(answer):
                return "top_logprobs"
        except EndpointError as error:
            if error.status in (None, 401, 403, 404):
                raise self._unknown_model(error) from None
        try:
            if self.chat:
                post("/chat/completions", chat, retries=None)
            else:
                post("/completions", {"prompt": PROBE_PROMPT, "max_tokens": 1}, retries=None)
        except EndpointError as error:
            raise self._unknown_model(error) from None
        return "generate"

    def confirm(self, mode: str) -> str:
        """`mode` when one request in it answers with what the mode scores from, else one line saying so."""
        chat = {"messages": [{"role": "user", "content": PROBE_PROMPT}], "max_tokens": 1}
        try:
            if mode == "logprobs":
                echo = {"prompt": PROBE_PROMPT + PROBE_LABEL, "max_tokens": 1, "echo": True, "logprobs": 1}
                found = _echoes_label(self._post("/completions", echo)[0])
            elif mode == "completion_top_logprobs":
                body = {"prompt": PROBE_PROMPT, "max_tokens": 1, "logprobs": 5}
                found = bool(_completion_top_logprobs(self._post("/completions", body)[0]))
            elif mode == "top_logprobs":
                body = {**chat, "logprobs": True, "top_logprobs": 5}
                found = bool(_top_logprobs(self._post("/chat/completions", body)[0]))
            elif self.chat:  # generate in the chat template: an answer without a message raises
                _message_text(self._post("/chat/completions", chat)[0])
                found = True
            else:  # generate: an answer without a completion's text raises
                _completion_text(self._post("/completions", {"prompt": PROBE_PROMPT, "max_tokens": 1})[0])
                found = True
        except EndpointError as error:
            raise self._unknown_model(error) from None
        if not found:
            raise EndpointError(
                f"mode={mode}: {self.client.base_url} answers without {MODE_NEEDS[mode]}; "
                "mode=auto picks the best mode it offers"
            )
        return mode

    def _unknown_model(self, error: EndpointError) -> EndpointError:
        if error.status != 404:
            return error
        served = self.client.model_names()
        listed = f"; it serves: {', '.join(served)}" if served else ""
        return EndpointError(
            f"{self.client.base_url}: no model {self.model_name!r} (HTTP 404){listed}", status=404
        )

    def _post(
        self, path: str, body: dict[str, Any], retries: int | None = None
    ) -> tuple[dict[str, Any], float]:
        bias = {"logit_bias": self.logit_bias} if self.logit_bias else {}
        return self.client.post(
            path, {"model": self.model_name, "temperature": 0, **bias, **body}, retries=retries
        )

    def predict(self, texts: Sequence[str], task: Task) -> ModelOutput:
        """A row and a raw JSON record per review, from `concurrency` requests in flight."""
        import numpy as np

        mode = self.mode
        key = task.fingerprint()
        todo = [text for text in dict.fromkeys(texts) if (key, text) not in self._last]
        known = dict(self._last)
        if todo:
            if mode == "completion_top_logprobs":
                _ = self._echo_sound  # asked once here, not by every worker thread
            self._calibrate(task, mode)
            scored = self._map(lambda text: self.score_one(text, task, mode), todo)
            known.update({(key, text): result for text, result in zip(todo, scored, strict=True)})
        results = [known[(key, text)] for text in texts]
        # The runner's untimed warm-up sends a batch's first reviews again: kept here, they are not re-sent.
        self._last = {(key, text): result for text, result in zip(texts, results, strict=True)}
        return ModelOutput(
            probs=np.stack([row for row, _, _ in results]),
            truncated=[cut for _, _, cut in results],
            raw_text=[json.dumps(record, ensure_ascii=False) for _, record, _ in results],
        )

    def _map(self, score: Any, texts: Sequence[str]) -> list[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.batch_size, thread_name_prefix="endpoint")
        return list(self._pool.map(score, texts))

    def score_one(self, text: str, task: Task, mode: str) -> tuple[np.ndarray, dict[str, Any], bool]:
        """One review's probability row, its record (mode, answer, tokens, seconds) and truncation flag."""
        import numpy as np

        (kept,), cut = fit_tokens(list(text), self.options["max_chars"], "head+tail")
        record: dict[str, Any] = {"mode": mode, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                                  "request_seconds": []}  # fmt: skip
        if mode == "generate":
            return self._generated_row("".join(kept), task, record), record, cut
        scores = self.label_scores("".join(kept), task, mode, record)
        if scores is None:
            return np.zeros(len(task.label_words)), record, cut
        return scores_to_probs(self._calibrated(scores, task)[None, :]).reshape(-1), record, cut

    def label_scores(self, review: str, task: Task, mode: str, record: dict[str, Any]) -> np.ndarray | None:
        """Each label's raw score for one review, None when the answer names no label (see `_listed_scores`)."""
        import numpy as np

        if mode == "logprobs":
            prompt = self._prompt_text(review, task)
            scores = []
            for word in task.label_words:
                continuation = " " + word
                body = {"prompt": prompt + continuation, "max_tokens": 1, "echo": True, "logprobs": 1}
                answer = self._request("/completions", body, record)
                scores.append(label_logprob(answer, continuation))
            return np.asarray(scores, dtype=np.float64)
        if mode == "completion_top_logprobs":
            prompt = self._prompt_text(review, task)
            top = self._exact_missing_labels(prompt, self._listed_labels(prompt, task, record), task, record)
            return self._listed_scores(top, task, record, exact=True)
        body = {"messages": self._messages(review, task), "max_tokens": 1, "logprobs": True,
                "top_logprobs": self.options["top_logprobs"]}  # fmt: skip
        top = _top_logprobs(self._request("/chat/completions", body, record))
        return self._listed_scores(top, task, record)

    def _prompt_text(self, review: str, task: Task) -> str:
        """The in-process prompt as text: demonstrations, the prompt around the review, the answer prefix."""
        from harness.plugins.models.causal_lm import demonstrations_text

        before, after = prompt_parts(task.prompt, task.label_words)
        prefix = self.options["answer_prefix"]
        demos = demonstrations_text(
            self._demos.get(task.fingerprint(), ()), before, after, prefix, task.label_words
        )
        return demos + before + review + after + prefix

    def _messages(self, review: str, task: Task) -> list[dict[str, str]]:
        """The prompt as chat turns: each demonstration a user turn answered by its label, then the review."""
        from harness.plugins.models.causal_lm import demonstration_turns

        before, after = prompt_parts(task.prompt, task.label_words)
        demos = demonstration_turns(self._demos.get(task.fingerprint(), ()), before, after, task.label_words)
        return [*demos, {"role": "user", "content": before + review + after}]

    def _generated_row(self, review: str, task: Task, record: dict[str, Any]) -> np.ndarray:
        """Generate an answer, stopped at a blank line on /completions, and parse it: exactly (case
        and punctuation forgiven), else by the first label word in it (`lenient` in the record)."""
        import numpy as np

        if self.chat:
            body = {"messages": self._messages(review, task), "max_tokens": self.options["max_new_tokens"]}
            answer = _message_text(self._request("/chat/completions", body, record))
        else:
            body = {"prompt": self._prompt_text(review, task), "max_tokens": self.options["max_new_tokens"],
                    "stop": GENERATE_STOP}  # fmt: skip
            answer = _completion_text(self._request("/completions", body, record))
        record["answer"] = answer
        index = parse_answer(answer, task.label_words)
        if index is None:
            index = first_label_word(answer, task.label_words)
            record["lenient"] = index is not None
        record["parsed"] = index is not None
        row = np.zeros(len(task.label_words))
        if index is not None:
            row[index] = 1.0
        return row

    def _calibrated(self, scores: np.ndarray, task: Task) -> np.ndarray:
        """Label scores after the calibration `_calibrate` fitted for the task (none: as they are)."""
        import numpy as np

        fitted = self._calibration.get(task.fingerprint())
        if fitted is None:
            return scores
        if isinstance(fitted, tuple):
            scale, bias = fitted
            return scale * scores + bias
        return scores - np.log(fitted)

    def _calibrate(self, task: Task, mode: str) -> None:
        """Fit the task's calibration on the endpoint's scores, once, and only when a review is to be scored:
        a run whose predictions are all cached sends nothing. Fitted scale and bias are kept under the work
        directory, as the in-process scorers keep theirs."""
        from harness.plugins.models.causal_lm import CONTENT_FREE
        from harness.plugins.routing._calibration import fit_scale_and_bias

        key = task.fingerprint()
        calibrate = self.options["calibrate"]
        if key in self._calibration or mode == "generate" or calibrate == "none":
            return
        sample = self._samples.get(key, [])
        if calibrate == "train" and not sample:
            raise HarnessError(f"{self.name}: calibrate=train needs a train split, and this task gave none")
        texts = [e.text for e in sample] if sample else list(CONTENT_FREE)
        path = self.workdir / "calibration" / f"openai-{digest([self.fingerprint(), key, texts])}.json"
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            self._calibration[key] = _stored_calibration(stored)
            return
        records: list[dict[str, Any]] = []

        def raw(text: str) -> np.ndarray | None:
            record: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                                      "request_seconds": []}  # fmt: skip
            records.append(record)
            (kept,), _ = fit_tokens(list(text), self.options["max_chars"], "head+tail")
            return self.label_scores("".join(kept), task, mode, record)

        scores = self._map(raw, texts)
        for name in ("prompt_tokens", "completion_tokens"):
            self.overhead[f"calibration_{name}"] = self.overhead.get(f"calibration_{name}", 0) + sum(
                r[name] for r in records
            )
        kept = [(row, e.label) for row, e in zip(scores, sample, strict=False) if row is not None]
        if sample:
            import numpy as np

            if not kept:
                raise HarnessError(f"{self.name}: no calibration review's answer named a label")
            scale, bias = fit_scale_and_bias(np.stack([r for r, _ in kept]), np.asarray([g for _, g in kept]))
            stored = {"scale": scale, "bias": bias.tolist(), "review_ids": [e.id for e in sample]}
        else:
            if scores[0] is None:
                raise HarnessError(f"{self.name}: the content-free input's answer named no label")
            stored = {"prior": scores_to_probs(scores[0][None, :]).mean(axis=0).tolist()}
        write_json(path, stored)
        self._calibration[key] = _stored_calibration(stored)

    def _listed_labels(self, prompt: str, task: Task, record: dict[str, Any]) -> list[tuple[str, float]]:
        """The next token's alternatives after `prompt`, asked again with 8 times as many (up to
        `top_logprobs_max`) while a label's own token is not among them.

        A model sure of another first token (SmolLM2 often wants a newline
        after "Answer:") can rank the labels' tokens beyond the first 200;
        scored from prefixes of other tokens instead, one polarity answer in
        fifteen differed from the in-process scorer's. A label of several
        tokens is never listed whole, so its reviews are asked at most twice
        more. A server that lists far fewer than asked, or refuses a longer
        list, keeps the list it gave.
        """
        first = asked = granted = self.options["top_logprobs"]
        wanted = {" " + word for word in task.label_words}
        top: list[tuple[str, float]] = []
        while True:
            body = {"prompt": prompt, "max_tokens": 1, "logprobs": asked}
            try:
                answer = self._request("/completions", body, record)
            except EndpointError as error:
                if not top or error.status is None or error.status >= 500:
                    raise
                # the server's cap lies below: later reviews ask no more than the list it gave
                self._list_cap = min(self._list_cap, granted)
                return top
            top, granted = _completion_top_logprobs(answer), asked
            if asked != first:
                record["top_logprobs"] = asked
            widest = min(self.options["top_logprobs_max"], self._list_cap)
            # (tokens that read alike share one key, so a full list can hold a few fewer than asked)
            if wanted <= {token for token, _ in top} or len(top) < asked // 2 or asked >= widest:
                return top
            asked = min(asked * 8, widest)

    def _exact_missing_labels(
        self, prompt: str, top: list[tuple[str, float]], task: Task, record: dict[str, Any]
    ) -> list[tuple[str, float]]:
        """The alternatives with every label the list left out scored exactly: the prompt ending with the
        label, its log-probability echoed (servers whose echo is sound only: see `_echo_is_sound`).

        vLLM lists at most 20 alternatives unless started with a higher
        `--max-logprobs`; the lowest listed would stand in for a label left
        out, and a review whose list holds neither label would be unparseable.
        """
        missing = [word for word in task.label_words if " " + word not in dict(top)]
        if not top or not missing or not self._echo_sound:
            if missing:
                record["labels_not_listed"] = len(missing)
            return top
        for word in missing:
            body = {"prompt": prompt + " " + word, "max_tokens": 1, "echo": True, "logprobs": 1}
            top = [*top, (" " + word, label_logprob(self._request("/completions", body, record), " " + word))]
        record["labels_scored_exactly"] = len(missing)
        return top

    def _listed_scores(
        self, top: list[tuple[str, float]], task: Task, record: dict[str, Any], exact: bool = False
    ) -> np.ndarray | None:
        """A review's label scores from its first answer token's alternatives; none starting a label is
        unparseable, as a generated answer naming none is. After the raw prompt (`exact`), a label that is
        one listed token scores that token, as the in-process scorers score the label's own tokens."""
        record["answer"] = top[0][0] if top else ""
        label_scores = scores_from_top_logprobs(top, task.label_words, exact=exact)
        record["parsed"] = label_scores is not None
        return label_scores

    def _request(self, path: str, body: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """One request; its tokens and seconds are added to the review's record."""
        answer, seconds = self._post(path, body)
        _add_usage(record, answer)
        record["seconds"] = round(record["seconds"] + seconds, 6)
        record["request_seconds"].append(round(seconds, 6))
        return answer

    def row_stats(self, raw_texts: Sequence[str | None], gold: np.ndarray, task: Task) -> RowStats:
        """What `stats_from_raw` reads in the stored records; gold and task add nothing."""
        return RowStats(extra=self.stats_from_raw(raw_texts))

    def stats_from_raw(self, raw_texts: Sequence[str | None]) -> dict[str, Any]:
        """Mode, unparseable answers, tokens, request latency and token cost, from stored records too; the
        protocol run; the tokens of this process' probe and calibration, which are charged too."""
        stats = endpoint_stats(raw_texts, self.price_in, self.price_out, self.price_source, self.overhead)
        # the mode the records were scored in: a fully cached row asks no server what it would use now
        return {**stats, **self.protocol(stats["scoring_mode"][-1])} if stats else stats


def _token_prices(
    model_name: str, price_in: float | None, price_out: float | None
) -> tuple[float, float, str]:
    """Dollars per million prompt and completion tokens, and where they come from: the options when either
    is given, else the packaged price file's for a listed hosted model, else nothing (a local server)."""
    if price_in is not None or price_out is not None:
        return price_in or 0.0, price_out or 0.0, "model options"
    listed = token_price(model_name)
    if listed is None:
        return 0.0, 0.0, "model options"
    return listed.usd_per_million_in, listed.usd_per_million_out, listed.source


def endpoint_stats(
    raw_texts: Sequence[str | None],
    price_in: float,
    price_out: float,
    price_source: str = "model options",
    overhead: dict[str, int] | None = None,
) -> dict[str, Any]:
    """What the row records about a served model's answers (records that are not this model's are skipped).

    Latency is per request (a review in `logprobs` mode sends one per label,
    and re-asks add more) and, apart, per review. `overhead` holds the tokens
    of requests that scored no review (`probe_prompt_tokens`,
    `calibration_completion_tokens`, ...): listed, and charged.
    """
    import numpy as np

    records = [record for record in map(_record, raw_texts) if record is not None]
    if not records:
        return {}
    overhead = overhead or {}
    prompt_tokens = sum(int(r.get("prompt_tokens", 0)) for r in records)
    completion_tokens = sum(int(r.get("completion_tokens", 0)) for r in records)
    review_seconds = np.asarray([float(r.get("seconds", 0.0)) for r in records])
    # records stored before requests were timed one by one hold their review's seconds only
    requests = np.asarray(
        [float(t) for r in records for t in r.get("request_seconds", [r.get("seconds", 0.0)])]
    )
    parsed = [r for r in records if r.get("parsed") is not None]
    stats: dict[str, Any] = {
        "scoring_mode": sorted({str(r.get("mode")) for r in records}),
        "unparseable": sum(1 for r in parsed if r["parsed"] is False),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "requests": int(requests.size),
        "request_latency_p50_s": round(float(np.percentile(requests, 50)), 6),
        "request_latency_p95_s": round(float(np.percentile(requests, 95)), 6),
        "review_seconds_p50": round(float(np.percentile(review_seconds, 50)), 6),
        "review_seconds_p95": round(float(np.percentile(review_seconds, 95)), 6),
        **{name: count for name, count in sorted(overhead.items()) if count},
    }
    for name, field in (("labels_scored_exactly", "reviews_labels_scored_exactly"),
                        ("labels_not_listed", "reviews_labels_not_listed")):  # fmt: skip
        if any(name in r for r in records):
            stats[field] = sum(1 for r in records if r.get(name))
    if any(r.get("mode") == "generate" for r in records):
        lenient = sum(1 for r in records if r.get("lenient"))
        stats["parsed_leniently"] = lenient
        stats["parsed_leniently_share"] = round(lenient / len(records), 6)
    if price_in or price_out:
        all_in = prompt_tokens + sum(v for k, v in overhead.items() if k.endswith("prompt_tokens"))
        all_out = completion_tokens + sum(v for k, v in overhead.items() if k.endswith("completion_tokens"))
        stats["token_cost_usd"] = (all_in * price_in + all_out * price_out) / 1e6
        stats["token_price_source"] = price_source
    return stats


def label_logprob(answer: dict[str, Any], continuation: str) -> float:
    """Log-likelihood of the label text at the end of an echoed prompt.

    The echoed tokens are the prompt's, ending with the label, then those
    generated (at least one, as `max_tokens: 0` crashes some servers), which
    some servers list and others leave out when it is a stop token; the
    label's last token is found from `usage.prompt_tokens` or the generated
    count, checked against the label's text. Walking back from there over
    token texts avoids relying on `text_offset`, which servers count in bytes
    or characters differently.
    """
    logprobs = (answer.get("choices") or [{}])[0].get("logprobs") or {}
    tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    if len(tokens) != len(values) or len(tokens) < 2:
        raise EndpointError("the endpoint's /completions answer has no echoed prompt log-probabilities")
    end = _label_end([str(token) for token in tokens], answer.get("usage") or {}, continuation.strip())
    total, covered, index = 0.0, 0, end
    while covered < len(continuation.strip()) and index > 0:
        index -= 1
        if values[index] is None:
            break
        total += float(values[index])
        covered += len(str(tokens[index]).strip())
    if covered < len(continuation.strip()):
        raise EndpointError("the endpoint's echoed log-probabilities do not cover the label word")
    return total


def _label_end(tokens: Sequence[str], usage: dict[str, Any], label: str) -> int:
    """How many echoed tokens run up to the label's end: the first candidate whose text ends with it."""
    generated = max(1, int(usage.get("completion_tokens") or 1))
    candidates = [int(usage.get("prompt_tokens") or 0), len(tokens) - generated, len(tokens)]
    for end in candidates:
        if (
            0 < end <= len(tokens)
            and tokens[end - 1].strip()
            and "".join(tokens[:end]).rstrip().endswith(label)
        ):
            return end
    raise EndpointError("the endpoint's echoed tokens do not end with the label word")


def scores_from_top_logprobs(
    top: Sequence[tuple[str, float]], label_words: Sequence[str], exact: bool = False
) -> np.ndarray | None:
    """A score per label from the first answer token's alternatives, or None when none names a label.

    A shown token counts for a label when, stripped, it starts that label
    word and no other (case ignored); with `exact`, a token that is the label
    word itself after a space wins over those. A label no token names gets
    the lowest log-probability shown, a bound on the mass the list leaves out.
    """
    import numpy as np

    words = [word.strip().casefold() for word in label_words]
    best: dict[int, float] = {}
    for token, logprob in top:
        piece = token.strip().casefold()
        starts = [i for i, word in enumerate(words) if piece and word.startswith(piece)]
        if len(starts) == 1:
            best[starts[0]] = max(best.get(starts[0], -np.inf), logprob)
    if exact:
        listed = dict(top)
        best.update({i: listed[" " + word] for i, word in enumerate(label_words) if " " + word in listed})
    if not best:
        return None
    floor = min(logprob for _, logprob in top)
    return np.asarray([best.get(i, floor) for i in range(len(words))], dtype=np.float64)


def _sound_echo(answer: dict[str, Any], alternatives: Sequence[tuple[str, float]]) -> bool:
    """Whether the echo carries the label's log-probability, and agrees with the same server's next-token
    alternatives where they list the label (a server whose echo is misaligned by one token does not)."""
    try:
        echoed = label_logprob(answer, PROBE_LABEL)
    except (EndpointError, TypeError, ValueError):
        return False
    listed = [logprob for token, logprob in alternatives if token == PROBE_LABEL]
    return not listed or abs(listed[0] - echoed) <= ECHO_CHECK_NATS


def _echoes_label(answer: dict[str, Any]) -> bool:
    try:
        label_logprob(answer, PROBE_LABEL)
    except (EndpointError, TypeError, ValueError):
        return False
    return True


def _completion_top_logprobs(answer: dict[str, Any]) -> list[tuple[str, float]]:
    """The first generated token's alternatives on /completions as (token, logprob), empty when none."""
    try:
        first = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        return sorted(((str(token), float(value)) for token, value in first.items()), key=lambda t: -t[1])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return []


def _top_logprobs(answer: dict[str, Any]) -> list[tuple[str, float]]:
    """The first answer token's alternatives as (token, logprob), empty when the endpoint gave none."""
    try:
        first = answer["choices"][0]["logprobs"]["content"][0]
        return [(str(item["token"]), float(item["logprob"])) for item in first["top_logprobs"]]
    except (KeyError, IndexError, TypeError, ValueError):
        return []


def first_label_word(text: str, label_words: Sequence[str]) -> int | None:
    """The label whose word comes first in an answer, as a whole word, case ignored ("The sentiment of the
    review is negative." names negative); None when it names none."""
    import re

    found = []
    for index, word in enumerate(label_words):
        match = re.search(rf"(?<!\w){re.escape(word.strip())}(?!\w)", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), index))
    return min(found)[1] if found else None


def _add_usage(counts: dict[str, Any], answer: dict[str, Any]) -> None:
    """Add an answer's `usage` token counts to `counts`."""
    usage = answer.get("usage") or {}
    for name in ("prompt_tokens", "completion_tokens"):
        counts[name] = counts.get(name, 0) + int(usage.get(name) or 0)


def _stored_calibration(stored: dict[str, Any]) -> tuple[float, np.ndarray] | np.ndarray:
    """A calibration as written: a scale and per-label bias, or the content-free label prior."""
    import numpy as np

    if "prior" in stored:
        return np.asarray(stored["prior"], dtype=np.float64)
    return float(stored["scale"]), np.asarray(stored["bias"], dtype=np.float64)


def _completion_text(answer: dict[str, Any]) -> str:
    try:
        return str(answer["choices"][0]["text"] or "")
    except (KeyError, IndexError, TypeError):
        raise EndpointError("the endpoint's /completions answer has no text") from None


def _message_text(answer: dict[str, Any]) -> str:
    try:
        return str(answer["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        raise EndpointError("the endpoint's /chat/completions answer has no message") from None


def _record(raw: str | None) -> dict[str, Any] | None:
    if not raw or not raw.startswith("{"):
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "mode" in record and "seconds" in record else None


def _logit_bias(text: str | None) -> dict[str, float]:
    """The `logit_bias` option as the request field: token ids (as strings) to numbers."""
    if not text:
        return {}
    try:
        bias = json.loads(text)
        if not isinstance(bias, dict):
            raise ValueError
        return {str(int(token)): float(value) for token, value in bias.items()}
    except (ValueError, TypeError):
        raise OptionError(
            f"logit_bias={text}: give a JSON object of token ids to numbers, e.g. '{{\"2\": -100}}'"
        ) from None


def _api_key(variable: str | None) -> str | None:
    """The key from the named environment variable; naming one that is unset is an error, not a silent 401."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise OptionError(f"api_key_env={variable}, but the environment variable {variable} is not set")
    return key


def make_endpoint(arg: str | None, ctx: ModelContext) -> EndpointModel:
    if not arg:
        raise HarnessError("openai needs the served model's name: --model openai:MODEL_NAME")
    return EndpointModel(arg, ctx)


@hookimpl
def register_models(register: Register[ModelFactory]) -> None:
    register(
        "openai",
        make_endpoint,
        options=OPTIONS,
        description="a model behind an OpenAI-compatible endpoint (openai:MODEL_NAME, option base_url)",
    )
