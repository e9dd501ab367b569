"""The served app's middleware stack: what serving leaves out of Connexion's."""
from connexion.middleware.response_validation import ResponseValidationMiddleware

from certapi.app import _middlewares, create_app
from certapi.config import Settings
from models.migrate import migrate
from tests.conftest import OPERATIONS, RecordingClient, make_tenant


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


def test_each_operation_is_called_through_a_decorator_stack_built_once(app, client, api, monkeypatch):
    """Connexion's FlaskOperation builds its decorators on every call; certapi's views
    keep theirs (certapi.handler_call) and still hand each handler its own arguments:
    path, query (with the spec's defaults), body and the caller's account."""
    from connexion.decorators import FlaskDecorator

    from certapi.handler_call import PreparedOperation

    certification = api.certification(name="Prepared")
    user = api.user()
    built = []
    original = FlaskDecorator.decorate
    monkeypatch.setattr(FlaskDecorator, "decorate",
                        lambda self, function: built.append(function) or original(self, function))
    enrollment = api.enroll(certification, user)
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    one = client.get(path, headers=api.tenant.headers, params={"per_page": 1}).json()
    assert ([item["uuid"] for item in one["data"]], one["pagination"]["per_page"]) == (
        [enrollment["uuid"]], 1)
    assert client.get(path, headers=api.tenant.headers).json()["pagination"]["per_page"] == 25
    got = client.get(f"{path}/{enrollment['uuid']}", headers=api.tenant.headers)
    assert got.json()["user_uuid"] == user["uuid"]
    assert built == []

    def innermost(view):
        while not isinstance(view, PreparedOperation) and hasattr(view, "__wrapped__"):
            view = view.__wrapped__
        return view

    prepared = [view for view in map(innermost, app.app.view_functions.values())
                if isinstance(view, PreparedOperation)]
    assert len(prepared) == len(OPERATIONS)
