"""A deterministic, offline builder for a tiny Qwen2-architecture model and its tokenizer.

Tests and the CPU quickstart need a real Hugging Face model folder that verl, LLaMA-Factory
and transformers load by path, with no network access. The tokenizer is a byte-level BPE
trained on the project's own text (prompts, taxonomy, code idioms, the protocol's tags); like
Qwen2.5's, it splits numbers into single digits, and its chat template renders conversations exactly as Qwen2.5's does (``<|im_start|>role ... <|im_end|>``,
the same default system prompt), for messages without tool calls.

The protocol tags are added as single, *non-special* tokens: verl decodes responses with
``skip_special_tokens=True`` before scoring, which would silently delete special tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from datamind_ext.protocol.tags import CLOSE, OPEN, TAG_NAMES

BUILDER_VERSION = 3
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAG_TOKENS = [OPEN[t] for t in TAG_NAMES] + [CLOSE[t] for t in TAG_NAMES]
CHAT_TEMPLATE = (Path(__file__).with_name("chat_template.jinja")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class TinySpec:
    """Size of the model; presets below. ``vocab_size`` is the BPE target (tags included)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    max_position_embeddings: int = 4096
    seed: int = 0


PRESETS: dict[str, TinySpec] = {
    # ~0.2M parameters: unit and integration tests.
    "test": TinySpec(vocab_size=1024, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=128),
    # ~3.9M parameters: the CPU quickstart (see the notes on what it can learn in minutes).
    "quickstart": TinySpec(vocab_size=2048, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                           num_key_value_heads=4, intermediate_size=768),
}


def repo_data_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "data"


def default_cache_dir() -> Path:
    env = os.environ.get("DATAMIND_EXT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "datamind_ext"


_CODE_IDIOMS = [
    "import pandas as pd", "import numpy as np", "df = pd.read_csv('{f}.csv')", "df = pd.read_excel('{f}.xlsx')",
    "print(df.head(3))", "print(df.columns.tolist())", "print(df.dtypes)", "print(df.shape)",
    "print(round(df['{c}'].mean(), 2))", "print(df['{c}'].max())", "print(df['{c}'].min())", "print(df['{c}'].sum())",
    "print(df['{c}'].nunique())", "print((df['{c}'] > {n}).sum())", "print(df.groupby('{g}')['{c}'].mean().idxmax())",
    "print(df[df['{g}'] == '{v}']['{c}'].mean())", "print(df['{c}'].median())", "print(df['{c}'].std())",
    "print(df[['{c}', '{c2}']].corr())", "print(df.sort_values('{c}', ascending=False).head({k}))",
    "print(get_db_info())", "execute_sql(sql=\"SELECT {c} FROM {f} WHERE {c2} > {n}\", output_path=\"result.csv\")",
    "The code ran successfully:", "The code failed:", "Traceback (most recent call last):", "KeyError: '{c}'",
]
_WORDS = ("price qty cost revenue profit sales units age score rating weight height income amount total count "
          "region city category product store segment country department gender channel status year month date "
          "customer order item name id value mean median max min sum average number rows columns table file "
          "what which how many is the of in with for highest lowest greater than less each per across between "
          "data analysis question answer result first load check compute print round").split()


def _synthetic_corpus(rng: random.Random, n_lines: int) -> list[str]:
    lines = []
    for _ in range(n_lines):
        tmpl = rng.choice(_CODE_IDIOMS)
        lines.append(tmpl.format(
            f=rng.choice(["sales", "shop", "employees", "weather", "orders", "data"]),
            c=rng.choice(_WORDS[:12]), c2=rng.choice(_WORDS[:12]), g=rng.choice(_WORDS[12:22]),
            v=rng.choice(["north", "south", "east", "west", "A", "B"]), n=rng.randint(0, 10_000), k=rng.randint(1, 10),
        ))
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))) + "?")
        lines.append(f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 4)}f} {rng.randint(0, 10**rng.randint(1, 7))}")
    for t in TAG_NAMES:
        lines.append(f"{OPEN[t]}\n{CLOSE[t]}")
    return lines


def _project_corpus() -> list[str]:
    """Text of the project's own data (package prompts, taxonomy, knowledge; the repository's
    sample files when present), sorted by path relative to its data folder for determinism."""
    from datamind_ext.data import PACKAGE_DATA

    files: dict[str, Path] = {}
    for root in (PACKAGE_DATA, repo_data_dir()):
        if root.is_dir():
            for p in root.rglob("*"):
                if p.is_file() and p.suffix in {".md", ".txt", ".yaml", ".yml", ".json"} and p.stat().st_size < 1_000_000:
                    files.setdefault(p.relative_to(root).as_posix(), p)
    out = []
    for _, p in sorted(files.items()):
        out.extend(p.read_text(encoding="utf-8", errors="replace").splitlines())
    return out


def _program_corpus(tasks_per_table: int = 40) -> list[str]:
    """What programmatic synthesis writes over the sample tables (questions, reasoning, code, in
    both expert styles; nothing is executed), and the expert's fixed turns.

    Why: a byte-level BPE learns merges only for text it saw; trained without the programs' own
    idioms it splits ``astype``, ``select`` or ``python`` into letters and a quickstart trajectory
    costs the tiny model a third more tokens. (The note's checked run trained its tokenizer on the
    training text for the same reason.)"""
    from datamind_ext.agent.prompts import PROMPTS_DIR, system_prompt
    from datamind_ext.synthesis.expert import assistant_answer_turn
    from datamind_ext.synthesis.profile import TableProfile, find_data_files, profile_file
    from datamind_ext.synthesis.programs import make_task_specs

    samples = repo_data_dir() / "samples" / "files"
    if not samples.is_dir():
        return []
    templates = sorted(PROMPTS_DIR.glob("system_files*.md"))
    out = []
    for path in find_data_files(samples):
        for prof in profile_file(path, shown_path=path.name):
            if not isinstance(prof, TableProfile):
                continue
            for style in ("inspect_first", "direct"):
                for spec in make_task_specs(prof, tasks_per_table, seed=0, min_depth=1, max_depth=3, style=style):
                    # as often as in training text: a system prompt and an answer turn per trajectory
                    out += [system_prompt([path.name], template=t) for t in templates]
                    out += [spec.question, *(assistant_answer_turn("0", think=t).content for t in (True, False))]
                    out += [line for c in spec.cells for line in (c.think, *c.code.splitlines())]
    return out


def _fingerprint(spec: TinySpec, corpus: list[str]) -> str:
    h = hashlib.sha256(json.dumps([BUILDER_VERSION, asdict(spec), CHAT_TEMPLATE], sort_keys=True).encode())
    for line in corpus:
        h.update(line.encode("utf-8", "replace"))
    return h.hexdigest()[:12]


def train_tokenizer(corpus: list[str], vocab_size: int):
    """A byte-level BPE tokenizer with the chat markers as special and the tags as added tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    # one token per digit, as Qwen2.5's own tokenizer splits numbers: the answer copies a printed value, and
    # a tiny model copies ten well-trained digit tokens far better than hundreds of rare multi-digit ones
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS), special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(preset: str = "test", cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Build (or reuse from the cache) the tiny model folder for ``preset``; returns its path.

    Deterministic: the same preset, corpus and builder version give byte-identical weights.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    spec = PRESETS[preset]
    corpus = _project_corpus() + _program_corpus() + _synthetic_corpus(random.Random(spec.seed), 3000)
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "models"
    out = root / f"tiny-{preset}-{_fingerprint(spec, corpus)}"
    if (out / "config.json").is_file() and not force:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads, max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id, torch_dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    tmp.rename(out)
    return out
