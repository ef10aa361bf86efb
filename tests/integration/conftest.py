import uuid

import pytest

from harness import Envoy, Mock, load_config, point_static_clusters


@pytest.fixture(scope="session")
def mock():
    m = Mock()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def demo(mock, tmp_path_factory):
    """The shipped demo config (envoy/demo.yaml) pointed at the test's mock provider."""
    cfg = load_config("envoy/demo.yaml")
    point_static_clusters(cfg, mock.port)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("demo"), concurrency=2)
    yield envoy
    envoy.stop()


@pytest.fixture
def test_id():
    """Tags a test's requests so the mock's log can be filtered to them."""
    return uuid.uuid4().hex[:12]
