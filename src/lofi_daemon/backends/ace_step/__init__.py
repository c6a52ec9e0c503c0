"""ACE-Step v1 3.5B: our own pipeline, numerically equal to the official code.

One concept per module; only ``backend.py`` is imported at daemon start-up, and it
imports nothing heavy until ``load``:

    backend.py        the daemon's ``ace_step`` backend (capabilities, load, generate)
    pipeline.py       AceStepPipeline: prompt -> text states -> denoising loop -> decode -> 48 kHz
    checkpoint.py     the official folder layout: find it, read configs, load only used weights
    text_encoder.py   UMT5 encoder + tokenizer (and the ERG-tag "null" variant)
    lyric_tokens.py   the instrumental lyric tags as the official lyric-token ids
    transformer.py    the diffusion transformer (patch/timestep embedding, blocks, final layer)
    attention.py      ReLU linear self-attention and RoPE'd softmax cross-attention
    rope.py           the rotary embedding with the official layout quirk
    lyric_encoder.py  the Conformer that encodes lyric tokens
    dcae.py, vocoder.py, decode.py, resample.py, schedulers.py, guidance.py   (decode + sampling)
"""
