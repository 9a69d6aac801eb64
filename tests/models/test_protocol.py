"""The model protocol is declared once: a model that misses part of it is told what."""

from __future__ import annotations

import inspect

import pytest
from emvi.models.base import missing_members
from emvi.models.registry import check_contract

from emvi import LatentModel, Mixture, PyroModel


class HalfAModel(LatentModel):
    """Has a program and data checks, but no EM pieces."""

    def check_data(self, data, name="data"):
        return data

    def program(self, params, data=None, n=None):
        return None


def test_a_model_missing_em_pieces_names_them():
    assert missing_members(HalfAModel) == ["expect", "maximize", "prepare", "random_params",
                                           "shift", "summarize"]
    with pytest.raises(TypeError, match="abstract"):
        HalfAModel(2, {})
    with pytest.raises(ValueError, match="does not define expect, maximize, prepare"):
        check_contract(HalfAModel, "half.py:HalfAModel")


def test_every_shipped_model_type_implements_the_whole_protocol():
    assert missing_members(Mixture) == []
    assert missing_members(PyroModel) == ["program"]  # what a program-only model writes


def test_the_protocol_documents_every_method_with_shapes_or_meaning():
    for name, member in inspect.getmembers(LatentModel, inspect.isfunction):
        if not name.startswith("_"):
            assert member.__doc__ and len(member.__doc__.split()) >= 4, name
