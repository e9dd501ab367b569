"""The served app's middleware stack: what serving leaves out of Connexion's."""
from connexion.middleware.response_validation import ResponseValidationMiddleware

from certapi.app import _middlewares, create_app
from certapi.config import Settings
from models.migrate import migrate
from tests.conftest import RecordingClient, make_tenant


def test_the_response_validation_layer_runs_only_when_responses_are_validated():
    assert ResponseValidationMiddleware in _middlewares(validate_responses=True)
    assert ResponseValidationMiddleware not in _middlewares(validate_responses=False)


def test_an_app_without_response_validation_serves_and_refuses_as_usual(tmp_path, keep_database_binding):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'serving.db'}",
                              validate_responses=False, key_cache_seconds=0))
    migrate()
    tenant = make_tenant()
    with app.test_client() as raw:
        client = RecordingClient(raw)
        response = client.post("/v1/certifications", headers=tenant.headers, json={"name": "Served"})
        assert response.status_code == 201
        assert client.get(response.headers["location"], headers=tenant.headers).json()["name"] == "Served"
        response = client.post("/v1/certifications", headers=tenant.headers, json={"name": ""})
        assert (response.status_code, response.json()["error"]["message"]) == (
            422, "body/name: Must not be empty")
