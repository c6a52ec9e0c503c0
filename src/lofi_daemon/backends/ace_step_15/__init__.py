"""ACE-Step 1.5 on diffusers' ``AceStepPipeline``: turbo text-to-music in 8 steps, 10 s to 10 min.

Modules, one concern each:

- ``variants``: which models exist (2B turbo, XL turbo, XL base), their defaults and repos.
- ``convert``: the upstream checkpoint layout -> diffusers ``transformer/`` and
  ``condition_encoder/`` folders, run once at setup.
- ``components``: where each component's files are, their sizes, and loading them.
- ``sampling``: driving the pipeline's denoising loop with progress, cancel and a NaN
  check, stopping before its own decode.
- ``decode``: our tiled VAE decode (per-tile progress and cancel) and loudness.
- ``backend``: the ``ace_step_15`` backend the daemon talks to.

Importing this package is cheap: torch, transformers and diffusers load in ``load``.
"""
