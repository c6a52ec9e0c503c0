"""What each backend needs from the Hugging Face hub.

Sources for the pinned facts are listed in docs/models.md. In short:

- ACE-Step v1 3.5B: commit ``82cd0d7b…`` is the snapshot pinned by several independent
  projects; the file list, sizes and sha256 of the 11 files we load agree between two
  independent public listings (one of them a content-hashed mirror of the full tree, whose
  sizes sum to the 8 275 790 207 bytes another project records). The repo has no
  ``umt5-base/spiece.model`` (the tokenizer is ``tokenizer.json``), so it is optional.
- MusicGen: ``facebook/musicgen-small`` is pinned to the commit that public transformers
  loaders use; the other sizes follow ``main``, resolved to a commit at download time and
  recorded. Whether a repo ships one ``model.safetensors`` or an index plus shards is read
  from the hub at download time (the ``sharded`` entry).
"""

from __future__ import annotations

from ..errors import InvalidParams
from .manifest import Component, FileSpec, ModelManifest

ACE_STEP_REPO = "ACE-Step/ACE-Step-v1-3.5B"
ACE_STEP_REVISION = "82cd0d7b6322bd28cd4e830fe675ddb6180ce36c"

ACE_STEP = ModelManifest(
    backend="ace_step",
    repo_id=ACE_STEP_REPO,
    revision=ACE_STEP_REVISION,
    components=(
        Component(
            "transformer",
            ("ace_step_transformer/config.json", "ace_step_transformer/diffusion_pytorch_model.safetensors"),
        ),
        Component(
            "text_encoder",
            (
                "umt5-base/config.json",
                "umt5-base/model.safetensors",
                "umt5-base/special_tokens_map.json",
                "umt5-base/tokenizer.json",
                "umt5-base/tokenizer_config.json",
            ),
            optional=("umt5-base/spiece.model",),
        ),
        Component("dcae", ("music_dcae_f8c8/config.json", "music_dcae_f8c8/diffusion_pytorch_model.safetensors")),
        Component("vocoder", ("music_vocoder/config.json", "music_vocoder/diffusion_pytorch_model.safetensors")),
    ),
    known=(
        FileSpec(
            "ace_step_transformer/config.json", 639, "4d78beb6afb4c7f3705256b44faaf60f3e1e2d78f4015ca87740f3695d7f5447"
        ),
        FileSpec(
            "ace_step_transformer/diffusion_pytorch_model.safetensors",
            6_611_422_728,
            "e810f16728d8a2e0d1b9c3a907aac8c9a427ce38edbd890cb3dce5ff92da5aad",
        ),
        FileSpec("umt5-base/config.json", 848, "afae5da9a35e2b293cee66536f03fc2581cfc3f3d5707d3a262b552748de1572"),
        FileSpec(
            "umt5-base/model.safetensors",
            1_127_460_248,
            "779cec0d210b2123e21d0a9cd8128f02b4d412627355028965a8be0b241cc3b6",
        ),
        FileSpec(
            "umt5-base/special_tokens_map.json", 7_079, "456b58fd240a06c743a7c2cf8008bec501240d68ebd1fc4018ea569505fea270"
        ),
        FileSpec(
            "umt5-base/tokenizer.json", 16_837_459, "20a46ac256746594ed7e1e3ef733b83fbc5a6f0922aa7480eda961743de080ef"
        ),
        FileSpec(
            "umt5-base/tokenizer_config.json", 61_728, "ed9a3a8b0faa71a70a32847e0435fe036e6e112d4df4edb7bb48a921e344dc05"
        ),
        FileSpec(
            "music_dcae_f8c8/config.json", 1_034, "b14a49a8c52a52c2c8050098af1a946810a8a1a0b6e50abc75ba81371383cf04"
        ),
        FileSpec(
            "music_dcae_f8c8/diffusion_pytorch_model.safetensors",
            313_646_516,
            "2b0cb469307ac50659d1880db2a99bae47d0df335cbb36853964662d4b80e8ee",
        ),
        FileSpec("music_vocoder/config.json", 940, "39ddc4c417e01dc3be1862fcf315887358dd61b7f91c3cc8227f65072984bb55"),
        FileSpec(
            "music_vocoder/diffusion_pytorch_model.safetensors",
            206_350_988,
            "c92c9b46e28ab7b37b777780cf4308ad7ddac869636bb77aa61599358c4bc1c0",
        ),
    ),
)

#: The MusicGen checkpoints the backend supports, with a pinned commit where one is known.
MUSICGEN_REVISIONS: dict[str, str] = {
    "facebook/musicgen-small": "4c8334b02c6ec4e8664a91979669a501ec497792",
    "facebook/musicgen-medium": "main",
    "facebook/musicgen-large": "main",
    "facebook/musicgen-stereo-small": "main",
    "facebook/musicgen-stereo-medium": "main",
    "facebook/musicgen-stereo-large": "main",
}

DEFAULT_MUSICGEN_MODEL = "facebook/musicgen-small"


def musicgen_manifest(model_id: str = DEFAULT_MUSICGEN_MODEL) -> ModelManifest:
    """The files ``MusicgenForConditionalGeneration`` and ``AutoProcessor`` load."""
    revision = MUSICGEN_REVISIONS.get(model_id)
    if revision is None:
        raise InvalidParams(
            f"unknown MusicGen model {model_id!r}",
            hint=f"Set musicgen_model to one of: {', '.join(MUSICGEN_REVISIONS)}.",
            field="musicgen_model",
            choices=list(MUSICGEN_REVISIONS),
        )
    return ModelManifest(
        backend="musicgen",
        repo_id=model_id,
        revision=revision,
        components=(
            Component("model", ("config.json", "generation_config.json"), sharded=("model.safetensors",)),
            Component(
                "processor",
                ("preprocessor_config.json", "tokenizer_config.json"),
                # The T5 tokenizer ships as spiece.model and/or tokenizer.json; take what exists.
                optional=("special_tokens_map.json", "spiece.model", "tokenizer.json"),
            ),
        ),
    )


# -- ACE-Step 1.5 ------------------------------------------------------------------------
#
# No hashes for these repos could be found outside the hub, so they follow ``main``: setup
# resolves it to a commit, records it, and keeps the hub's own sha256 / git ids of every
# file it took (see record.py); loading then checks against that record. Which repo holds
# which variant, and in which layout, is in docs/ace_step_15.md.

ACE_STEP_15_MAIN_REPO = "ACE-Step/Ace-Step1.5"  # original layout: the 2B turbo DiT, VAE, Qwen3 text encoder
ACE_STEP_15_TEXT_ENCODER_DIR = "Qwen3-Embedding-0.6B"
ACE_STEP_15_TOKENIZER_OPTIONAL = ("vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json")

#: variant -> (repo, layout, DiT folder in the original layout)
ACE_STEP_15_REPOS: dict[str, tuple[str, str, str]] = {
    "turbo": (ACE_STEP_15_MAIN_REPO, "original", "acestep-v15-turbo"),
    "xl-turbo": ("ACE-Step/acestep-v15-xl-turbo-diffusers", "diffusers", ""),
    "xl-base": ("ACE-Step/acestep-v15-xl-base-diffusers", "diffusers", ""),
}
DEFAULT_ACE_STEP_15_VARIANT = "turbo"


def ace_step_15_manifest(variant: str = DEFAULT_ACE_STEP_15_VARIANT) -> ModelManifest:
    """Exactly the files the variant loads (never the 5 Hz LM or the other DiTs of the repo)."""
    if variant not in ACE_STEP_15_REPOS:
        raise InvalidParams(
            f"unknown ACE-Step 1.5 variant {variant!r}",
            hint=f"Set ace_step_15_variant to one of: {', '.join(ACE_STEP_15_REPOS)}.",
            field="ace_step_15_variant",
            choices=list(ACE_STEP_15_REPOS),
        )
    repo, layout, dit = ACE_STEP_15_REPOS[variant]
    if layout == "original":
        te = ACE_STEP_15_TEXT_ENCODER_DIR
        components = (
            Component("dit", (f"{dit}/config.json", f"{dit}/model.safetensors", f"{dit}/silence_latent.pt")),
            Component("vae", ("vae/config.json", "vae/diffusion_pytorch_model.safetensors")),
            Component(
                "text_encoder",
                (f"{te}/config.json", f"{te}/tokenizer.json", f"{te}/tokenizer_config.json"),
                optional=tuple(f"{te}/{name}" for name in ACE_STEP_15_TOKENIZER_OPTIONAL),
                sharded=(f"{te}/model.safetensors",),
            ),
        )
    else:
        components = (
            Component("pipeline", ("model_index.json", "scheduler/scheduler_config.json")),
            Component("transformer", ("transformer/config.json",),
                      sharded=("transformer/diffusion_pytorch_model.safetensors",)),
            Component("condition_encoder", ("condition_encoder/config.json",),
                      sharded=("condition_encoder/diffusion_pytorch_model.safetensors",)),
            Component("vae", ("vae/config.json",), sharded=("vae/diffusion_pytorch_model.safetensors",)),
            Component(
                "text_encoder",
                ("text_encoder/config.json", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"),
                optional=tuple(f"tokenizer/{name}" for name in ACE_STEP_15_TOKENIZER_OPTIONAL),
                sharded=("text_encoder/model.safetensors",),
            ),
        )
    return ModelManifest(backend="ace_step_15", repo_id=repo, revision="main", components=components)


# ----- Stable Audio 3 Small (issue #26) -------------------------------------------------------
#: Gated: accept the licence on the model page, then log in (``hf auth login`` / ``HF_TOKEN``).
STABLE_AUDIO_3_REPO = "stabilityai/stable-audio-3-small-music"
STABLE_AUDIO_3_TEXT_ENCODER_DIR = "t5gemma-b-b-ul2"
STABLE_AUDIO_3_LICENCE = ("Stability AI Community License (free below US$1M annual revenue; "
                          "https://stability.ai/license), plus the Gemma Terms of Use for the text encoder")


def stable_audio_3_manifest() -> ModelManifest:
    """The one original checkpoint and its T5Gemma encoder folder (the file list follows the
    official loader; the tokenizer files are taken as the hub lists them)."""
    te = STABLE_AUDIO_3_TEXT_ENCODER_DIR
    return ModelManifest(
        backend="stable_audio_3",
        repo_id=STABLE_AUDIO_3_REPO,
        revision="main",
        components=(
            Component("model", ("model_config.json",), sharded=("model.safetensors",)),
            Component("text_encoder", (f"{te}/config.json", f"{te}/tokenizer_config.json"),
                      optional=(f"{te}/tokenizer.json", f"{te}/tokenizer.model", f"{te}/special_tokens_map.json"),
                      sharded=(f"{te}/model.safetensors",)),
        ),
    )
