"""What the alpha tests share: a pair of throwaway databases (regular, super) with the alpha indexes."""

import uuid

import pytest

from marketdata_assets.stores.mongo.alphas import ensure_alpha_indexes


@pytest.fixture
def dbs(mongo):
    names = [f"test_regular_{uuid.uuid4().hex[:8]}", f"test_super_{uuid.uuid4().hex[:8]}"]
    regular, super_ = (mongo.client[name] for name in names)
    ensure_alpha_indexes(regular, super_, "alphas")
    yield regular, super_
    for name in names:
        mongo.client.drop_database(name)
