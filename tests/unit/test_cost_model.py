"""The arithmetic of bench/cost_model.py (docs/cost.md), worked by hand."""

from __future__ import annotations

import pytest

from bench import cost_model as cm

P = cm.PRICES


def test_lambda_bills_started_milliseconds_of_gb_plus_the_request() -> None:
    assert cm.lambda_invocation(100.0, 1024) == pytest.approx(0.1 * 0.0000133334 + 0.2e-6)
    assert cm.lambda_invocation(0.4, 512) == pytest.approx(0.001 * 0.5 * 0.0000133334 + 0.2e-6)  # 1 ms billed
    assert cm.lambda_invocation(10.2, 256) == cm.lambda_invocation(11.0, 256)


def test_send_duration_is_the_line_through_the_measured_room_sizes() -> None:
    measured = cm.Measured(send_p50_ms={10: 20.0, 100: 110.0})  # 1 ms per extra recipient
    assert cm.send_duration_ms(9, measured) == pytest.approx(20.0)
    assert cm.send_duration_ms(99, measured) == pytest.approx(110.0)
    assert cm.send_duration_ms(1, measured) == pytest.approx(12.0)
    assert cm.send_duration_ms(0, cm.Measured(send_p50_ms={10: 5.0, 100: 95.0})) == 1.0  # floor of 1 ms


def test_a_message_in_a_room_of_ten() -> None:
    cost = cm.message_cost(10)
    assert cost.parts["API Gateway messages"] == pytest.approx(11 * 1e-6)  # in, ack, 9 copies
    assert cost.parts["NAT (PostToConnection bytes)"] == pytest.approx(9 * 1500 / 1e9 * 0.045)
    assert cost.parts["EventBridge"] == pytest.approx(1e-6)
    assert cost.parts["SQS"] == 0
    assert cost.parts["Lambda fanout"] == 0
    send_ms = cm.MEASURED.send_p50_ms[10]
    assert cost.parts["Lambda ws_messages"] == pytest.approx(cm.lambda_invocation(send_ms, 1024))
    assert cost.total == pytest.approx(sum(cost.parts.values()))


def test_a_message_in_a_room_above_the_threshold_goes_through_sqs_jobs() -> None:
    measured = cm.Measured(send_p50_ms={10: 19.0, 100: 109.0}, fanout_ms_per_1000=1000.0)
    cost = cm.message_cost(1001, measured=measured, async_threshold=200, chunk_members=500)
    # 1,001 members -> 3 jobs (500 + 500 + 1 member; 1,000 recipients: 500 + 500 + 0 deliveries).
    assert cost.parts["SQS"] == pytest.approx(3 * 3 * 0.4e-6)
    memory = cm.memory_of("fanout")
    expected = 2 * cm.lambda_invocation(500.0, memory) + cm.lambda_invocation(0.0, memory)
    assert cost.parts["Lambda fanout"] == pytest.approx(expected)
    # The sender's handler: no inline posts (10 ms at 0 recipients on this line) + SendMessage.
    assert cost.parts["Lambda ws_messages"] == pytest.approx(cm.lambda_invocation(10.0 + 15.0, 1024))
    assert cost.parts["API Gateway messages"] == pytest.approx(1002 * 1e-6)


def test_floor_of_an_environment() -> None:
    env = {
        "minAcu": 0.5,
        "readers": 1,
        "cacheNodeType": "cache.t4g.micro",
        "cacheReplicas": 0,
        "natGateways": 1,
        "vpcEndpoints": False,
        "maxAzs": 2,
    }
    parts = list(cm.floor(env).parts.values())
    assert parts == pytest.approx(
        [
            2 * 0.5 * 0.12 * 730,  # writer + reader at 0.5 ACU
            8 * 0.015 * 730,  # the proxy's 8-ACU minimum
            1 * 0.0128 * 730,
            1 * 0.045 * 730,
        ]
    )
    with_endpoints = cm.floor({**env, "vpcEndpoints": True})
    assert with_endpoints.total - cm.floor(env).total == pytest.approx(7 * 2 * 0.01 * 730)


def test_a_month_of_ten_thousand_users() -> None:
    env = cm.environment("prod")
    workload = cm.Workload(users=10_000, messages_per_user_hour=10, room_members=10)
    month = cm.month(workload, env)
    assert month["connection minutes"] == pytest.approx(10_000 * 730 * 60 * 0.25e-6)
    messages = 10_000 * 10 * 730
    (messages_part,) = [v for k, v in month.items() if k.startswith("messages")]
    assert messages_part == pytest.approx(messages * cm.message_cost(10).total)
    assert month["floor (Aurora, RDS Proxy, Valkey, NAT, endpoints)"] == pytest.approx(cm.floor(env).total)


def test_render_names_every_room_size_and_the_api_gateway_share() -> None:
    text = cm.render("dev")
    for heading in (
        "room of 2",
        "room of 10",
        "room of 100",
        "room of 1,000",
        "API Gateway's message charge alone",
    ):
        assert heading in text
