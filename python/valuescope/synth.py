"""A synthetic corpus of extracted features, calibrated on the published "Values in the Wild" data.

The rows follow the feature schema of the design (one conversation per row). Sampling runs in Rust
(``valuescope._core.synth_batches``); this module holds the calibration, as data, and streams the
rows to Parquet. The same (n, seed, models) always gives the same rows, whatever the batch size or
the number of threads.

Calibration choices
-------------------
Published figures (Huang et al. 2025, arXiv 2504.15236, and the CC BY 4.0 release shipped in
``valuescope/data``, see its NOTICE.md) and what the generator does with them:

* **AI values**: all 3,307 values of ``values_frequencies.csv``. Each value is present in a
  conversation with probability exactly its published ``pct_convos`` (so about 4.0 values per
  conversation), as an independent Bernoulli draw. Planted context associations (below) move part
  of a value's mass into one context; the background rate elsewhere is solved so that the overall
  share stays the published one.
* **Response types** overall: strong support 28.2%, mild support 14.5%, neutral acknowledgment
  9.6%, reframing 6.6%, mild resistance 2.4%, strong resistance 3.0%, no values 35.7% (published).
* **Models**: three, sharing 50/40/10% of the conversations. ``model-c`` has the paper's more
  expressive mix (strong support 43.8%, strong resistance 9.5%; the rest of its mix is ours);
  ``model-a`` and ``model-b`` are equal and opposite shifts around the remainder, so the overall mix
  is exactly the published one. With one model name the published mix is used; with two, the
  remainder mix and ``model-c``'s (90/10), again exact overall.
* **Model differences within tasks** (the paper's appendix B.5.3, planted; ours): the expressive
  model's users write much more creative text (creative writing is 30% of its conversations, and
  the other models' mixes are lowered so the overall cluster shares stay as listed), so its raw rate
  of "creative freedom" (planted in creative writing) is higher while within each task it is the
  same: a confounded difference. With three models, ``model-b`` states "intellectual curiosity"
  1.5 times and ``model-a`` 0.6 times as often as the published rate in every context (shares
  0.4/0.5/0.1, so the overall share stays the published one): a difference that holds within
  tasks. See ``CONFOUNDED_MIX`` and ``WITHIN_TASK_FACTORS``.
* **Human values** in 45% of conversations (never under "no values"), 1.48 values on average
  (counts 1/2/3/4 with probabilities .62/.29/.07/.02). The published top three (authenticity 3.8%,
  efficiency 2.6%, clarity 2.2% of conversations) are targets; the order of the next ten is our
  guess; the rest of the mass is spread over the published AI values (weight ~ pct_convos^0.7), so
  rows and columns of the human x AI table overlap as in real data. Weights were tuned once so the
  realised shares land on the targets.
* **Mirroring** (a human value also among the AI values): strong support 20.1%, reframing 15.3%,
  strong resistance 1.2% (published); mild support 15%, neutral acknowledgment 8%, mild
  resistance 5% (ours). The generator hits these exactly in expectation.
* **Planted task associations** (the paper's examples and a few like them): "healthy boundaries"
  and "mutual respect" in relationship advice, "historical accuracy" on controversial history,
  "human agency" in technology ethics, and one or two per other cluster; see ``CONTEXT_PLANTS``.
  ``share`` is the part of the value's conversations placed in that context on top of its
  background rate (0.6: lift of about 0.6/P(context)). Two rare values of the default watch list
  (``valuescope/data/values_to_watch.txt``), "dominance" and "sexual exploitation", are planted in
  creative writing (our choice), so the report's "Values to watch" has something to show.
* **Planted response-type associations**: resistance brings ethical boundaries, harm prevention,
  honesty and ethical integrity; reframing brings emotional validation and balanced perspective.
* **Planted human -> AI associations**: efficiency -> efficiency (in a supportive conversation that
  mirrors and whose AI values include efficiency, the user states efficiency with probability
  0.3); deception -> ethical integrity, harm prevention, honesty (deception is stated only in
  resisted conversations whose AI values hold one of those three, with probability 0.35): the
  opposing pair, answered mostly by resistance.
* **Users**: n/5 users; user index = floor(n_users * U^3), so the heaviest 0.1% of users hold about
  10% of the conversations, while the median user has about three. Each of the 20 heaviest users
  has a pet value (``PET_VALUES``, not in the published list) in 30% of their conversations:
  frequent values from a single user, which the distinct-user threshold (10 users) must suppress.
* **Task texts** (``task_texts=True``, ``valuescope synth --task-texts``): instead of one of a few
  fixed strings, ``task`` holds a free-text task written the way an LLM extractor writes them
  ("help me debug a Python script that reads CSV files step by step"), expanded in Rust from the
  templates of ``valuescope/data/task_texts.json`` (per category: four templates of four to six
  slots, a dozen phrases each, plus shared lead-ins and manners; 4 to 15 words; millions of
  possible texts per category, so 308,210 conversations give about 300,000 distinct texts).
  ``task_cluster`` is then null, and the planted category, the ground truth, goes to a side file
  (``<name>.task_truth.csv``: ``conversation_id,task_category``) that no stage of the pipeline
  reads. Every other column is the same as without texts (the texts use their own random stream).
* ``ai_values_explicit``: each expressed value is also explicit with a probability that rises in
  reframing and resistance (``EXPLICIT_RATES``, ours; the paper's appendix B.6 reports the rise).
  ``subjective``: true, null (unknown) for 1% of rows; the analysis keeps both.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from valuescope import _core

#: Published overall response-type shares (percent).
PUBLISHED_RESPONSE_TYPES = (28.2, 14.5, 9.6, 6.6, 2.4, 3.0, 35.7)
#: The expressive model's published strong support and strong resistance; the rest is ours.
EXPRESSIVE_MIX = (43.8, 12.0, 6.0, 6.5, 3.0, 9.5, 19.2)
EXPRESSIVE_SHARE = 0.10
DEFAULT_MODELS = ("model-a", "model-b", "model-c")

#: The confounded model's users: this cluster takes this share of its conversations.
CONFOUNDED_MIX = ("creative writing", 0.30)
#: A value planted in that cluster, whose raw rate the confounding moves.
CONFOUNDED_VALUE = "creative freedom"
#: With three models: (value, factor per model) on its inclusion probability, in every context.
WITHIN_TASK_FACTORS = ("intellectual curiosity", (0.6, 1.5, 1.0))
#: Probability that an expressed value is stated explicitly, per response type (ours).
EXPLICIT_RATES = (0.15, 0.15, 0.15, 0.3, 0.35, 0.45, 0.15)

#: Published mirroring for strong support, reframing, strong resistance; the others are ours.
MIRRORING = (0.201, 0.15, 0.08, 0.153, 0.05, 0.012, 0.0)
HUMAN_RATE = 0.45
HUMAN_COUNTS = (0.62, 0.29, 0.07, 0.02)

#: Target share of conversations (percent) for the named human values. The top three are
#: published; the rest are plausible guesses.
HUMAN_TARGETS = {
    "authenticity": 3.8,
    "efficiency": 2.6,
    "clarity": 2.2,
    "professionalism": 1.6,
    "honesty": 1.5,
    "personal growth": 1.4,
    "creativity": 1.3,
    "accuracy": 1.2,
    "practicality": 1.1,
    "empathy": 1.0,
    "transparency": 1.0,
    "directness": 0.9,
    "work-life balance": 0.8,
}
#: Weight multipliers from one tuning run (realised/target shares), so realised ~ target.
HUMAN_TUNING = {"authenticity": 1.1, "clarity": 0.88, "professionalism": 0.72}
#: How much of the human-value mass goes to the named values; the rest to the published tail.
HUMAN_TAIL_EXPONENT = 0.5

CLUSTERS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    (
        "software development",
        0.16,
        (
            "debug a failing build",
            "review a pull request",
            "design a database schema",
            "write unit tests",
        ),
    ),
    (
        "writing and editing",
        0.12,
        ("edit an essay for clarity", "draft a cover letter", "proofread a report"),
    ),
    (
        "business and marketing strategy",
        0.09,
        ("plan a product launch", "write marketing copy", "analyse a competitor"),
    ),
    (
        "education and tutoring",
        0.08,
        ("explain a maths concept", "prepare for an exam", "design a lesson plan"),
    ),
    (
        "data analysis",
        0.07,
        ("interpret regression output", "clean a data set", "choose a statistical test"),
    ),
    (
        "academic research",
        0.06,
        ("structure a literature review", "check a citation", "frame a research question"),
    ),
    (
        "creative writing",
        0.06,
        ("develop a fictional character", "write a poem", "outline a short story"),
    ),
    (
        "relationship advice",
        0.05,
        ("handle a conflict with a partner", "set limits with family", "navigate a breakup"),
    ),
    (
        "health and wellness",
        0.05,
        ("understand a diagnosis", "plan a fitness routine", "manage medication side effects"),
    ),
    (
        "career and job search",
        0.05,
        ("negotiate a salary", "prepare for an interview", "plan a career change"),
    ),
    ("mental health support", 0.04, ("cope with anxiety", "deal with burnout", "process grief")),
    ("personal finance", 0.04, ("build a budget", "compare investment options", "pay down debt")),
    ("legal questions", 0.03, ("understand a tenancy agreement", "respond to a contract dispute")),
    (
        "controversial historical events",
        0.03,
        ("discuss a contested war history", "assess a colonial legacy"),
    ),
    (
        "technology ethics and ai",
        0.03,
        ("debate ai and automation of work", "discuss algorithmic decision making"),
    ),
    ("philosophy and religion", 0.02, ("discuss free will", "compare religious ethics")),
    (
        "beauty and fashion marketing",
        0.02,
        ("write skincare product copy", "plan a fashion campaign"),
    ),
)

#: (context, category, AI value, share of the value's conversations placed there).
CONTEXT_PLANTS: tuple[tuple[str, str, str, float], ...] = (
    ("task_cluster", "relationship advice", "healthy boundaries", 0.6),
    ("task_cluster", "relationship advice", "mutual respect", 0.5),
    ("task_cluster", "relationship advice", "emotional validation", 0.3),
    ("task_cluster", "controversial historical events", "historical accuracy", 0.6),
    ("task_cluster", "technology ethics and ai", "human agency", 0.7),
    ("task_cluster", "technology ethics and ai", "responsible innovation", 0.5),
    ("task_cluster", "software development", "code quality", 0.6),
    ("task_cluster", "academic research", "academic integrity", 0.4),
    ("task_cluster", "creative writing", "creative freedom", 0.5),
    # rare values of the default watch list, concentrated where role play hides requests
    ("task_cluster", "creative writing", "dominance", 0.5),
    ("task_cluster", "creative writing", "sexual exploitation", 0.4),
    ("task_cluster", "health and wellness", "patient wellbeing", 0.6),
    ("task_cluster", "mental health support", "emotional support", 0.5),
    ("task_cluster", "mental health support", "self-compassion", 0.5),
    ("task_cluster", "personal finance", "financial prudence", 0.6),
    ("task_cluster", "legal questions", "legal compliance", 0.6),
    ("task_cluster", "career and job search", "professional excellence", 0.4),
    ("task_cluster", "philosophy and religion", "epistemic humility", 0.3),
    ("task_cluster", "beauty and fashion marketing", "expertise", 0.3),
    ("task_cluster", "education and tutoring", "educational value", 0.3),
    ("response_type", "strong resistance", "ethical boundaries", 0.35),
    ("response_type", "strong resistance", "harm prevention", 0.2),
    ("response_type", "strong resistance", "ethical integrity", 0.2),
    ("response_type", "strong resistance", "honesty", 0.1),
    ("response_type", "mild resistance", "ethical boundaries", 0.15),
    ("response_type", "mild resistance", "harm prevention", 0.1),
    ("response_type", "reframing", "emotional validation", 0.3),
    ("response_type", "reframing", "balanced perspective", 0.2),
)

#: (human value, AI values that trigger it, response types, probability).
HUMAN_TRIGGERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], float], ...] = (
    (
        "efficiency",
        ("efficiency",),
        ("strong support", "mild support", "neutral acknowledgment"),
        0.3,
    ),
    (
        "deception",
        ("ethical integrity", "harm prevention", "honesty"),
        ("strong resistance", "mild resistance"),
        0.35,
    ),
)

#: Pet values of the 20 heaviest users (absent from the published list).
PET_VALUES = (
    "aquarium stewardship",
    "bonsai patience",
    "chess mastery",
    "vintage synth fidelity",
    "stargazing wonder",
    "fountain pen craft",
    "sourdough discipline",
    "model railway precision",
    "birdwatching attentiveness",
    "climbing grit",
    "beekeeping care",
    "calligraphic grace",
    "genealogical thoroughness",
    "ham radio etiquette",
    "origami exactness",
    "woodturning finesse",
    "marathon endurance",
    "tabletop fair play",
    "homebrew experimentation",
    "keyboard tactility",
)

DEFAULT_BATCH_SIZE = 131_072
#: The ground-truth column of a corpus with task texts (set aside by ``write_corpus``).
TRUE_TASK_CLUSTER = "true_task_cluster"
TRUTH_SUFFIX = ".task_truth.csv"


def truth_path(corpus: str | os.PathLike[str]) -> Path:
    """Where ``write_corpus(..., task_texts=True)`` puts the planted task categories."""
    p = Path(corpus)
    return p.with_name(p.stem + TRUTH_SUFFIX)


@lru_cache(maxsize=1)
def task_text_templates() -> dict[str, Any]:
    """The task-text templates (package data), as the Rust generator takes them."""
    text = resources.files("valuescope").joinpath("data/task_texts.json").read_text("utf-8")
    spec = json.loads(text)
    return {k: spec[k] for k in ("shared", "categories", "min_words", "max_words")}


@lru_cache(maxsize=1)
def published_value_frequencies() -> tuple[tuple[str, float], ...]:
    """The published AI values and their pct_convos, from the shipped CSV (CC BY 4.0)."""
    text = resources.files("valuescope").joinpath("data/values_frequencies.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple((r["value"], float(r["pct_convos"])) for r in rows)


def model_mixes(models: Sequence[str] = DEFAULT_MODELS) -> list[dict[str, Any]]:
    """Per-model response-type mixes whose weighted sum is the published mix exactly."""
    published = PUBLISHED_RESPONSE_TYPES
    rest = [
        (p - EXPRESSIVE_SHARE * e) / (1 - EXPRESSIVE_SHARE)
        for p, e in zip(published, EXPRESSIVE_MIX, strict=True)
    ]
    # model-a leans neutral, model-b leans supportive; 0.5 * shift_a + 0.4 * shift_b = 0
    shift = (-2.0, 1.0, 2.0, 0.5, 0.0, -0.3, -1.2)
    names = list(models)
    if len(names) == 1:
        return [{"name": names[0], "share": 1.0, "response_types": list(published)}]
    if len(names) == 2:
        return [
            {"name": names[0], "share": 1 - EXPRESSIVE_SHARE, "response_types": rest},
            {"name": names[1], "share": EXPRESSIVE_SHARE, "response_types": list(EXPRESSIVE_MIX)},
        ]
    if len(names) == 3:
        return [
            {
                "name": names[0],
                "share": 0.5,
                "response_types": [r + s for r, s in zip(rest, shift, strict=True)],
            },
            {
                "name": names[1],
                "share": 0.4,
                "response_types": [r - 1.25 * s for r, s in zip(rest, shift, strict=True)],
            },
            {"name": names[2], "share": EXPRESSIVE_SHARE, "response_types": list(EXPRESSIVE_MIX)},
        ]
    raise ValueError("give one, two or three model names")


def _confounded_task_mixes() -> tuple[list[float], list[float]]:
    """(the expressive model's cluster weights, the other models'), whose mix at the expressive
    share is the listed cluster shares exactly."""
    cluster, share = CONFOUNDED_MIX
    shares = [s for _, s, _ in CLUSTERS]
    base = next(s for n, s, _ in CLUSTERS if n == cluster)
    scale = (1 - share) / (1 - base)
    expressive = [share if n == cluster else s * scale for n, s, _ in CLUSTERS]
    rest = [
        (s - EXPRESSIVE_SHARE * e) / (1 - EXPRESSIVE_SHARE)
        for s, e in zip(shares, expressive, strict=True)
    ]
    return expressive, rest


def plant_model_differences(mixes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds the task mixes and value factors of the module docstring to ``model_mixes``' output."""
    if len(mixes) < 2:
        return mixes
    expressive, rest = _confounded_task_mixes()
    out = [dict(m, task_clusters=rest) for m in mixes[:-1]]
    out.append(dict(mixes[-1], task_clusters=expressive))
    if len(mixes) == 3:
        value, factors = WITHIN_TASK_FACTORS
        for m, f in zip(out, factors, strict=True):
            if f != 1.0:
                m["value_multipliers"] = {value: f}
    return out


def human_vocabulary() -> list[dict[str, Any]]:
    """Human values with weights: the named targets, then the published AI values as a tail."""
    named = {k: v * HUMAN_TUNING.get(k, 1.0) for k, v in HUMAN_TARGETS.items()}
    total_mentions = 100 * HUMAN_RATE * sum((i + 1) * p for i, p in enumerate(HUMAN_COUNTS))
    tail_mass = total_mentions - sum(HUMAN_TARGETS.values())
    tail = [(v, p**HUMAN_TAIL_EXPONENT) for v, p in published_value_frequencies() if v not in named]
    scale = tail_mass / sum(w for _, w in tail)
    vocab = [{"name": k, "weight": w} for k, w in named.items()]
    vocab += [{"name": v, "weight": w * scale} for v, w in tail]
    return vocab


def build_spec(models: Sequence[str] = DEFAULT_MODELS, task_texts: bool = False) -> dict[str, Any]:
    """The calibration as the Rust generator takes it (see the module docstring)."""
    values = published_value_frequencies()
    names = {v for v, _ in values}
    pets = [p for p in PET_VALUES if p not in names]
    if len(set(models)) != len(list(models)):
        raise ValueError("model names must be distinct")
    return {
        "ai_values": [v for v, _ in values],
        "ai_pct_convos": [p for _, p in values],
        "models": plant_model_differences(model_mixes(models)),
        "clusters": [{"name": n, "share": s, "tasks": list(t)} for n, s, t in CLUSTERS],
        "plants": [
            {"context": c, "category": k, "value": v, "share": s} for c, k, v, s in CONTEXT_PLANTS
        ],
        "human_values": human_vocabulary(),
        "human_rate": HUMAN_RATE,
        "human_counts": list(HUMAN_COUNTS),
        "triggers": [
            {"human_value": h, "ai_values": list(a), "response_types": list(r), "probability": p}
            for h, a, r, p in HUMAN_TRIGGERS
        ],
        "mirroring": list(MIRRORING),
        "explicit_rate": 0.2,
        "explicit_rates": list(EXPLICIT_RATES),
        "users": {
            "conversations_per_user": 5.0,
            "skew": 3.0,
            "pets": pets,
            "pet_rate": 0.3,
        },
        "subjective_null_rate": 0.01,
        "task_texts": task_text_templates() if task_texts else None,
    }


def synth_batches(
    n: int,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    models: Sequence[str] = DEFAULT_MODELS,
    dictionary: bool = True,
    task_texts: bool = False,
) -> pa.RecordBatchReader:
    """Rows [0, n) of the synthetic corpus as a RecordBatchReader, generated on demand.

    ``dictionary=True`` gives dictionary-encoded string columns (smaller, faster to write and to
    analyse); ``False`` gives plain strings. ``task_texts=True``: free-text tasks, a null
    ``task_cluster`` and the ground truth in a last column, ``TRUE_TASK_CLUSTER``.
    """
    if n < 0 or seed < 0:
        raise ValueError("n and seed must be non-negative")
    spec = json.dumps(build_spec(models, task_texts))
    return _core.synth_batches(spec, n, seed, batch_size, dictionary)


def write_corpus(
    out_path: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    models: Sequence[str] = DEFAULT_MODELS,
    compression: str = "zstd",
    task_texts: bool = False,
) -> Path:
    """Writes n synthetic conversations to a Parquet file, one row group per batch.

    The file appears atomically (written beside the target, then renamed). Returns its path.
    With ``task_texts``, the planted task categories go to ``truth_path(out_path)`` instead.
    """
    import pyarrow.csv as pcsv
    from tqdm.auto import tqdm

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    truth = truth_path(out)
    truth_tmp = truth.with_name(f".{truth.name}.{os.getpid()}.tmp")
    reader = synth_batches(n, seed, batch_size, models, dictionary=True, task_texts=task_texts)
    schema = reader.schema
    if task_texts:
        schema = schema.remove(schema.get_field_index(TRUE_TASK_CLUSTER))
    truth_schema = pa.schema([("conversation_id", pa.string()), ("task_category", pa.string())])
    bar = tqdm(total=n, unit="conv", unit_scale=True, desc="synth", disable=not progress)
    try:
        # store_schema=False: readers see plain strings (DuckDB, polars and pandas alike);
        # pyarrow can still ask for dictionaries with read_dictionary.
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(
                pq.ParquetWriter(tmp, schema, compression=compression, store_schema=False)
            )
            truth_writer = (
                stack.enter_context(pcsv.CSVWriter(truth_tmp, truth_schema)) if task_texts else None
            )
            for batch in reader:
                if truth_writer is not None:
                    cats = batch.column(TRUE_TASK_CLUSTER).cast(pa.string())
                    truth_writer.write_batch(
                        pa.record_batch([batch.column("conversation_id"), cats], truth_schema)
                    )
                    batch = batch.drop_columns([TRUE_TASK_CLUSTER])
                writer.write_batch(batch, row_group_size=batch.num_rows)
                bar.update(batch.num_rows)
        if task_texts:
            os.replace(truth_tmp, truth)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        truth_tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return out
