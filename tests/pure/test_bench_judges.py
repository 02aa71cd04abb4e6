"""The benches' own judges can fail: the hit-rate bench counts an answer outside the record in force as a miss."""

from bench.hit_rate import judge


def test_an_answer_is_judged_against_the_record_in_force_when_it_was_sent():
    moves = [(10.0, 11.0, "1", "2"), (20.0, 20.5, "2", "3")]  # (record written, every replica serving, from, to)
    answers = [(5.0, 0, "1", 200),     # before any move: the first version
               (10.5, 1, "1", 200),    # in the swap window: either
               (10.6, 2, "2", 200),
               (12.0, 0, "1", 200),    # after every replica swapped: the old version is a miss
               (20.2, 1, "3", 200),
               (25.0, 2, "2", 200),    # a miss: 3 was in force
               (25.0, 2, None, 503)]   # a failed request is not judged here (the bench counts it as failed)
    hits, misses = judge(answers, moves, "1")
    assert hits == 4
    assert [(m["answered"], m["expected"]) for m in misses] == [("1", ["2"]), ("2", ["3"])]
