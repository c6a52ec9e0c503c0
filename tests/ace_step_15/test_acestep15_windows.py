"""Play while decoding: the windows ``request.windows`` gets, against the samples the file is written from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from acestep15_helpers import make_backend

from lofi_daemon.backends.ace_step_15.decode import TilePlan
from lofi_daemon.backends.base import Continuation, GenerationRequest
from lofi_daemon.cancel import CancelToken
from lofi_daemon.device import DevicePlan

PROMPT = "lo-fi hip hop, mellow piano, vinyl crackle"
TILES = TilePlan(core=100, overlap=16, untiled_up_to=100)  # 12 s = 300 latents: three tiles


class Quiet:
    def plan(self, phases):
        pass

    def update(self, phase, current, total):
        pass


class Windows:
    """What a player would get, and how many tiles were decoded when each window came."""

    def __init__(self, decoded):
        self.got, self.decoded_before, self._decoded = [], [], decoded

    def window(self, samples, sample_rate):
        assert sample_rate == 48000 and samples.dtype == np.float32
        self.got.append(np.array(samples))
        self.decoded_before.append(len(self._decoded))


@pytest.fixture(scope="module")
def backend(installed_cache):
    b = make_backend(installed_cache)
    b.load(DevicePlan(preference="cpu"))
    b.tiles = TILES
    yield b
    b.unload()


@pytest.fixture
def decoded(backend):
    calls = []
    handle = backend._pipe.vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(4)
    path = tmp_path_factory.mktemp("src") / "source.wav"
    sf.write(str(path), rng.uniform(-0.4, 0.4, (8 * 48000, 2)).astype(np.float32), 48000, subtype="PCM_16")
    return str(path)


def _request(source=None, seed=3):
    return GenerationRequest(prompt=PROMPT, duration_sec=12.0, seed=seed, params={"inference_steps": 2},
                             continue_from=None if source is None else Continuation("t-src", source))


def test_a_continuation_hands_each_window_as_its_tile_is_decoded_and_they_join_into_the_samples(
        backend, source, decoded):
    windows = Windows(decoded)
    streamed = backend.generate(dataclasses.replace(_request(source), windows=windows), Quiet(), CancelToken())
    assert windows.decoded_before == [1, 2, 3]  # the first window is out before the second tile is decoded
    assert [w.shape[-1] for w in windows.got] == [100 * 1920, 100 * 1920, 100 * 1920]
    assert np.array_equal(np.concatenate(windows.got, axis=-1), streamed.samples)
    plain = backend.generate(_request(source), Quiet(), CancelToken())
    assert np.array_equal(plain.samples, streamed.samples)  # streaming never changes the file
    assert plain.metadata["join_frame"] == streamed.metadata["join_frame"] == 6 * 48000


def test_a_plain_tracks_windows_come_after_its_last_tile_and_join_into_the_samples(backend, decoded):
    windows = Windows(decoded)
    streamed = backend.generate(dataclasses.replace(_request(), windows=windows), Quiet(), CancelToken())
    # The pipeline's loudness is one gain from the whole track's peak: nothing is final before the end.
    assert windows.decoded_before == [3, 3, 3]
    assert np.array_equal(np.concatenate(windows.got, axis=-1), streamed.samples)
    plain = backend.generate(_request(), Quiet(), CancelToken())
    assert np.array_equal(plain.samples, streamed.samples)
    assert np.abs(plain.samples).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)  # still the pipeline's
