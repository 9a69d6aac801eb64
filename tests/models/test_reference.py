"""The Gaussian family's standardised coordinates: what the two-pass reference promises."""

from __future__ import annotations

import pytest
import torch
from emvi.models.families import gaussian_numerics as gn
from hypothesis import given, settings
from hypothesis import strategies as st


def is_power_of_two(x: torch.Tensor) -> bool:
    mantissa, _ = torch.frexp(x)
    return bool((mantissa == 0.5).all())


def check(data: torch.Tensor, common: bool) -> None:
    ref = gn.reference(data, common)
    assert is_power_of_two(ref.scale)
    if common:
        assert bool((ref.scale == ref.scale[0]).all())
    centred = data / ref.scale - ref.offset
    # the extent is exactly the largest |y| (the extremes give it: y is monotone in x)
    assert torch.equal(ref.extent, centred.abs().amax(0))
    # the scale is the power of two at or above the spread: |y| <= 1, and above 1/2 in the
    # widest coordinate unless the data are constant there
    assert bool((ref.extent <= 1).all())
    widest = ref.extent.amax() if common else ref.extent
    spread = (data.amax(0) - data.amin(0)) if not common else (data.amax(0) - data.amin(0)).amax()
    assert bool(((widest > 0.25) | (spread == 0)).all())
    torch.testing.assert_close(ref.offset * ref.scale, data.mean(0), rtol=1e-12, atol=0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), d=st.integers(1, 3), skew=st.floats(-6, 6),
       shift=st.sampled_from([0.0, 1e3, -1e6, 1e300]), common=st.booleans(),
       seed=st.integers(0, 2**16))
def test_reference_bounds_the_standardised_data(n, d, skew, shift, common, seed):
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(n, d, generator=gen, dtype=torch.float64).exp() ** skew  # one-sided
    if shift == 1e300:
        data = data * 1e298
    check(data * 10.0 ** (seed % 7 - 3) + shift, common)


@pytest.mark.parametrize("common", [False, True])
def test_reference_of_data_whose_low_tail_is_the_long_one(monkeypatch, common):
    gen = torch.Generator().manual_seed(0)
    data = -torch.randn(5000, 2, generator=gen, dtype=torch.float64).exp() * 3 + 7
    check(data, common)
    monkeypatch.setattr(gn, "BLOCK_BYTES", 256)  # many blocks, ragged end
    check(data, common)
