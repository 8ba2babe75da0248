"""A fault-injecting LLM server for the extraction tests: OpenAI-compatible chat completions and
the Anthropic Messages and Message Batches APIs, on 127.0.0.1 in a background thread.

What happens to a request is written in the conversation itself, so that it holds under any
concurrency: ``[[fault:429ra,500,ok]]`` in a conversation's text makes the first attempt for that
conversation a 429 with Retry-After, the second a 500, and every later one a valid answer.
Attempts are counted per conversation (the text of the first user message), re-asks included.

Actions: ok, 429, 429ra (Retry-After: 1), 408, 500, 503, 529, 400, 400echo (key echoed in a
permanent error), 401echo (key echoed in a 401), timeout (answers after ``slow_seconds``), drop
(closes the connection), badjson, fenced, prose (JSON inside prose and a trailing comma), length
(cut-off JSON with finish_reason length), badenum, pii (identifying strings in the answer),
placeholder (values that are personal details, or only a scrub placeholder),
objective (subjective false), marker (a rare marker value among the AI values), joined (a
comma-joined list as one AI value and an explicit value missing from the AI values).

A context window (``context_limit``, in tokens of ``chars_per_token`` characters, dense like
code) refuses a prompt that does not fit in the words of the server named by ``wording``:
openai, vllm (the newer "input tokens" form), llamacpp (with n_prompt_tokens and n_ctx) or
anthropic ("prompt is too long"). ``props`` serves llama.cpp's /props (n_ctx, total_slots)
and /tokenize; ``models_max_len`` serves vLLM's max_model_len in /v1/models.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKER_VALUE = "zqx rare marker value"
FAULT = re.compile(r"\[\[fault:([a-z0-9,]+)\]\]")
# Attempts are counted per conversation text, or per ``[[id:NAME]]`` where the text has one
# (a conversation shortened to fit the context is still the same conversation).
ATTEMPT_ID = re.compile(r"\[\[id:(\w+)\]\]")


def good_features(action: str) -> dict[str, Any]:
    task = "help plan a difficult conversation with a colleague"
    if action == "pii":
        task = "mail jane.doe@example.com, call +1 (555) 123-4567, see https://ex.com/x 1234567"
    ai_values = ["honesty", "empathy", "  honesty ", "professionalism"]
    if action == "marker":  # a rare value the privacy rule must keep out of every figure
        ai_values = [*ai_values, MARKER_VALUE]
    explicit = ["honesty"]
    if action == "placeholder":  # personal details inside values: scrubbing leaves no value
        ai_values = [*ai_values, "call me on +1 (555) 123-4567", "M1234567", "[phone]"]
        explicit = [*explicit, "[phone]"]
    if action == "joined":  # what a small model does: a list as one value, a stray explicit one
        ai_values = ["fear, compassion, kindness", "honesty"]
        explicit = ["honesty", "courage"]
    return {
        "subjective": action != "objective",
        "task": task,
        "ai_values": ai_values,
        "ai_values_explicit": explicit,
        "human_values": ["fairness"] if action != "pii" else ["privacy at jane@example.org"],
        "response_type": "mild support",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out leave broken pipes behind; that is the point of the test


class FakeLLM:
    def __init__(self, slow_seconds: float = 3.0, delay: float = 0.0) -> None:
        self.slow_seconds = slow_seconds
        self.delay = delay  # added to every answer (for kill tests and concurrency)
        self.default_actions: list[str] = []  # used when a conversation names no faults
        self.reject_json_schema = False  # like llama.cpp: a 500 for response_format json_schema
        self.only_tools = False  # a 400 for any response_format
        self.reasoning_model = False  # refuses max_tokens and temperature, as OpenAI's o-series
        self.batch_ready_after = 1  # status polls before a batch has ended
        self.context_limit: int | None = None
        self.chars_per_token = 2.0
        self.wording = "openai"
        self.props = False
        self.total_slots = 1
        self.models_max_len: int | None = None
        self.probes: list[str] = []
        self.serial = False  # one request computed at a time; the others wait (one slot)
        self.slot = threading.Lock()
        self.busy = 0  # requests being answered now
        self.most_busy = 0
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.log: list[dict[str, Any]] = []
        self.batches: dict[str, dict[str, Any]] = {}
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, text: str) -> int:
        return int(len(text) / self.chars_per_token) + 1

    # -- bookkeeping -------------------------------------------------------------------------

    def requests(self, path_part: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.log if path_part in r["path"]]

    def successes_by_conversation(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.requests():
            if r["status"] == 200 and r.get("cid"):
                out[r["cid"]] = out.get(r["cid"], 0) + 1
        return out

    def next_action(self, conv_text: str) -> tuple[str, str]:
        named = ATTEMPT_ID.search(conv_text)
        cid = named.group(1) if named else hashlib.sha256(conv_text.encode()).hexdigest()[:16]
        m = FAULT.search(conv_text)
        plan = m.group(1).split(",") if m else list(self.default_actions)
        with self.lock:
            n = self.attempts.get(cid, 0)
            self.attempts[cid] = n + 1
        return cid, plan[n] if n < len(plan) else "ok"

    # -- answers -----------------------------------------------------------------------------

    @staticmethod
    def answer_text(action: str, subjectivity_call: bool) -> tuple[str, bool]:
        """(content, cut off at max_tokens)"""
        if subjectivity_call:
            return json.dumps({"subjective": action != "objective"}), False
        full = json.dumps(good_features(action))
        if action == "badjson":
            return "I think the values are honesty and care {not json", False
        if action == "fenced":
            return f"```json\n{full}\n```", False
        if action == "prose":
            return f"Here is the JSON you asked for: {full[:-1]}, }} Hope this helps.", False
        if action == "length":
            return full[: len(full) // 2], True
        if action == "badenum":
            feats = good_features("ok")
            feats["response_type"] = "enthusiastic agreement"
            return json.dumps(feats), False
        return full, False


def task_answer(schema: Any, conv_text: str) -> str | None:
    """Answers for validate's structured tasks, scripted so that tests know what to expect:
    the judge calls the first listed AI value unsupported and everything else right; the
    privacy auditor rates 1 a string with an e-mail address, a digit or two capitalised words
    in a row, and 5 anything else."""
    props = set((schema or {}).get("properties", {})) if isinstance(schema, dict) else set()
    if props == {"rating"}:
        m = re.search(r"<string>(.*)</string>", conv_text, re.DOTALL)
        text = m.group(1) if m else conv_text
        named = re.search(r"\b[A-Z][a-z]+\s+[A-Z][a-z]+\b", text)
        rating = 1 if ("@" in text or re.search(r"\d", text) or named) else 5
        return json.dumps({"rating": rating})
    if "unsupported_ai_values" in props:
        m = re.search(r"<features>(.*)</features>", conv_text, re.DOTALL)
        feats = json.loads(m.group(1)) if m else {}
        ai = feats.get("ai_values") or []
        return json.dumps(
            {
                "unsupported_ai_values": ai[:1],
                "unstated_human_values": [],
                "human_value_missing": False,
                "response_type": feats.get("response_type") or "no values",
                "subjective": True,
                "task_ok": True,
            }
        )
    return None


def _conversation_text(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if m.get("role") == "user":
            content = m.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _is_subjectivity(schema: Any) -> bool:
    return isinstance(schema, dict) and set(schema.get("properties", {})) == {"subjective"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _record(self, **kw: Any) -> None:
        with self.fake.lock:
            arrived = getattr(self, "arrived", None)
            self.fake.log.append(
                {"path": self.path, "time": time.monotonic(), "arrived": arrived, **kw}
            )

    def _key(self) -> str:
        auth = self.headers.get("authorization") or ""
        return self.headers.get("x-api-key") or auth.removeprefix("Bearer ").strip()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.fake
        # What the runner asks a server about itself: kept apart from the request log.
        if self.path.endswith(("/props", "/models")):
            with fake.lock:
                fake.probes.append(self.path)
            if self.path == "/props" and fake.props:
                self._send(200, {"default_generation_settings": {"n_ctx": fake.context_limit},
                                 "total_slots": fake.total_slots})  # fmt: skip
            elif self.path == "/v1/models" and fake.models_max_len:
                entry = {"id": "m", "object": "model", "max_model_len": fake.models_max_len}
                self._send(200, {"object": "list", "data": [entry]})
            else:
                self._send(404, {"error": "not found"})
            return
        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", self.path)
        if not m or m.group(1) not in fake.batches:
            self._record(status=404)
            self._send(404, {"error": "not found"})
            return
        batch = fake.batches[m.group(1)]
        if m.group(2):
            lines = []
            for req in batch["requests"]:
                params = req["params"]
                _, action = fake.next_action(_conversation_text(params["messages"]))
                if action in ("500", "badjson", "timeout", "drop", "429", "429ra"):
                    result: dict[str, Any] = {"type": "errored", "error": {"type": "api_error"}}
                else:
                    result = {"type": "succeeded", "message": _anthropic_message(action, params)}
                lines.append(json.dumps({"custom_id": req["custom_id"], "result": result}))
            self._record(status=200, batch=m.group(1))
            self._send(200, "\n".join(lines) + "\n")
            return
        batch["polls"] += 1
        ended = batch["polls"] >= fake.batch_ready_after
        self._record(status=200, batch=m.group(1))
        self._send(
            200,
            {
                "id": m.group(1),
                "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress",
                "results_url": f"{fake.url}/v1/messages/batches/{m.group(1)}/results"
                if ended
                else None,
            },
        )

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        self.arrived = time.monotonic()
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._record(status=400)
            self._send(400, {"error": "bad json"})
            return
        if self.path == "/v1/messages/batches":
            with fake.lock:
                bid = f"msgbatch_{len(fake.batches) + 1:04d}"
                fake.batches[bid] = {"requests": body["requests"], "polls": 0}
            self._record(status=200, batch=bid, n=len(body["requests"]))
            self._send(200, {"id": bid, "processing_status": "in_progress"})
            return
        if self.path == "/tokenize" and fake.props:
            n = fake.count(str(body.get("content", "")))
            self._record(status=200, tokenize=n)
            self._send(200, {"tokens": list(range(n))})
            return
        anthropic = self.path == "/v1/messages"
        if not anthropic and self.path != "/v1/chat/completions":
            self._record(status=404)
            self._send(404, {"error": "no such endpoint"})
            return
        conv_text = _conversation_text(body.get("messages", []))
        cid = hashlib.sha256(conv_text.encode()).hexdigest()[:16]
        with fake.lock:
            fake.busy += 1
            fake.most_busy = max(fake.most_busy, fake.busy)
        try:
            if fake.serial:
                with fake.slot:
                    time.sleep(fake.delay)
                    self._answer(body, anthropic, conv_text, cid)
            else:
                if fake.delay:
                    time.sleep(fake.delay)
                self._answer(body, anthropic, conv_text, cid)
        finally:
            with fake.lock:
                fake.busy -= 1

    def _overflow(self, body: dict[str, Any], anthropic: bool, cid: str) -> bool:
        """Refuses a prompt longer than the context, in the configured server's words."""
        fake = self.fake
        if fake.context_limit is None:
            return False
        texts = [body.get("system") or ""]
        texts += [m.get("content") or "" for m in body.get("messages", [])]
        prompt = sum(fake.count(t if isinstance(t, str) else json.dumps(t)) for t in texts)
        prompt += 8 * len(texts)  # the chat template's tokens
        answer = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        limit = fake.context_limit
        if (prompt if anthropic else prompt + answer) <= limit:
            self.prompt_tokens = prompt
            return False
        if fake.wording == "anthropic":
            status, err = 400, {"type": "error", "error": {"type": "invalid_request_error",
                "message": f"prompt is too long: {prompt} tokens > {limit} maximum"}}  # fmt: skip
        elif fake.wording == "llamacpp":
            status, err = 400, {"error": {"code": 400, "type": "exceed_context_size_error",
                "message": "the request exceeds the available context size, try increasing it",
                "n_prompt_tokens": prompt, "n_ctx": limit}}  # fmt: skip
        elif fake.wording == "vllm":
            status, err = 400, {"object": "error", "type": "BadRequestError", "message": (
                f"'max_tokens' or 'max_completion_tokens' is too large: {answer}. This model's "
                f"maximum context length is {limit} tokens and your request has {prompt} input "
                f"tokens ({answer} > {limit} - {prompt}).")}  # fmt: skip
        else:
            msg = (
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt + answer} tokens ({prompt} in the messages, {answer} in the "
                "completion). Please reduce the length of the messages or completion."
            )
            status, err = 400, {"error": {"code": "context_length_exceeded", "message": msg}}
        self._record(status=status, cid=cid, action="overflow", prompt=prompt, answer=answer,
                     n_messages=len(body.get("messages", [])))  # fmt: skip
        self._send(status, err)
        return True

    def _answer(self, body: dict[str, Any], anthropic: bool, conv_text: str, cid: str) -> None:
        fake = self.fake
        self.prompt_tokens = None
        if self._overflow(body, anthropic, cid):
            return
        rf = body.get("response_format")
        if not anthropic and fake.reasoning_model:
            refusal = None
            if "max_tokens" in body:
                refusal = (
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead."
                )
            elif "temperature" in body:
                refusal = (
                    "Unsupported value: 'temperature' does not support 0 with this model. "
                    "Only the default (1) value is supported."
                )
            if refusal:
                self._record(status=400, cid=cid, action="param")
                self._send(400, {"error": {"message": refusal, "type": "invalid_request_error"}})
                return
        # A refused structured-output mode is not an attempt in the conversation's fault plan.
        if not anthropic and rf is not None:
            if fake.only_tools:
                self._record(status=400, cid=cid, action="no response_format")
                self._send(400, {"error": {"message": "response_format is not supported"}})
                return
            if fake.reject_json_schema and rf.get("type") == "json_schema":
                self._record(status=500, cid=cid, action="no json_schema")
                self._send(500, {"error": {"message": "Unsupported response_format json_schema"}})
                return
        cid, action = fake.next_action(conv_text)
        status = {"429": 429, "429ra": 429, "408": 408, "500": 500, "503": 503, "529": 529}
        status.update({"400": 400, "400echo": 400, "401echo": 401})
        if action in status:
            code = status[action]
            headers = {"retry-after": "1"} if action == "429ra" else {}
            msg = "try again"
            if action.endswith("echo"):
                msg = f"Incorrect API key provided: {self._key()}"
            self._record(status=code, cid=cid, action=action)
            self._send(code, {"error": {"message": msg}}, headers)
            return
        if action == "timeout":
            time.sleep(fake.slow_seconds)
        if action == "drop":
            self._record(status=0, cid=cid, action=action)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if anthropic:
            out = _anthropic_message(action, body)
        else:
            schema = ((rf or {}).get("json_schema") or {}).get("schema") or (rf or {}).get("schema")
            tools = body.get("tools") or []
            if tools:
                schema = tools[0]["function"]["parameters"]
            text, cut = FakeLLM.answer_text(action, _is_subjectivity(schema))
            scripted = task_answer(schema, conv_text) if action == "ok" else None
            if scripted is not None:
                text, cut = scripted, False
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if tools:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": tools[0]["function"]["name"], "arguments": text},
                        }
                    ],
                }
            out = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "length" if cut else "stop"}
                ],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100},
            }
        self._record(
            status=200,
            cid=cid,
            action=action,
            prompt=self.prompt_tokens,
            n_messages=len(body.get("messages", [])),
            mode=(rf or {}).get("type") or ("tools" if body.get("tools") else None),
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
            text=conv_text,
        )
        self._send(200, out)


def _anthropic_message(action: str, body: dict[str, Any]) -> dict[str, Any]:
    tools = body.get("tools") or [{}]
    text, cut = FakeLLM.answer_text(action, _is_subjectivity(tools[0].get("input_schema")))
    try:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": "toolu_1",
            "name": tools[0].get("name", "tool"),
            "input": json.loads(text),
        }
    except ValueError:  # a broken answer comes back as text, as a model without the tool would
        block = {"type": "text", "text": text}
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [block],
        "stop_reason": "max_tokens" if cut else "tool_use",
        "usage": {"input_tokens": 1000, "output_tokens": 100},
    }
