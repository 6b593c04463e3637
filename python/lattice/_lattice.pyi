"""Type stubs of the native module (python/src/*.rs)."""

import os
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Union, final

from typing_extensions import Self

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = ["Simulation", "Encoder", "MoeResult", "FlowsResult", "__version__"]

_Config = Union[str, "os.PathLike[str]", Mapping[str, Any]]
"""A config file's path, a RON string (what a config file holds), or a dict with its fields
(enums as "Auto" / {"Fixed": 8}, {"Moe": {...}} / {"Flows": {...}})."""

_StepEvent = dict[str, Any]
"""batch, items (start, end), step, steps, ms, units, flows (a step's counts, or None)."""

@final
class Simulation:
    """A configured simulation (MoE or flows) on a chosen backend.

    Raises ValueError naming the field (path, line, column for RON) when the config is bad,
    RuntimeError when the GPU backend is asked for and none can be opened.
    """

    def __new__(cls, config: _Config, backend: Literal["auto", "gpu", "cpu"] = "auto") -> Self: ...
    @property
    def kind(self) -> Literal["moe", "flows"]:
        """ "moe" or "flows"."""
    @property
    def backend(self) -> str:
        """The backend it runs on, e.g. "cpu (2 threads)"."""
    @property
    def steps(self) -> int:
        """Steps an item runs (flows: at most)."""
    @property
    def items(self) -> int:
        """The config's batch.items: what a run without inputs or ids runs."""
    @property
    def seed(self) -> int:
        """The config's seed."""
    @property
    def dims(self) -> tuple[int, int, int]:
        """Lattice size (W, H, D)."""
    @property
    def input_shape(self) -> list[int]:
        """One item's input: MoE [N, S], flows [embedding_dim]."""
    def config_ron(self) -> str:
        """The config as RON text."""
    def weights(self) -> dict[str, npt.NDArray[np.float32]]:
        """Every weight tensor under the names of docs/weights.md (copies)."""
    def load_weights(
        self, weights: Union[Mapping[str, npt.NDArray[np.float32]], str, "os.PathLike[str]"]
    ) -> None:
        """Replaces the weights from a dict of float32 arrays (exactly the tensors of
        docs/weights.md, with their shapes) or a .safetensors file. ValueError names a missing,
        extra, mis-shaped or non-finite tensor; TypeError a non-float32 one."""
    def save_weights(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the weights as .safetensors (atomically)."""
    def run(
        self,
        states: Optional[npt.NDArray[np.float32]] = None,
        *,
        embeddings: Optional[npt.NDArray[np.float32]] = None,
        texts: Optional[Sequence[str]] = None,
        encoder: Union["Encoder", str, "os.PathLike[str]", None] = None,
        ids: Optional[Sequence[int]] = None,
        steps: Optional[int] = None,
        callback: Optional[Callable[[_StepEvent], None]] = None,
    ) -> Union["MoeResult", "FlowsResult"]:
        """Runs items and returns their results in the order given.

        MoE: states float32 C-contiguous [B, N, S], or None for states seeded by item id.
        Flows: embeddings float32 [B, embedding_dim]; or texts, one item per text, embedded by
        encoder (an Encoder, a model folder, or by default the config's texts.encoder); or
        None for the config's texts if it names them, else seeded embeddings. ids name the
        items (default 0..B, or 0..items without inputs); steps overrides the config's for
        this run; callback(event) runs after every step (an exception in it stops the run and
        propagates). The GIL is released while the engine computes; Ctrl-C stops the run
        between steps with KeyboardInterrupt.

        Raises TypeError (not an array, not float32), ValueError (shape, layout, non-finite
        input named by item and cell, duplicate ids), RuntimeError (GPU failure),
        MemoryError (not even one item fits).
        """

@final
class MoeResult:
    ids: list[int]
    states: npt.NDArray[np.float32]
    """Final states [B, N, S], cell order x + y*W + z*W*H."""
    ok: list[bool]
    errors: list[Optional[str]]
    """Per item: why it failed (a non-finite state, with step and cell), or None."""
    stats: dict[str, Any]
    """backend, total_s, items_per_s, work (cell-updates), work_per_s, batch_size,
    batch_sizes, halvings, mean_step_ms, max_step_ms, peak_host_memory_bytes."""
    def __len__(self) -> int: ...

@final
class FlowsResult:
    ids: list[int]
    surface: npt.NDArray[np.float32]
    """[B, 2, H, W]: front plane, back plane."""
    landed: npt.NDArray[np.uint32]
    """[B, 2, H, W]: flows landed in each surface cell (where 0, the surface holds the empty
    softmax's 0, not a flow's energy)."""
    merged: npt.NDArray[np.float32]
    """[B, H, W]: both planes in one softmax."""
    embeddings_out: Optional[npt.NDArray[np.float32]]
    """[B, embedding_dim] with collector on, else None."""
    counts: list[dict[str, Any]]
    """Per item: steps, stop, created, spawned, dropped_by_capacity, completed_front,
    completed_back, reflected, unfinished, projected, completed_path_steps, mean_path_steps
    (mean steps of the flows that reached a plane), completed_per_created."""
    steps: list[dict[str, Any]]
    """Per step, summed over the items: step, live, spawned, completed_front, completed_back,
    reflected, moving, dropped_by_capacity, z_move_mean and z_move_variance (of the z
    movement of the flows that moved; None when none did), and the exact fixed-point sums
    they come from (z_moved_fx, z_moved_sq_fx, units of 2**-24)."""
    events: Optional[list[dict[str, Any]]]
    """With trace in the config: the newest events (event "spawn" | "reflect" | "terminate",
    step, item, flow, and parent or plane), as events.jsonl holds them; None without a trace."""
    events_overwritten: Optional[int]
    """Events pushed out of the trace's ring buffer; None without a trace."""
    ok: list[bool]
    errors: list[Optional[str]]
    stats: dict[str, Any]
    def __len__(self) -> int: ...

@final
class Encoder:
    """A sentence encoder from a local Hugging Face model folder (config.json, tokenizer.json,
    model.safetensors; sentence-transformers' pooling files if present): BERT-family and
    NomicBERT models. Texts are tokenized (truncated at max_tokens), run in batches with
    attention masks, mean pooled over their real tokens and L2-normalized. Nothing is
    downloaded.

    Raises ValueError naming the missing or unusable file, or the unsupported architecture.
    """

    def __new__(cls, path: Union[str, "os.PathLike[str]"]) -> Self: ...
    @property
    def dim(self) -> int:
        """Width of the embeddings."""
    @property
    def max_tokens(self) -> int:
        """Tokens per text, special tokens included; longer texts are truncated."""
    @property
    def architecture(self) -> Literal["bert", "nomic_bert"]: ...
    @property
    def path(self) -> "os.PathLike[str]":
        """The model folder."""
    def encode(self, texts: Sequence[str], *, batch_size: int = ...) -> npt.NDArray[np.float32]:
        """Unit embeddings, float32 [len(texts), dim], row i of texts[i]. A text's embedding
        does not depend on its batch (within 1e-5). The GIL is released while it computes."""
    @property
    def last_report(self) -> Optional[dict[str, Any]]:
        """Figures of the last encode: texts, tokens, truncated, seconds, texts_per_s,
        tokens_per_s, and batches (texts, tokens, padded_tokens, seconds, tokens_per_s,
        peak_memory_bytes each)."""
