"""Property: whatever JSON a device posts as check-ins, the host never answers with a 500."""

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.host.conftest import Clock, Device

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# Thermometer readings in range; the count of raw readings fits the outcome or does not.
raw_celsius = st.floats(min_value=-5000, max_value=5000)
thermometer_fields = {
    "outcome": st.sampled_from(["normal", "fever", "unconfirmed", "no-reading"]),
    "threshold": st.floats(min_value=25, max_value=45),
    "offset": st.floats(min_value=-10, max_value=10),
    "raw": st.lists(raw_celsius, max_size=2),
    "implausible_raw": st.lists(raw_celsius, max_size=16),
}

# Check-ins that are valid but for at most one field, so that most batches reach the database.
valid_fields = {
    "id": st.uuids().map(str),
    "venue_id": st.just("VENUE"),
    "scanned_at": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    "person_ref": st.none() | st.text(max_size=64),
    "kind": st.sampled_from(["health", "venue", "dcc", "unknown"]),
    "outcome": st.sampled_from(["pass", "deny", "refer", "ignored"]),
    "reasons": st.lists(st.text(), max_size=16),
    "temperature_c": st.none() | st.floats(min_value=25, max_value=45),
    "thermometer": st.none() | st.fixed_dictionaries(thermometer_fields),
    "clock_trusted": st.booleans(),
}


def spoil(checkin: dict, field: str | None, value: object) -> dict:
    return checkin if field is None else checkin | {field: value}


near_checkins = st.builds(
    spoil,
    st.fixed_dictionaries(valid_fields),
    st.none() | st.sampled_from([*valid_fields, "extra"]),
    json_values | st.sampled_from(["v_other", "other", 46.0, 2**63, "2022-05-01T08:00:00"]),
)
bodies = json_values | st.fixed_dictionaries(
    {"checkins": st.lists(near_checkins, max_size=5) | json_values}
)


@settings(
    max_examples=200,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_no_json_body_makes_the_check_in_endpoint_fail(device: Device, clock: Clock, body: object):
    content = json.dumps(body).replace('"VENUE"', json.dumps(device.venue_id)).encode()
    # The test client raises on a server error, so a 500 fails the test even before the assert.
    response = device.request("POST", "/device/checkins", content=content, time_ms=clock.ms())
    event(f"status {response.status_code}")
    assert response.status_code in {200, 400, 422}, response.text
    assert response.json().keys() - {"rejected"} == (
        {"acknowledged", "inserted", "duplicates"}
        if response.status_code == 200
        else {"error", "detail"}
    )
