"""The ACE-Step 1.5 models this backend runs, and the settings each is meant for.

Turbo models have guidance distilled into their weights: 8 steps, no classifier-free
guidance (the pipeline forces a guidance scale of 1 for them). Base models run APG
guidance with the learned null condition, batched with the conditional branch, and want
more steps (upstream: "32-100 for base model").
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidParams
from ...models.manifests import ACE_STEP_15_REPOS, DEFAULT_ACE_STEP_15_VARIANT

PREFS_VARIANT_KEY = "ace_step_15_variant"
ENV_VARIANT = "LOFI_ACESTEP15_VARIANT"


@dataclass(frozen=True)
class Variant:
    key: str
    repo_id: str
    layout: str  # "original" (converted at setup) or "diffusers"
    dit_folder: str  # the DiT's folder in the original layout ("" for diffusers repos)
    turbo: bool
    steps: int
    guidance_scale: float
    shift: float
    description: str


VARIANTS: dict[str, Variant] = {
    "turbo": Variant("turbo", *ACE_STEP_15_REPOS["turbo"], turbo=True, steps=8, guidance_scale=1.0, shift=3.0,
                     description="ACE-Step 1.5 turbo (2B): 8-step instrumental tracks, 10 s to 10 min"),
    "xl-turbo": Variant("xl-turbo", *ACE_STEP_15_REPOS["xl-turbo"], turbo=True, steps=8, guidance_scale=1.0,
                        shift=3.0, description="ACE-Step 1.5 XL turbo: 8-step instrumental tracks, 10 s to 10 min"),
    "xl-base": Variant("xl-base", *ACE_STEP_15_REPOS["xl-base"], turbo=False, steps=32, guidance_scale=7.0,
                       shift=3.0, description="ACE-Step 1.5 XL base: guided (APG) tracks, 10 s to 10 min"),
}
assert set(VARIANTS) == set(ACE_STEP_15_REPOS), "every variant needs a manifest and defaults"


def choose_variant(configured: object) -> Variant:
    """The configured variant (default: the 2B turbo); anything else is INVALID_PARAMS."""
    key = DEFAULT_ACE_STEP_15_VARIANT if configured in (None, "") else configured
    if not isinstance(key, str) or key.strip().lower() not in VARIANTS:
        raise InvalidParams(
            f"unknown ACE-Step 1.5 variant {configured!r}",
            hint=f"Set {PREFS_VARIANT_KEY} (or {ENV_VARIANT}) to one of: {', '.join(VARIANTS)}.",
            field=PREFS_VARIANT_KEY,
            choices=list(VARIANTS),
        )
    return VARIANTS[key.strip().lower()]
