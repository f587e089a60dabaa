"""The write units of the roster's operations and the ceilings they set on real DynamoDB, computed
by bench/scaling.py from the items really written (docs/scaling.md)."""
import math

from bench import scaling


def test_item_sizes_follow_dynamodbs_rules():
    assert scaling.item_size({"id": {"S": "abc"}}) == 5
    assert scaling.item_size({"n": {"N": "12345"}}) == 1 + 4
    assert scaling.item_size({"m": {"M": {"a": {"S": "é"}}}}) == 1 + 3 + (1 + 2 + 1)
    assert scaling.units(1024, 2) == 2 and scaling.units(1025, 2) == 4 and scaling.units(0, 1) == 1


def test_no_meetup_is_capped_below_250_sign_ups_and_no_national_key_below_1000():
    result = scaling.measure()
    rows = {row["operation"]: row for row in result["rows"]}
    assert set(rows) == {"sign-up, seat", "sign-up, waitlist", "cancellation, waiting",
                         "cancellation, seat (promotes the next)"}
    for name, row in rows.items():
        after = row["after"]
        assert after["national"] >= 1000, (name, after)
        assert after["per_meetup"] >= 250, (name, after)
        assert after["write_units"] < math.inf and row["items"] >= 4
        # Before, the line's item grew with the line: the same operation cost more with 10,000 waiting.
        if "waitlist" in name or "waiting" in name:
            assert row["before"][-1]["write_units"] > row["before"][0]["write_units"]
    assert rows["sign-up, waitlist"]["after"]["write_units"] <= 16
    assert "national: tour index" not in rows["sign-up, seat"]["after"]["keys"]
