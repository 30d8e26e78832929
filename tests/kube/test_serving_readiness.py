"""Ready means answering: the operator asks the model server (`GetModelStatus` over gRPC)
before it calls a trained version Ready, and says what it is waiting for meanwhile."""

from __future__ import annotations

from mimical.chatbot import Phase
from mimical.kube import API_VERSION
from mimical.kube.manifests import serving_entries
from mimical.kube.registry import chatbot_from_resource
from mimical.testing.servers import wait_for
from tests.kube.conftest import OperatorThread
from tests.kube.test_operator import conditions, events_for, phase_of, upload_model


def loading(kubectl, name: str, generation: int = 1) -> dict:
    """The chatbot once its Job's version is recorded and waits for the model server."""

    def check():
        chatbot = kubectl.chatbot(name) or {}
        status = chatbot.get("status", {})
        waiting = status.get("progress", {}).get("step") == "loading"
        return chatbot if waiting and status.get("observedGeneration") == generation else None

    return wait_for(f"{name} to wait for the model server", check)


def served_message(kubectl, name: str, text: str) -> dict:
    def check():
        chatbot = kubectl.chatbot(name)
        served = conditions(chatbot).get("Served") or {}
        return chatbot if text in served.get("message", "") else None

    return wait_for(f"Served of {name} to say {text!r}", check)


def test_a_trained_version_is_ready_only_once_the_model_server_answers(
    operator, kubectl, storage, model_server
):
    model_server.models.hold("mona", 1)  # its first version is slow to load
    kubectl.apply_chatbot("mona", {"source": kubectl.source("mona")}).raise_for_status()
    phase_of(kubectl, "mona", "Training")
    upload_model(storage, "mona", 1)
    kubectl.finish_job("mona-train-1", succeeded=True)

    waiting = loading(kubectl, "mona")
    assert waiting["status"]["phase"] == "Training"
    assert waiting["status"]["modelVersion"] == 1
    assert "servedVersion" not in waiting["status"]
    by_type = conditions(waiting)
    assert (by_type["Trained"]["status"], by_type["Served"]["status"]) == ("True", "False")
    assert by_type["Served"]["reason"] == by_type["Ready"]["reason"] == "Loading"
    assert by_type["Ready"]["status"] == "False"
    # Listed for the mirror and TF Serving already; the API says it is being deployed.
    configmap = kubectl.get("v1", "configmaps", operator.settings.serving_configmap)
    assert serving_entries(configmap["data"]) == {"mona": [1]}
    assert chatbot_from_resource(waiting).phase == Phase.DEPLOYING
    # The progress timer asked, and the condition says what the server answered.
    served_message(kubectl, "mona", "not served")

    model_server.models.release("mona")
    ready = phase_of(kubectl, "mona", "Ready")
    assert ready["status"]["servedVersion"] == 1
    assert ready["status"]["progress"]["percent"] == 100
    by_type = conditions(ready)
    assert (by_type["Served"]["status"], by_type["Served"]["reason"]) == ("True", "Available")
    assert model_server.target in by_type["Served"]["message"]
    assert by_type["Ready"]["status"] == "True"
    events_for(kubectl, "mona", {"Trained", "Ready"})


def test_a_retrained_version_loads_while_the_old_one_answers(
    operator, kubectl, storage, model_server
):
    kubectl.apply_chatbot("nina", {"source": kubectl.source("nina")}).raise_for_status()
    phase_of(kubectl, "nina", "Training")
    upload_model(storage, "nina", 1)
    kubectl.finish_job("nina-train-1", succeeded=True)
    phase_of(kubectl, "nina", "Ready")

    model_server.models.hold("nina", 2)
    kubectl.patch(API_VERSION, "chatbots", "nina", {"spec": {"training": {"epochs": 2}}})
    phase_of(kubectl, "nina", "Training", generation=2)
    upload_model(storage, "nina", 2)
    kubectl.finish_job("nina-train-2", succeeded=True)
    loading(kubectl, "nina", generation=2)
    waiting = served_message(kubectl, "nina", "answers with version 1")
    assert waiting["status"]["servedVersion"] == 1
    assert conditions(waiting)["Ready"]["status"] == "True"  # version 1 still answers
    assert conditions(waiting)["Served"]["status"] == "False"

    model_server.models.release("nina")
    ready = phase_of(kubectl, "nina", "Ready", generation=2)
    assert (ready["status"]["modelVersion"], ready["status"]["servedVersion"]) == (2, 2)


def test_an_unreachable_model_server_keeps_the_chatbot_loading(
    operator, kubectl, storage, model_server
):
    model_server.stop()
    kubectl.apply_chatbot("olga", {"source": kubectl.source("olga")}).raise_for_status()
    phase_of(kubectl, "olga", "Training")
    upload_model(storage, "olga", 1)
    kubectl.finish_job("olga-train-1", succeeded=True)
    waiting = served_message(kubectl, "olga", "did not answer")
    assert waiting["status"]["phase"] == "Training"

    model_server.start()  # back on the same port
    assert phase_of(kubectl, "olga", "Ready")["status"]["servedVersion"] == 1


def test_a_restarted_operator_makes_no_job_for_a_version_waiting_to_answer(
    operator_settings, kubectl, storage, model_server
):
    model_server.models.hold("pia", 1)
    with OperatorThread(operator_settings):
        kubectl.apply_chatbot("pia", {"source": kubectl.source("pia")}).raise_for_status()
        phase_of(kubectl, "pia", "Training")
        upload_model(storage, "pia", 1)
        kubectl.finish_job("pia-train-1", succeeded=True)
        loading(kubectl, "pia")
    # Its finished Job is collected (ttlSecondsAfterFinished) while no operator runs.
    assert kubectl.delete("batch/v1", "jobs", "pia-train-1").status_code == 200
    model_server.models.release("pia")
    with OperatorThread(operator_settings):
        assert phase_of(kubectl, "pia", "Ready")["status"]["servedVersion"] == 1
        assert kubectl.jobs("pia") == []


# A load deadline the tests can wait out (status times have whole seconds).
SHORT_LOAD_DEADLINE = 2


def listed(kubectl, settings) -> dict[str, list[int]]:
    return serving_entries(kubectl.get("v1", "configmaps", settings.serving_configmap)["data"])


def test_a_retrain_that_never_loads_falls_back_to_the_version_that_answers(
    operator_settings, kubectl, storage, model_server
):
    settings = operator_settings.with_overrides(serving_load_deadline=SHORT_LOAD_DEADLINE)
    with OperatorThread(settings):
        kubectl.apply_chatbot("rosa", {"source": kubectl.source("rosa")}).raise_for_status()
        phase_of(kubectl, "rosa", "Training")
        upload_model(storage, "rosa", 1)
        kubectl.finish_job("rosa-train-1", succeeded=True)
        phase_of(kubectl, "rosa", "Ready")

        model_server.models.hold("rosa", 2)  # a broken export: it never loads
        kubectl.patch(API_VERSION, "chatbots", "rosa", {"spec": {"training": {"epochs": 2}}})
        phase_of(kubectl, "rosa", "Training", generation=2)
        upload_model(storage, "rosa", 2)
        kubectl.finish_job("rosa-train-2", succeeded=True)
        loading(kubectl, "rosa", generation=2)
        # Listed beside the version that answers: a model-server pod starting now loads both.
        assert listed(kubectl, settings) == {"rosa": [1, 2]}

        fallen_back = phase_of(kubectl, "rosa", "Ready", generation=2)
        status = fallen_back["status"]
        assert (status["modelVersion"], status["servedVersion"]) == (2, 1)
        served = conditions(fallen_back)["Served"]
        assert (served["status"], served["reason"]) == ("False", "LoadTimeout")
        assert "version 2 did not answer within 2 s" in served["message"]
        assert conditions(fallen_back)["Ready"]["status"] == "True"
        warning = [
            e for e in events_for(kubectl, "rosa", {"LoadTimeout"}) if e["reason"] == "LoadTimeout"
        ]
        assert warning[0]["type"] == "Warning"
        # The broken version left the list: a restarted model server answers with version 1.
        assert listed(kubectl, settings) == {"rosa": [1]}
        model_server.models.release("rosa")
        assert model_server.models.available_version("rosa") == 1
        api_view = chatbot_from_resource(fallen_back)
        assert (api_view.phase, api_view.model_version) == (Phase.READY, 1)

        # Not stuck: a retrain starts again.
        kubectl.patch(API_VERSION, "chatbots", "rosa", {"spec": {"training": {"epochs": 3}}})
        phase_of(kubectl, "rosa", "Training", generation=3)
        assert kubectl.get("batch/v1", "jobs", "rosa-train-3") is not None


def test_a_first_version_that_never_loads_fails_and_a_retrain_can_start(
    operator_settings, kubectl, storage, model_server
):
    settings = operator_settings.with_overrides(serving_load_deadline=SHORT_LOAD_DEADLINE)
    with OperatorThread(settings):
        model_server.models.hold("sara", 1)
        kubectl.apply_chatbot("sara", {"source": kubectl.source("sara")}).raise_for_status()
        phase_of(kubectl, "sara", "Training")
        upload_model(storage, "sara", 1)
        kubectl.finish_job("sara-train-1", succeeded=True)

        failed = phase_of(kubectl, "sara", "Failed")
        assert "servedVersion" not in failed["status"]
        by_type = conditions(failed)
        assert (by_type["Served"]["reason"], by_type["Ready"]["reason"]) == ("LoadTimeout",) * 2
        assert by_type["Ready"]["status"] == "False"
        events_for(kubectl, "sara", {"LoadTimeout"})
        assert listed(kubectl, settings) == {}
        api_view = chatbot_from_resource(failed)
        assert (api_view.phase, api_view.servable) == (Phase.FAILED, False)
        assert "did not answer" in api_view.message

        kubectl.patch(API_VERSION, "chatbots", "sara", {"spec": {"training": {"epochs": 2}}})
        phase_of(kubectl, "sara", "Training", generation=2)
        assert kubectl.get("batch/v1", "jobs", "sara-train-2") is not None


def test_every_status_field_the_operator_writes_is_in_the_crd():
    """A real API server drops status fields its CRD does not declare (the harness keeps
    them): a `servedVersion` missing from the schema would never be Ready on a cluster."""
    from mimical.kube import status as builders
    from tests.kube.test_manifests import crd_schema

    declared = crd_schema()["properties"]["status"]["properties"]
    trained = builders.training_succeeded({}, 1, 2, "s3://b/models/x/2", "tfs:8500", {})
    written = [
        builders.training_started({}, 1, "x-train-1"),
        trained,
        builders.still_loading({**trained, "observedGeneration": 1}, "not served"),
        builders.model_served(trained, "tfs:8500"),
        builders.load_timed_out({**trained, "observedGeneration": 1}, "not served", 60),
        builders.training_failed(trained, 1, "BackoffLimitExceeded", "failed"),
        builders.waiting_for_source({}, 1),
    ]
    for status in written:
        assert set(status) <= set(declared), set(status) - set(declared)
        condition_types = declared["conditions"]["items"]["properties"]["type"]["enum"]
        assert {c["type"] for c in status.get("conditions", [])} <= set(condition_types)
